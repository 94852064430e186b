import { before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { initDevice, np, random, tree } from "../src/engine/index.js";
import { buildModel, type Params } from "../src/nn/models.js";
import { exampleSource, train, type HostBatch, type TrainSpec } from "../src/train/trainer.js";
import { resolveWorkers, shardBatch, ReplicaGroup } from "../src/train/replicas.js";
import { modelRef } from "../src/parallel/pool.js";
import { adamKernel } from "../src/optim/adam-wasm.js";
import { adamInit, adamScalars, adamUpdate, type OptimizerSpec } from "../src/optim/index.js";
import { paramsToHost } from "../src/checkpoint/params.js";
import { UserError } from "../src/util/errors.js";
import { Rng } from "../src/util/rng.js";
import { syntheticExamples } from "./helpers/synthetic.js";
import { predictLogits } from "../src/eval/predict.js";
import { tempDir } from "./helpers/tmp.js";

before(async () => {
  await initDevice("wasm");
});

const INPUT = { height: 8, width: 8, channels: 1, classes: 4 };
const data = syntheticExamples(320, INPUT);

async function flat(p: Params): Promise<Float32Array> {
  const t = await paramsToHost(p);
  return Float32Array.from(Object.keys(t).sort().flatMap((k) => Array.from(t[k].data as Float32Array)));
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

for (const spec of [
  { name: "adam", lr: 1e-2, weightDecay: 0.1 },
  { name: "adamw", lr: 1e-2, weightDecay: 0.05 },
] as OptimizerSpec[]) {
  test(`SIMD ${spec.name} kernel: the mean of 3 gradient slots, then the same step as adamUpdate`, () => {
    const n = 1003; // not a multiple of 4: the padded tail must stay untouched by the caller
    const count = 1000;
    const rng = new Rng(7);
    const r = () => rng.nextU32() / 4294967296 - 0.5;
    const mem = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    const f = new Float32Array(mem.buffer as SharedArrayBuffer);
    const P = 4, M = P + n + 1, V = M + n + 3, G = V + n + 1; // float offsets, multiples of 4
    const stride = n + 1;
    const p0 = Float32Array.from({ length: count }, r);
    const m0 = Float32Array.from({ length: count }, () => r() * 0.1);
    const v0 = Float32Array.from({ length: count }, () => Math.abs(r()) * 0.01);
    const gs = [0, 1, 2].map(() => Float32Array.from({ length: count }, r));
    f.set(p0, P);
    f.set(m0, M);
    f.set(v0, V);
    gs.forEach((g, s) => f.set(g, G + s * stride));
    const sentinel = 12345;
    f[P + count] = sentinel;
    const sc = adamScalars(spec, 4, 100);
    adamKernel(mem)({
      p: 4 * P, m: 4 * M, v: 4 * V, g: 4 * G, stride: 4 * stride, slots: 3, count,
      invN: 1 / 3, l2: spec.name === "adam" ? spec.weightDecay! : 0, b1: 0.9, b2: 0.999,
      lr: sc[0], invSqrtBc2: sc[1], eps: 1e-8, decay: sc[2],
    });
    assert.equal(f[P + count], sentinel, "wrote past count");

    // Reference: optim.adamUpdate on the mean gradient, through jax-js.
    const mean = gs[0].map((x, i) => (x + gs[1][i] + gs[2][i]) / 3);
    const [p2, s2] = adamUpdate(spec, { w: np.array(p0) }, { w: np.array(mean) }, { m: { w: np.array(m0) }, v: { w: np.array(v0) } }, np.array(sc));
    const want = {
      p: p2.w.dataSync() as Float32Array,
      m: s2.m.w.dataSync() as Float32Array,
      v: s2.v.w.dataSync() as Float32Array,
    };
    assert.ok(maxAbsDiff(f.slice(P, P + count), want.p) < 1e-6, "parameters");
    assert.ok(maxAbsDiff(f.slice(M, M + count), want.m) < 1e-7, "first moment");
    assert.ok(maxAbsDiff(f.slice(V, V + count), want.v) < 1e-8, "second moment");
    // and the update did something
    assert.ok(maxAbsDiff(f.slice(P, P + count), p0) > 1e-3);
  });
}

test("shardBatch: equal row slices of every per-row field; resolveWorkers: auto, explicit, errors", () => {
  const b: HostBatch = {
    x: Float32Array.from({ length: 8 * 3 }, (_, i) => i),
    xShape: [8, 3],
    labels: Int32Array.from({ length: 8 * 2 }, (_, i) => i),
    labelShape: [8, 2],
    mask: Float32Array.from({ length: 16 }, (_, i) => i % 2),
    teacherLogits: Float32Array.from({ length: 8 * 5 }, (_, i) => -i),
    teacherShape: [8, 5],
  };
  const s = shardBatch(b, 1, 4);
  assert.deepEqual(s.xShape, [2, 3]);
  assert.deepEqual(Array.from(s.x), [6, 7, 8, 9, 10, 11]);
  assert.deepEqual(s.labelShape, [2, 2]);
  assert.deepEqual(Array.from(s.labels!), [4, 5, 6, 7]);
  assert.deepEqual(Array.from(s.mask!), [0, 1, 0, 1]);
  assert.deepEqual(s.teacherShape, [2, 5]);
  assert.deepEqual(Array.from(s.teacherLogits!), [-10, -11, -12, -13, -14, -15, -16, -17, -18, -19]);

  assert.equal(resolveWorkers(3, 96, "x"), 3);
  assert.equal(resolveWorkers(1, 7, "x"), 1);
  assert.ok([1, 2].includes(resolveWorkers("auto", 128, "x")));
  assert.equal(resolveWorkers("auto", 17, "x"), 1, "odd batches are not split");
  assert.equal(resolveWorkers("auto", 16, "x"), 1, "slices of fewer than 16 rows are not worth a worker");
  assert.throws(() => resolveWorkers(3, 128, "teacher.train"), (e: unknown) => e instanceof UserError && /teacher.train: batch size 128 does not split evenly over 3 workers/.test((e as Error).message));
  assert.throws(() => resolveWorkers(0, 128, "x"), /positive integer/);
});

const spec: TrainSpec = { epochs: 2, batchSize: 32, optimizer: { name: "adamw", lr: 3e-3, schedule: "cosine" }, loss: { name: "ce" } };

test("two replicas: the same training as one (to rounding), identical across runs, and resumable bit for bit", async () => {
  const model = buildModel({ type: "mlp", hidden: [16] }, INPUT);
  const one = await train({ name: "m", model, spec, data, seed: 5 });
  const two = await train({ name: "m", model, spec, data, seed: 5, workers: 2 });
  const again = await train({ name: "m", model, spec, data, seed: 5, workers: 2 });
  const [h1, h2, h3] = [await flat(one.params), await flat(two.params), await flat(again.params)];
  assert.deepEqual(h3, h2, "two data-parallel runs with one seed differ");
  // Half-batch gradients averaged = the full-batch gradient, up to float32 rounding, which 20
  // Adam steps amplify a little; a wrong shard, mean or update would differ by ~1e-2.
  assert.ok(maxAbsDiff(h1, h2) < 1e-5, `1 vs 2 replicas: ${maxAbsDiff(h1, h2)}`);
  assert.ok(Math.abs(one.finalLoss - two.finalLoss) < 1e-3, `losses ${one.finalLoss} vs ${two.finalLoss}`);

  // Interrupt mid-epoch, resume: the optimiser state comes back from the shared memory's checkpoint.
  const dir = tempDir("distill-dp-");
  const ckpt = join(dir, "m.safetensors");
  const stop = { requested: false };
  const cut = await train({
    name: "m", model, spec, data, seed: 5, workers: 2, checkpoint: ckpt, config: { spec }, stop,
    progress: (done) => {
      if (done === 7) stop.requested = true;
    },
  });
  assert.equal(cut.status, "interrupted");
  // Step 8 was already with the workers when step 7's progress asked to stop: it completes.
  assert.equal(cut.steps, 8);
  assert.ok(existsSync(ckpt));
  const resumed = await train({ name: "m", model, spec, data, seed: 5, workers: 2, checkpoint: ckpt, config: { spec }, resume: true });
  assert.equal(resumed.steps, 20);
  assert.deepEqual(await flat(resumed.params), h2, "resumed data-parallel run differs from the uninterrupted one");
  for (const r of [one, two, again, cut, resumed]) tree.dispose(r.params);
});

test("two replicas with dropout and a live teacher on augmented views train and stay deterministic", async () => {
  const teacherModel = buildModel({ type: "mlp", hidden: [16] }, INPUT);
  const t = await train({ name: "t", model: teacherModel, spec: { ...spec, epochs: 1 }, data, seed: 1 });
  const student = buildModel({ type: "mlp", hidden: [8], dropout: 0.2 }, INPUT);
  const s: TrainSpec = { ...spec, shift: 1, loss: { name: "hinton", temperature: 2, lambda: 0.5 } };
  const a = await train({ name: "s", model: student, spec: s, data, seed: 2, workers: 2, teacher: { model: teacherModel, params: t.params } });
  const b = await train({ name: "s", model: student, spec: s, data, seed: 2, workers: 2, teacher: { model: teacherModel, params: t.params } });
  assert.ok(Number.isFinite(a.finalLoss));
  assert.deepEqual(await flat(a.params), await flat(b.params));
  for (const r of [t, a, b]) tree.dispose(r.params);
});

test("a failing worker is a clear error on the calling thread, not a hang", async () => {
  const model = buildModel({ type: "mlp", hidden: [4] }, INPUT);
  const teacher = buildModel({ type: "mlp", hidden: [6] }, INPUT);
  const params = model.init(random.key(0));
  const opt = adamInit(params);
  const cfg = { workers: 2, model: modelRef(model), spec, seed: 0, needsLabels: true, teacher: modelRef(teacher) };
  // Teacher weights that do not fit the teacher: only the worker reads them, at start.
  const wrong = buildModel({ type: "mlp", hidden: [5] }, INPUT).init(random.key(1));
  await assert.rejects(
    ReplicaGroup.start(cfg, model.shapes, { params, m: opt.m, v: opt.v, teacherParams: wrong }),
    (e: unknown) => e instanceof Error && /^training worker: /.test((e as Error).message),
  );

  // Mid-run: a batch the model cannot take fails inside the workers; the error comes back
  // through next() instead of leaving the caller waiting.
  const g = await ReplicaGroup.start({ ...cfg, teacher: undefined }, model.shapes, { params, m: opt.m, v: opt.v });
  const hb: HostBatch = { x: data.x.slice(0, 16 * 63), xShape: [16, 63], labels: data.labels.slice(0, 16), labelShape: [16] };
  g.dispatch(hb, adamScalars(spec.optimizer, 0, 10), 0);
  await assert.rejects(g.next(), (e: unknown) => e instanceof Error && /^training worker: /.test((e as Error).message));
  await g.close();
  for (const p of [params, opt.m, opt.v, wrong]) tree.dispose(p);
});

test("evaluation on worker threads gives every row the logits one thread gives", async () => {
  const model = buildModel({ type: "cnn", channels: [4], dense: 8 }, INPUT);
  const params = model.init(random.key(3));
  const x = data.x.subarray(0, 1234 * data.dim).length === 1234 * data.dim ? data.x.subarray(0, 1234 * data.dim) : Float32Array.from({ length: 1234 * data.dim }, (_, i) => data.x[i % data.x.length]);
  const one = await predictLogits(model, params, x, data.dim);
  const two = await predictLogits(model, params, x, data.dim, 2);
  assert.equal(two.length, 1234 * 4);
  assert.deepEqual(two, one);
  tree.dispose(params);
});

test("replicas given whole batches by the calling thread train exactly as replicas building their own", async () => {
  const model = buildModel({ type: "mlp", hidden: [16] }, INPUT);
  const s: TrainSpec = { ...spec, shift: 1 };
  const built = await train({ name: "m", model, spec: s, data, seed: 4, workers: 2 });
  // The same batches through a source the workers cannot rebuild (as language-model text is).
  const src = exampleSource(data, { batchSize: 32, seed: 4, shift: 1, labels: true, classes: 4 });
  assert.ok(src.rebuild, "example sources can be rebuilt by workers");
  const handed = await train({ name: "m", model, spec: s, data: { stepsPerEpoch: src.stepsPerEpoch, batch: src.batch }, seed: 4, workers: 2 });
  assert.deepEqual(await flat(handed.params), await flat(built.params));
  for (const r of [built, handed]) tree.dispose(r.params);
});
