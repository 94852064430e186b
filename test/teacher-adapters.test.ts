// The trainer takes soft labels from a teacher without knowing its kind: a top-k teacher's
// batch fields give the loss and gradient of the dense top-k path, an external teacher's
// soft labels train the same student as distill's own teacher (cached, live on augmented
// views, and for a language model in top-k + tail mode).
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { initDevice, np, random, valueAndGrad, type Arr } from "../src/engine/index.js";
import { buildLoss, type DivergenceName } from "../src/losses/index.js";
import { batchToDevice, shardBatch } from "../src/train/replicas.js";
import { exampleSource, train, type HostBatch, type TrainSpec } from "../src/train/trainer.js";
import { attachSoftLabels, cacheTeacherLogits, logTailOf, teacherCounter, topKOfLogits, withSoftLabels } from "../src/teachers/teacher.js";
import type { ExternalTeacher } from "../src/teachers/types.js";
import { buildModel, type Model, type Params } from "../src/nn/models.js";
import { llama, type LanguageModel } from "../src/nn/llama.js";
import { predictLogits } from "../src/eval/predict.js";
import { lmLogits } from "../src/eval/lm-metrics.js";
import { textSource } from "../src/data/text-source.js";
import { disposeParams, paramsToHost } from "../src/checkpoint/params.js";
import { UserError } from "../src/util/errors.js";
import { rng } from "./helpers/numeric.js";
import { syntheticExamples } from "./helpers/synthetic.js";

before(async () => {
  await initDevice("wasm");
});

const B = 2;
const T = 3;
const V = 11;
const K = 4;

function randomArray(rand: () => number, n: number, scale = 3): Float32Array {
  return Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
}

