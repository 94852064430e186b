// Training with intermediate-layer terms: a 1-layer BERT student against a live 2-layer BERT
// teacher of another width, all five terms, on one thread and on two replicas.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { initDevice, liveBuffers, np, random } from "../src/engine/index.js";
import { bert, type BertSpec } from "../src/nn/bert.js";
import { buildModel, type InputShape, type Params } from "../src/nn/models.js";
import { train, type TrainLogRecord, type TrainSpec, type ValidationLogRecord } from "../src/train/trainer.js";
import { projectionShapes, type IntermediateSpec } from "../src/losses/intermediate/index.js";
import { splitProjections, withProjections } from "../src/losses/intermediate/projections.js";
import { disposeParams, paramsToHost } from "../src/checkpoint/params.js";
import type { Examples } from "../src/data/batches.js";
import { deriveSeed, Rng } from "../src/util/rng.js";
import { UserError } from "../src/util/errors.js";

before(async () => {
  await initDevice("wasm");
});

const L = 8;
const PAD = 0;
const INPUT: InputShape = { height: 1, width: L, channels: 1, classes: 2, text: { vocab: 13, length: L, padId: PAD } };
const STUDENT: BertSpec = { type: "bert", layers: 1, hidden: 8, heads: 2, intermediate: 16, dropout: 0 };
const TEACHER: BertSpec = { type: "bert", layers: 2, hidden: 12, heads: 2, intermediate: 24, dropout: 0 };
const INTERMEDIATE: IntermediateSpec = {
  terms: [
    { name: "hidden-mse", weight: 1 },
    { name: "embedding-mse", weight: 1 },
    { name: "attention-kl", weight: 1 },
    { name: "value-relation", weight: 1 },
    { name: "hidden-cosine", weight: 1 },
  ],
};
const SPEC: TrainSpec = {
  epochs: 3,
  batchSize: 16,
  optimizer: { name: "adamw", lr: 1e-2 },
  loss: { name: "hinton", temperature: 2, lambda: 0.5 },
  intermediate: INTERMEDIATE,
};

/** Rows of 3..8 tokens (ids 1..12) padded with 0; the label says whether token 12 occurs. */
function textExamples(n: number, seed: number): Examples {
  const rng = new Rng(seed);
  const x = new Float32Array(n * L);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const len = 3 + rng.int(L - 2);
    for (let p = 0; p < len; p++) x[i * L + p] = 1 + rng.int(12);
    labels[i] = x.subarray(i * L, i * L + len).includes(12) ? 1 : 0;
  }
  return { x, dim: L, n, labels, height: 1, width: L };
}

const data = textExamples(64, 3);

function teacherParams(): Params {
  return bert(TEACHER, INPUT).init(random.key(7));
}

