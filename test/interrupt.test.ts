// Ctrl-C during `distill run`: a checkpoint is saved, the exit code is 130, and --resume
// finishes the run with the same numbers as an uninterrupted one.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { makeFashionFixture, runCli, runUntil, writeTinyRecipe } from "./helpers/fixtures.js";
import { tempDir } from "./helpers/tmp.js";

test("Ctrl-C saves a checkpoint and exits 130; --resume completes it with identical results", async () => {
  const dir = tempDir("distill-sigint-");
  const data = makeFashionFixture(join(dir, "data"), { train: 320, test: 100 });
  const recipe = writeTinyRecipe(join(dir, "r.yaml"), (r) => {
    (r.teacher as { train: { epochs: number } }).train.epochs = 30;
  });
  const out = join(dir, "out");
  const common = [recipe, "--data", data, "--seeds", "0"];
  // Interrupt the teacher once it is a fifth of the way through.
  const r1 = await runUntil(["run", ...common, "--out", out], (stderr) => /teacher seed 0 .*: 20%/.test(stderr), "SIGINT", 120_000);
  assert.equal(r1.code, 130, r1.stderr);
  assert.match(r1.stderr, /interrupted: checkpoint saved at .*teacher-[0-9a-f]+\.safetensors; rerun with --resume/);
  const seedDir = join(out, "seed-0");
  const json = readdirSync(seedDir).find((f) => /^teacher-.*\.json$/.test(f))!;
  const state = JSON.parse(readFileSync(join(seedDir, json), "utf8")).state;
  assert.equal(state.done, false);
  assert.ok(state.step > 0 && state.step < 300, `saved at step ${state.step}`);

  const r2 = runCli(["run", ...common, "--out", out, "--resume", "-q"]);
  assert.equal(r2.code, 0, r2.stderr);
  const resumed = JSON.parse(readFileSync(join(out, "results.json"), "utf8"));
  const r3 = runCli(["run", ...common, "--out", join(dir, "straight"), "-q"]);
  assert.equal(r3.code, 0, r3.stderr);
  const straight = JSON.parse(readFileSync(join(dir, "straight", "results.json"), "utf8"));
  const metrics = (r: { runs: { name: string; metrics: unknown }[] }) => r.runs.map((x) => [x.name, x.metrics]);
  assert.deepEqual(metrics(resumed), metrics(straight));
});
