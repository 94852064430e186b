import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { rssFlat } from "../src/bench/bench.js";
import { baselineScript, findTorchPython } from "../src/bench/pytorch.js";

test("rssFlat: a new high in the last quarter is growth; settling after the first is not", () => {
  assert.equal(rssFlat([300, 301, 302, 303]), true);
  assert.equal(rssFlat([300, 341, 344, 363]), true, "heap breathing: 19 MB over the earlier peak");
  assert.equal(rssFlat([300, 350, 400, 450]), false, "a staircase: 50 MB a quarter");
  assert.equal(rssFlat([1000, 1010, 1020, 1150]), false, "130 MB over the earlier peak, above 10 %");
  assert.equal(rssFlat([1000, 1000, 1000, 1090]), true, "within 10 % of 1 GB");
  assert.equal(rssFlat([300]), null);
});

test("the PyTorch baseline script ships with the package; a Python without torch is not a baseline", () => {
  assert.ok(existsSync(baselineScript()), baselineScript());
  assert.equal(findTorchPython(["/nonexistent/python3"]), null);
  assert.equal(findTorchPython(["/bin/false"]), null);
});