async function run(opts: { workers?: number; student?: BertSpec; teacher?: BertSpec; spec?: TrainSpec; validate?: (p: Params) => void }) {
  const losses: number[] = [];
  const tp = teacherParams();
  const r = await train({
    name: "s",
    model: bert(opts.student ?? STUDENT, INPUT),
    spec: opts.spec ?? SPEC,
    data,
    seed: 1,
    teacher: { model: bert(opts.teacher ?? TEACHER, INPUT), params: tp },
    logEvery: 1,
    workers: opts.workers,
    validate: opts.validate && (async (p) => (opts.validate!(p), { loss: 0, accuracy: 0 })),
    log: (rec: TrainLogRecord | ValidationLogRecord) => void ("loss" in rec && losses.push(rec.loss)),
  });
  disposeParams(tp);
  const host = await paramsToHost(r.params);
  disposeParams(r.params);
  return { r, losses, host };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

test("the wrapper's init gives the student exactly its own init; projections are nn.Linear-initialised", async () => {
  const student = bert(STUDENT, INPUT);
  const shapes = projectionShapes(INTERMEDIATE, STUDENT, TEACHER);
  const key = deriveSeed(1, "init", JSON.stringify(STUDENT)) & 0x7fffffff;
  const wrapped = await paramsToHost(withProjections(student, shapes).init(random.key(key)));
  const alone = await paramsToHost(student.init(random.key(key)));
  for (const [name] of student.shapes) assert.deepEqual(wrapped[name].data, alone[name].data, name);
  const bound = 1 / Math.sqrt(STUDENT.hidden);
  for (const [name, shape] of shapes) {
    const d = wrapped[name].data as Float32Array;
    assert.deepEqual(wrapped[name].shape, shape);
    assert.ok(d.every((v) => Math.abs(v) <= bound) && d.some((v) => Math.abs(v) > bound / 4), `${name} within ±1/√Hs`);
  }
});

test("1 worker: the loss goes down, the params hold the student's tensors plus trained projections, steps leak nothing", async () => {
  // Each train() compiles its own step, whose constants stay with it (a plain ce run of this
  // student keeps 7 buffers too): what must not grow is the count with the number of steps.
  let live = liveBuffers();
  await run({ spec: { ...SPEC, epochs: 1 } });
  const perRun = liveBuffers() - live;
  live = liveBuffers();
  const { r, losses, host } = await run({});
  assert.equal(liveBuffers() - live, perRun, "live device buffers after 12 steps vs after 4");
  assert.ok(perRun <= 20, `${perRun} buffers kept per run`);
  assert.equal(r.status, "done");
  assert.equal(losses.length, 12);
  assert.ok(losses.every(Number.isFinite));
  assert.ok(mean(losses.slice(-3)) < 0.8 * mean(losses.slice(0, 3)), `loss ${losses.map((l) => l.toFixed(3)).join(" ")}`);
  const shapes = projectionShapes(INTERMEDIATE, STUDENT, TEACHER);
  const student = bert(STUDENT, INPUT);
  assert.deepEqual(Object.keys(host).sort(), [...student.shapes, ...shapes].map(([n]) => n).sort());
  const init = await paramsToHost(withProjections(student, shapes).init(random.key(deriveSeed(1, "init", JSON.stringify(STUDENT)) & 0x7fffffff)));
  for (const [name] of shapes) assert.notDeepEqual(host[name].data, init[name].data, `${name} did not train`);
  const split = splitProjections(Object.fromEntries(Object.keys(host).map((k) => [k, np.zeros([1])])));
  assert.deepEqual(Object.keys(split.student).sort(), student.shapes.map(([n]) => n).sort());
  disposeParams(split.student);
  disposeParams(split.projections);
});

test("the teacher runs in eval mode: with dropout 0.5 it gives the student exactly what it gives with none", async () => {
  // The student has dropout (its keys come from the seed), so both runs take the dropout path.
  const spec = { ...SPEC, epochs: 1 };
  const student = { ...STUDENT, dropout: 0.1 };
  const a = await run({ spec, student });
  const b = await run({ spec, student, teacher: { ...TEACHER, dropout: 0.5 } });
  for (const name of Object.keys(a.host)) assert.deepEqual(b.host[name].data, a.host[name].data, name);
});

test("2 workers: replicas rebuild the student with its projections; same start, the loss goes down", async () => {
  const one = await run({});
  const validated: string[][] = [];
  const two = await run({ workers: 2, validate: (p) => validated.push(Object.keys(p).sort()) });
  // Validation sees the student alone, at every epoch's end.
  assert.deepEqual(validated, Array(3).fill(bert(STUDENT, INPUT).shapes.map(([n]) => n).sort()));
  assert.equal(two.r.status, "done");
  assert.deepEqual(Object.keys(two.host).sort(), Object.keys(one.host).sort());
  // Each replica averages its own slice's tokens, so the first loss is close, not equal.
  assert.ok(Math.abs(two.losses[0] - one.losses[0]) < 0.05 * one.losses[0], `first loss ${two.losses[0]} vs ${one.losses[0]}`);
  assert.ok(mean(two.losses.slice(-3)) < 0.8 * mean(two.losses.slice(0, 3)), `loss ${two.losses.map((l) => l.toFixed(3)).join(" ")}`);
});

test("an intermediate spec needs encoders on both sides: one-line UserErrors", async () => {
  const tp = teacherParams();
  const mlp = buildModel({ type: "mlp", hidden: [4] }, { height: 1, width: L, channels: 1, classes: 2 });
  const base = { name: "s", spec: SPEC, data, seed: 1 };
  await assert.rejects(train({ ...base, model: mlp, teacher: { model: bert(TEACHER, INPUT), params: tp } }), /^UserError: s\.train\.intermediate: needs an encoder student/);
  await assert.rejects(train({ ...base, model: bert(STUDENT, INPUT) }), /^UserError: s\.train\.intermediate: needs a teacher$/);
  await assert.rejects(
    train({ ...base, model: bert({ ...STUDENT, heads: 4 }, INPUT), teacher: { model: bert(TEACHER, INPUT), params: tp } }),
    (e: unknown) => e instanceof UserError && /^s\.train\.intermediate\.terms\[2\]: attention-kl/.test(e.message),
  );
  disposeParams(tp);
});
