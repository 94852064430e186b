import { before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { initDevice, random, tree } from "../src/engine/index.js";
import { buildModel, type Params } from "../src/nn/models.js";
import { train, type TrainSpec } from "../src/train/trainer.js";
import { cacheTeacherLogits, teacherCounter } from "../src/teachers/teacher.js";
import { predictLogits } from "../src/eval/predict.js";
import { classificationMetrics } from "../src/eval/metrics.js";
import { paramsToHost } from "../src/checkpoint/params.js";
import { UserError } from "../src/util/errors.js";
import { syntheticExamples } from "./helpers/synthetic.js";
import { tempDir } from "./helpers/tmp.js";

before(async () => {
  await initDevice("wasm");
});

const INPUT = { height: 8, width: 8, channels: 1, classes: 4 };
const data = syntheticExamples(320, INPUT);
const test_ = syntheticExamples(200, { ...INPUT, seed: 99 });
const adam = { name: "adam" as const, lr: 3e-3 };

async function host(p: Params): Promise<number[]> {
  const t = await paramsToHost(p);
  return Object.keys(t)
    .sort()
    .flatMap((k) => Array.from(t[k].data as Float32Array));
}

async function trainTeacher(): Promise<{ model: ReturnType<typeof buildModel>; params: Params }> {
  const model = buildModel({ type: "mlp", hidden: [32] }, INPUT);
  const r = await train({ name: "teacher", model, spec: { epochs: 4, batchSize: 32, optimizer: adam, loss: { name: "ce" } }, data, seed: 0 });
  return { model, params: r.params };
}

test("end to end on generated data: teacher learns, distilled student learns from soft labels alone", async () => {
  const teacher = await trainTeacher();
  const tlog = await predictLogits(teacher.model, teacher.params, test_.x, test_.dim);
  const tm = classificationMetrics(tlog, test_.labels, 4, null);
  assert.ok(tm.accuracy > 0.9, `teacher accuracy ${tm.accuracy}`);
  const student = buildModel({ type: "mlp", hidden: [8] }, INPUT);
  // Labels hidden from the student entirely: it can only learn from the teacher.
  const unlabelled = { ...data, labels: new Int32Array(data.n).fill(-1) };
  const cached = await cacheTeacherLogits(teacher, unlabelled);
  const r = await train({
    name: "student",
    model: student,
    spec: { epochs: 4, batchSize: 32, optimizer: adam, loss: { name: "soft-kd", temperature: 1 } },
    data: unlabelled,
    seed: 0,
    cachedTeacherLogits: cached,
  });
  const sm = classificationMetrics(await predictLogits(student, r.params, test_.x, test_.dim), test_.labels, 4, null);
  assert.ok(sm.accuracy > 0.85, `student accuracy ${sm.accuracy}`);
  tree.dispose(r.params);
  tree.dispose(teacher.params);
});

test("without augmentation the teacher runs once per training example; with it, on every view", async () => {
  const teacher = await trainTeacher();
  const student = buildModel({ type: "mlp", hidden: [8] }, INPUT);
  const spec: TrainSpec = { epochs: 3, batchSize: 32, optimizer: adam, loss: { name: "hinton", temperature: 2, lambda: 0.5 } };
  const before = teacherCounter.examples;
  const cached = await cacheTeacherLogits(teacher, data);
  const r1 = await train({ name: "s", model: student, spec, data, seed: 0, teacher, cachedTeacherLogits: cached });
  assert.equal(teacherCounter.examples - before, data.n, "3 epochs, one teacher pass per example");
  tree.dispose(r1.params);

  const mid = teacherCounter.examples;
  const r2 = await train({ name: "s", model: student, spec: { ...spec, shift: 1 }, data, seed: 0, teacher, cachedTeacherLogits: cached });
  const steps = Math.floor(data.n / 32) * 3;
  assert.equal(teacherCounter.examples - mid, steps * 32, "augmented: the teacher sees each augmented batch");
  tree.dispose(r2.params);
  tree.dispose(teacher.params);
});

test("same seed, same numbers; an interrupted and resumed run equals an uninterrupted one", async () => {
  const dir = tempDir("distill-resume-");
  const model = buildModel({ type: "mlp", hidden: [16], dropout: 0.1 }, INPUT);
  const spec: TrainSpec = { epochs: 3, batchSize: 32, optimizer: { name: "adamw", lr: 2e-3, schedule: "cosine", warmupSteps: 5 }, loss: { name: "ce" }, shift: 1 };
  const a = await train({ name: "m", model, spec, data, seed: 3 });
  const b = await train({ name: "m", model, spec, data, seed: 3 });
  const ha = await host(a.params);
  assert.deepEqual(await host(b.params), ha, "two runs with one seed differ");

  const ckpt = join(dir, "m.safetensors");
  const stop = { requested: false };
  const interrupted = await train({
    name: "m", model, spec, data, seed: 3, checkpoint: ckpt, config: { spec },
    stop,
    progress: (done) => {
      if (done === 13) stop.requested = true; // mid-epoch (10 steps per epoch)
    },
  });
  assert.equal(interrupted.status, "interrupted");
  assert.equal(interrupted.steps, 13);
  assert.ok(existsSync(ckpt));
  tree.dispose(interrupted.params);
  const resumed = await train({ name: "m", model, spec, data, seed: 3, checkpoint: ckpt, config: { spec }, resume: true });
  assert.equal(resumed.status, "done");
  assert.equal(resumed.steps, 30);
  assert.deepEqual(await host(resumed.params), ha, "resumed run differs from the uninterrupted one");

  await assert.rejects(
    train({ name: "m", model, spec, data, seed: 3, checkpoint: ckpt, config: { spec: { ...spec, epochs: 4 } }, resume: true }),
    (e: unknown) => e instanceof UserError && /different config/.test((e as Error).message),
  );
  for (const p of [a, b, resumed]) tree.dispose(p.params);
});

test("a NaN loss stops the run with a message and keeps the last good checkpoint", async () => {
  const dir = tempDir("distill-nan-");
  const ckpt = join(dir, "m.safetensors");
  const model = buildModel({ type: "mlp", hidden: [16] }, INPUT);
  const spec: TrainSpec = { epochs: 4, batchSize: 32, optimizer: adam, loss: { name: "ce" } };
  // Poisoned data from the second epoch on: the first epoch's checkpoint is the last good one.
  const poisoned = { ...data, x: Float32Array.from(data.x) };
  await assert.rejects(
    train({
      name: "m", model, spec, data: poisoned, seed: 0, checkpoint: ckpt, config: {}, logEvery: 5,
      progress: (done) => {
        if (done === 10) poisoned.x.fill(NaN);
      },
    }),
    (e: unknown) => e instanceof UserError && /loss became NaN/.test((e as Error).message) && (e as Error).message.includes(ckpt),
  );
  const state = JSON.parse(readFileSync(join(dir, "m.json"), "utf8")).state;
  assert.deepEqual([state.epoch, state.step, state.done], [1, 10, false]);
});

test("batch size larger than the data is a clear error", async () => {
  const model = buildModel({ type: "mlp", hidden: [4] }, INPUT);
  await assert.rejects(
    train({ name: "tiny", model, spec: { epochs: 1, batchSize: 1000, optimizer: adam, loss: { name: "ce" } }, data, seed: 0 }),
    /batchSize: 1000 is larger than the 320 training examples/,
  );
  random.key(0).dispose();
});
