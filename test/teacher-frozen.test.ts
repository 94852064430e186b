// The teacher during distillation: its weights come out bit-identical, and it is applied in
// evaluation mode (no dropout) both when its logits are cached and when it runs live inside the
// student's compiled step (augmentation `shift`), on one thread and on two replicas.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { initDevice, np } from "../src/engine/index.js";
import { buildModel, type Model, type ModelSpec, type Params } from "../src/nn/models.js";
import { train, type TrainSpec } from "../src/train/trainer.js";
import { cacheTeacherLogits, teacherCounter } from "../src/teachers/teacher.js";
import { predictLogits } from "../src/eval/predict.js";
import { disposeParams, paramsToHost } from "../src/checkpoint/params.js";
import { Rng } from "../src/util/rng.js";
import { syntheticExamples } from "./helpers/synthetic.js";

before(async () => {
  await initDevice("wasm");
});

const INPUT = { height: 8, width: 8, channels: 1, classes: 4 };
const data = syntheticExamples(128, INPUT);
const TEACHER_DROPOUT: ModelSpec = { type: "mlp", hidden: [24], dropout: 0.5 };
const TEACHER_PLAIN: ModelSpec = { type: "mlp", hidden: [24] };
// The student has dropout too, so its step carries a dropout key a teacher could (wrongly) use.
const STUDENT: ModelSpec = { type: "mlp", hidden: [8], dropout: 0.2 };

/** Teacher weights drawn on the host (the same for both teacher specs: they share shapes). */
function teacherParams(model: Model, seed = 42): Params {
  const rng = new Rng(seed);
  const p: Params = {};
  for (const [name, shape] of model.shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    p[name] = np.array(Float32Array.from({ length: n }, () => (2 * rng.nextU32()) / 4294967296 - 1)).reshape(shape);
  }
  return p;
}

/** Every tensor's bytes, by name. */
async function bytes(p: Params): Promise<Map<string, Buffer>> {
  const h = await paramsToHost(p);
  return new Map(Object.entries(h).map(([k, t]) => [k, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)]));
}

function assertSameBytes(a: Map<string, Buffer>, b: Map<string, Buffer>, what: string): void {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [k, v] of a) assert.ok(v.equals(b.get(k)!), `${what}: ${k} differs`);
}

const spec = (shift: number): TrainSpec => ({
  epochs: 1,
  batchSize: 32,
  optimizer: { name: "adam", lr: 3e-3 },
  loss: { name: "hinton", temperature: 4, lambda: 0.9 },
  shift,
});

async function distil(teacherSpec: ModelSpec, params: Params, opts: { shift: number; workers: number; cached?: Float32Array }) {
  const teacher = { model: buildModel(teacherSpec, INPUT), params };
  const before = teacherCounter.examples;
  const r = await train({
    name: "student",
    model: buildModel(STUDENT, INPUT),
    spec: spec(opts.shift),
    data,
    seed: 5,
    teacher,
    cachedTeacherLogits: opts.cached,
    workers: opts.workers,
  });
  const out = await bytes(r.params);
  disposeParams(r.params);
  return { student: out, teacherPasses: teacherCounter.examples - before };
}

for (const [label, shift, workers] of [
  ["cached soft labels", 0, 1],
  ["live teacher with shift, one thread", 1, 1],
  ["live teacher with shift, two replicas", 1, 2],
] as const) {
  test(`the teacher's weights and outputs are bit-identical after distillation (${label})`, async () => {
    const model = buildModel(TEACHER_DROPOUT, INPUT);
    const params = teacherParams(model);
    const w0 = await bytes(params);
    const logits0 = await predictLogits(model, params, data.x, data.dim);
    const cached = shift ? undefined : await cacheTeacherLogits({ model, params }, data);
    const r = await distil(TEACHER_DROPOUT, params, { shift, workers, cached });
    // The live path really ran the teacher (4 steps of 32 rows); the cached one did not.
    assert.equal(r.teacherPasses, shift ? 128 : 0);
    assertSameBytes(w0, await bytes(params), "teacher weights");
    const logits1 = await predictLogits(model, params, data.x, data.dim);
    assert.ok(Buffer.from(logits0.buffer).equals(Buffer.from(logits1.buffer)), "teacher outputs changed");
    disposeParams(params);
  });
}

test("cached soft labels are the teacher's evaluation-mode outputs (dropout off)", async () => {
  const withDropout = buildModel(TEACHER_DROPOUT, INPUT);
  const plain = buildModel(TEACHER_PLAIN, INPUT);
  const p = teacherParams(withDropout);
  const a = await cacheTeacherLogits({ model: withDropout, params: p }, data);
  const b = await cacheTeacherLogits({ model: plain, params: p }, data);
  assert.ok(Buffer.from(a.buffer).equals(Buffer.from(b.buffer)));
  disposeParams(p);
});

for (const workers of [1, 2]) {
  test(`a teacher with dropout runs in evaluation mode inside the student's step (shift, ${workers} worker${workers > 1 ? "s" : ""})`, async () => {
    // The same weights with dropout 0.5 and without dropout: in evaluation mode they are the
    // same function, so the students must come out bit-identical. A teacher applied with
    // `train: true` (dropping half its units with the step's key) would not.
    const p = teacherParams(buildModel(TEACHER_PLAIN, INPUT));
    const a = await distil(TEACHER_DROPOUT, p, { shift: 1, workers });
    const b = await distil(TEACHER_PLAIN, p, { shift: 1, workers });
    assert.equal(a.teacherPasses, 128);
    assertSameBytes(a.student, b.student, "student after distillation");
    // And the teacher matters: another teacher gives another student.
    const q = teacherParams(buildModel(TEACHER_PLAIN, INPUT), 43);
    const c = await distil(TEACHER_PLAIN, q, { shift: 1, workers });
    assert.ok([...c.student].some(([k, v]) => !v.equals(a.student.get(k)!)), "the student did not depend on its teacher");
    disposeParams(p);
    disposeParams(q);
  });
}
