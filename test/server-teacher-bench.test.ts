// `distill bench --workload serve` on a few short windows: two rows (one server, two), the same
// soft labels through both, and no server left running afterwards.
import { test } from "node:test";
import assert from "node:assert/strict";
import { initDevice } from "../src/engine/index.js";
import { formatServeBench, runServeBench } from "../src/bench/serve-bench.js";

test("serve bench: one and two distill serve processes score the same windows; both are stopped", async () => {
  await initDevice("wasm");
  const r = await runServeBench({ windows: 8, context: 8, topK: 4, concurrencyPerServer: 2, rounds: 1 });
  assert.deepEqual(r.rows.map((x) => x.servers), [1, 2]);
  for (const row of r.rows) {
    assert.equal(row.tokens, 64);
    assert.ok(row.tokensPerSecond > 0 && Number.isFinite(row.tokensPerSecond));
  }
  assert.equal(r.same, true);
  assert.match(formatServeBench(r), /two servers \d+\.\d\d× one; same soft labels: yes/);
  assert.equal(r.addresses.length, 2);
  for (const url of r.addresses) {
    const reached = await fetch(url + "/v1/models").then(
      () => true,
      () => false,
    );
    assert.equal(reached, false, `${url} still answers`);
  }
});