/** Loss and gradient with respect to the student logits, as host arrays. */
async function lossAndGrad(f: (s: Arr) => Arr, s: Float32Array): Promise<[number, Float32Array]> {
  const [v, g] = valueAndGrad(f)(np.array(s).reshape([B, T, V])) as [Arr, Arr];
  return [((await v.data()) as Float32Array)[0], (await g.data()) as Float32Array];
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const rand = rng(7);
const student = randomArray(rand, B * T * V);
const teacher = randomArray(rand, B * T * V, 4);
const labels = Int32Array.from({ length: B * T }, (_, i) => (i * 5) % V);
const mask = Float32Array.from({ length: B * T }, (_, i) => (i === 4 ? 0 : 1));
const base: HostBatch = { x: new Int32Array(B * T), xShape: [B, T], labels, labelShape: [B, T], mask };

for (const divergence of ["forward-kl", "reverse-kl", "jsd"] as DivergenceName[]) {
  for (const lambda of [1, 0.7]) {
    test(`a top-k batch gives the loss and gradient of topKTeacher on the dense logits (${divergence}, λ = ${lambda})`, async () => {
      const dense = buildLoss({ name: "hinton", lambda, divergence, topK: K });
      const sparse = buildLoss({ name: "hinton", lambda, divergence });
      const hb = attachSoftLabels(base, topKOfLogits(teacher, B * T, V, K), "test");
      const [v1, g1] = await lossAndGrad((s) => {
        const d = batchToDevice({ ...base, teacherLogits: teacher, teacherShape: [B, T, V] });
        return dense(s, { labels: d.labels, teacherLogits: d.teacherLogits, mask: d.mask });
      }, student);
      const [v2, g2] = await lossAndGrad((s) => {
        const d = batchToDevice(hb);
        return sparse(s, { labels: d.labels, teacherTopK: d.teacherTopK, mask: d.mask });
      }, student);
      assert.ok(Math.abs(v1 - v2) < 1e-6, `loss ${v1} vs ${v2}`);
      assert.ok(maxAbsDiff(g1, g2) < 1e-6, `gradient differs by ${maxAbsDiff(g1, g2)}`);
      // The masked position has no gradient from the divergence (only CE when λ < 1).
      assert.ok(v1 > 0.01, "a divergence this small would hide a wrong teacher");
    });
  }
}

test("a top-k teacher's tail from its k log-probabilities (float64) is its exact tail to float32 rounding", () => {
  const s = topKOfLogits(teacher, B * T, V, K);
  const tail = logTailOf(s.logprobs, B * T, K);
  assert.ok(maxAbsDiff(tail, s.logTail) < 1e-5, `tail differs by ${maxAbsDiff(tail, s.logTail)}`);
  // All classes kept: the tail is empty.
  assert.ok(logTailOf(topKOfLogits(teacher, B * T, V, V).logprobs, B * T, V).every((v) => v === -Infinity || v < -12));
});

test("a top-k teacher with T ≠ 1 is refused with one line naming loss.temperature", async () => {
  const loss = buildLoss({ name: "hinton", lambda: 1, temperature: 2 });
  const d = batchToDevice(attachSoftLabels(base, topKOfLogits(teacher, B * T, V, K), "test"));
  assert.throws(() => loss(np.array(student).reshape([B, T, V]), { teacherTopK: d.teacherTopK, mask: d.mask }), (e: Error) => e instanceof UserError && /^loss\.temperature: .*top-k.* T = 1/.test(e.message));
  const other = buildLoss({ name: "hinton", lambda: 1, topK: K + 1 });
  const d2 = batchToDevice(attachSoftLabels(base, topKOfLogits(teacher, B * T, V, K), "test"));
  assert.throws(() => other(np.array(student).reshape([B, T, V]), { teacherTopK: d2.teacherTopK }), (e: Error) => e instanceof UserError && /loss\.topK: 5 differs from the teacher's own k = 4/.test(e.message));
});

test("replicas' slices of a top-k batch are the batch's rows", () => {
  const hb = attachSoftLabels(base, topKOfLogits(teacher, B * T, V, K), "test");
  const parts = [0, 1].map((r) => shardBatch(hb, r, 2).teacherTopK!);
  const cat = (f: "ids" | "logprobs" | "logTail") => [...parts[0][f]!, ...parts[1][f]!];
  assert.deepEqual(cat("ids"), [...hb.teacherTopK!.ids]);
  assert.deepEqual(cat("logprobs"), [...hb.teacherTopK!.logprobs]);
  assert.deepEqual(cat("logTail"), [...hb.teacherTopK!.logTail!]);
  assert.equal(parts[0].ids.length, T * K);
});

// An external teacher made from distill's own model, so the two paths can be compared.
function classifierAsExternal(model: Model, params: Params): ExternalTeacher {
  return {
    kind: "test",
    source: "in-memory classifier",
    classes: model.input.classes,
    output: "dense",
    async softLabels(x, shape) {
      const logits = await predictLogits(model, params, x as Float32Array, shape[1]);
      return { kind: "dense", rows: shape[0], classes: model.input.classes, logits };
    },
    async close() {},
  };
}

const INPUT = { height: 8, width: 8, channels: 1, classes: 4 };
const data = syntheticExamples(96, INPUT);
const spec = (shift: number): TrainSpec => ({ epochs: 1, batchSize: 32, optimizer: { name: "adam", lr: 3e-3 }, loss: { name: "hinton", temperature: 3, lambda: 0.8 }, shift });

async function hostParams(p: Params): Promise<Float32Array[]> {
  const h = await paramsToHost(p);
  return Object.keys(h)
    .sort()
    .map((k) => h[k].data as Float32Array);
}

function assertClose(a: Float32Array[], b: Float32Array[], tol: number, what: string): void {
  a.forEach((x, i) => assert.ok(maxAbsDiff(x, b[i]) <= tol, `${what}: tensor ${i} differs by ${maxAbsDiff(x, b[i])}`));
}

for (const shift of [0, 1]) {
  test(`a classifier distilled from an external teacher's soft labels equals one from distill's own teacher (${shift ? "augmented views, live" : "cached"})`, async () => {
    const tm = buildModel({ type: "mlp", hidden: [16] }, INPUT);
    const tp = tm.init(random.key(3));
    const ext = classifierAsExternal(tm, tp);
    const run = async (external: boolean) => {
      const model = buildModel({ type: "mlp", hidden: [8] }, INPUT);
      const s = spec(shift);
      const base = { name: "student", model, spec: s, seed: 5 };
      let r;
      if (!shift) {
        const cached = await cacheTeacherLogits(external ? ext : { model: tm, params: tp }, data);
        r = await train({ ...base, data, cachedTeacherLogits: cached });
      } else if (external) {
        const src = exampleSource(data, { batchSize: s.batchSize, seed: 5, shift, labels: true, classes: INPUT.classes });
        r = await train({ ...base, data: withSoftLabels(src, ext) });
      } else {
        r = await train({ ...base, data, teacher: { model: tm, params: tp } });
      }
      const out = await hostParams(r.params);
      disposeParams(r.params);
      return out;
    };
    const before = teacherCounter.examples;
    const a = await run(true);
    assert.equal(teacherCounter.examples - before, 96, "the external teacher saw every training example once");
    const b = await run(false);
    assertClose(a, b, 1e-5, "student");
    disposeParams(tp);
  });
}

function lmAsExternal(model: LanguageModel, params: Params, k?: number): ExternalTeacher {
  return {
    kind: "test",
    source: "in-memory llama",
    classes: model.vocab,
    output: k ? "topk" : "dense",
    async softLabels(x, shape) {
      const logits = await lmLogits(model, params, x as Int32Array, shape[1]);
      const rows = shape[0] * shape[1];
      return k ? topKOfLogits(logits, rows, model.vocab, k) : { kind: "dense", rows, classes: model.vocab, logits };
    },
    async close() {},
  };
}

for (const workers of [1, 2]) {
  test(`a language model distilled from a top-k external teacher equals one from distill's own teacher with loss.topK (${workers} worker${workers > 1 ? "s" : ""})`, async () => {
    const LV = 9;
    const ids = Int32Array.from({ length: 2000 }, (_, i) => (i * 3 + Math.floor(i / 7)) % LV);
    const tm = llama({ type: "llama", layers: 1, width: 16, heads: 2, context: 8 }, LV);
    const tp = tm.init(random.key(4));
    const run = async (external: boolean) => {
      const model = llama({ type: "llama", layers: 1, width: 8, heads: 2, context: 8 }, LV);
      const source = textSource({ ids, context: 8, batchSize: 4, steps: 6, seed: 2 });
      const loss = { name: "hinton", lambda: 0.5, topK: 3 };
      const r = await train({
        name: "student",
        model,
        spec: { epochs: 1, batchSize: 4, optimizer: { name: "adam", lr: 1e-2 }, loss },
        data: external ? withSoftLabels(source, lmAsExternal(tm, tp, 3)) : source,
        seed: 1,
        teacher: external ? undefined : { model: tm, params: tp },
        workers,
      });
      const out = await hostParams(r.params);
      disposeParams(r.params);
      return out;
    };
    const a = await run(true);
    const b = await run(false);
    assertClose(a, b, 2e-5, "LM student");
    disposeParams(tp);
  });
}
