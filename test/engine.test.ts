import { before, test } from "node:test";
import assert from "node:assert/strict";
import { initDevice, jax, liveBuffers, np, readInto } from "../src/engine/index.js";
import { buildModel } from "../src/nn/models.js";
import { train } from "../src/train/trainer.js";
import { disposeParams } from "../src/checkpoint/params.js";
import { syntheticExamples } from "./helpers/synthetic.js";

before(async () => {
  await initDevice("wasm");
});

test("prelude: Float16Array stub throws when constructed, iterator helpers exist", () => {
  const F16 = (globalThis as Record<string, unknown>).Float16Array as new () => unknown;
  assert.throws(() => new F16());
  const it = [1, 2, 3][Symbol.iterator]() as unknown as { map(f: (x: number) => number): { toArray(): number[] } };
  assert.deepEqual(it.map((x) => x * 2).toArray(), [2, 4, 6]);
});

test("initDevice: webgpu without an adapter is a clear error once wasm is up", async () => {
  await assert.rejects(initDevice("webgpu"), /already initialised on wasm/);
});

test("readInto: dataSync's values written into a region of a (shared) array, nothing around it touched", () => {
  for (const n of [3, 1000, 70000]) {
    const values = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 100);
    const expected = np.array(values).mul(2).dataSync() as Float32Array;
    const dst = new Float32Array(new SharedArrayBuffer(4 * (n + 8)));
    dst.fill(-7);
    const before = liveBuffers();
    const direct = readInto(np.array(values).mul(2), dst.subarray(4, 4 + n));
    if (n >= 1000) assert.ok(direct, `n=${n}: read straight into the destination, no intermediate copy`);
    assert.equal(liveBuffers(), before, `n=${n}: the array is consumed, as dataSync consumes it`);
    assert.deepEqual(dst.subarray(4, 4 + n), expected, `n=${n}`);
    assert.deepEqual([...dst.subarray(0, 4), ...dst.subarray(4 + n)], new Array(8).fill(-7), `n=${n}: outside the region`);
    // Slices of other memory behave as before, during and after.
    const u = Uint8Array.from([1, 2, 3, 4]);
    assert.deepEqual(u.slice(1, 3), Uint8Array.from([2, 3]));
  }
  assert.throws(() => readInto(np.ones([5]).mul(3), new Float32Array(4)), /5 elements, destination 4/);
});

test("buffer counter tracks allocation and release", () => {
  const before = liveBuffers();
  const a = np.ones([4, 4]);
  const b = a.ref.add(1);
  a.dispose();
  const c = b.mul(2);
  assert.ok(liveBuffers() >= before);
  c.dispose();
  assert.equal(liveBuffers(), before);
});

test("a training step leaks no device buffer over 200 steps (KD loss, dropout, AdamW)", async () => {
  const data = syntheticExamples(256, { h: 8, w: 8, classes: 4 });
  const input = { height: 8, width: 8, channels: 1, classes: 4 };
  const teacher = buildModel({ type: "mlp", hidden: [16] }, input);
  const student = buildModel({ type: "mlp", hidden: [8], dropout: 0.2 }, input);
  const tparams = teacher.init(np.array([0, 7], { dtype: np.uint32 }));
  const run = async (epochs: number) => {
    const counts: number[] = [];
    const r = await train({
      name: "leak",
      model: student,
      spec: { epochs, batchSize: 32, optimizer: { name: "adamw", lr: 1e-3 }, loss: { name: "hinton", temperature: 2, lambda: 0.5 } },
      data,
      seed: 0,
      teacher: { model: teacher, params: tparams },
      progress: () => counts.push(liveBuffers()),
      logEvery: 10,
    });
    disposeParams(r.params);
    return counts;
  };
  await jax.blockUntilReady(tparams);
  const base = liveBuffers();
  const short = await run(3);
  const afterShort = liveBuffers();
  const counts = await run(25);
  const afterLong = liveBuffers();
  assert.equal(counts.length, 200);
  // Flat after warm-up: the same number of live buffers at step 20 and at step 200 (both 9
  // steps after a loss read-back).
  assert.equal(counts[199], counts[19], `live buffers grew from ${counts[19]} to ${counts[199]}`);
  // A finished run leaves a few input buffers behind (held inside jax-js's compiled step, not
  // by us: DISTILL_DEBUG_BUFFERS=1 shows them allocated by the step call), a bounded number
  // however many steps it took.
  const stepInputs = 12;
  assert.ok(afterShort - base <= stepInputs, `a 24-step run left ${afterShort - base} buffers`);
  assert.ok(afterLong - afterShort <= stepInputs, `a 200-step run left ${afterLong - afterShort} buffers`);
  assert.equal(short.length, 24);
  disposeParams(tparams);
});
