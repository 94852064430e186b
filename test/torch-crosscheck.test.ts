// Cross-implementation check of the training step against PyTorch: from the same initial
// weights and the same batches, five steps of our real trainer (`train`, with the model, loss
// and Adam of the registries) and five steps of an independent PyTorch implementation
// (test/reference/torch_steps.py: F.kl_div, F.cross_entropy, torch.optim.Adam/AdamW, float64)
// must end at the same parameters within 1e-4, and every step's loss must agree.
//
// Which bugs it catches (each tried by hand, see docs/RESULTS.md): a swapped KL direction, a
// dropped T², λ on the wrong term (the λ ≠ 0.5 cases), a top-k without its tail bucket, a masked
// mean over the wrong count, cached teacher logits gathered for the wrong rows, gradients summed
// instead of averaged over replicas (the two-worker cases). Also compared: cached teacher logits
// against PyTorch's evaluation-mode teacher (the teachers have dropout), and the Llama forward
// (RoPE, RMSNorm, causal attention, SwiGLU) against one written by Hugging Face's conventions.
// Adam alone is invariant to the scale of the gradient, so every step's loss is compared too,
// and some cases use Adam's L2 weight decay (added to the gradient, so its scale matters).
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { initDevice, np } from "../src/engine/index.js";
import { buildModel, type InputShape, type ModelSpec, type Params } from "../src/nn/models.js";
import { llama, type LlamaSpec } from "../src/nn/llama.js";
import { train, type BatchSource, type HostBatch, type TrainableModel } from "../src/train/trainer.js";
import { cacheTeacherLogits } from "../src/teachers/teacher.js";
import { disposeParams, paramsToHost } from "../src/checkpoint/params.js";
import { decodeSafetensors, encodeSafetensors, type HostTensor } from "../src/checkpoint/safetensors.js";
import { epochOrder, type Examples } from "../src/data/batches.js";
import type { LossSpec } from "../src/losses/index.js";
import type { OptimizerSpec } from "../src/optim/index.js";
import { Rng, deriveSeed } from "../src/util/rng.js";

const PYTHON = "/usr/bin/python3";
const SCRIPT = fileURLToPath(new URL("./reference/torch_steps.py", import.meta.url));
const torchCheck = spawnSync(PYTHON, ["-c", "import torch"], { encoding: "utf8" });
const SKIP = torchCheck.status === 0 ? false : `PyTorch cannot be imported by ${PYTHON} (Debian's python3-torch): cross-check skipped`;

const TOL = 1e-4;
const STEPS = 5;
const SEED = 3;

function uniform(n: number, a: number, rng: Rng): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * (rng.nextU32() / 4294967296) - 1) * a;
  return out;
}

/** Teacher weights drawn on the host, large enough that its soft labels are far from uniform. */
function randomParams(shapes: [string, number[]][], scale: number, seed: number): { host: Record<string, HostTensor>; params: Params } {
  const rng = new Rng(seed);
  const host: Record<string, HostTensor> = {};
  const params: Params = {};
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = name.endsWith("norm.weight") ? uniform(n, 0.2, rng).map((v) => 1 + v) : uniform(n, scale, rng);
    host[name] = { dtype: "F32", shape, data };
    params[name] = np.array(data).reshape(shape);
  }
  return { host, params };
}

type ModelInfo = { spec: ModelSpec; input: InputShape } | { spec: LlamaSpec; vocab: number };

interface Case {
  name: string;
  student: ModelInfo;
  teacher?: ModelInfo & { scale: number };
  loss: LossSpec;
  optimizer: OptimizerSpec;
  batchSize: number;
  workers?: number;
  /** Teacher logits from the soft-label cache (one eval pass), else the live teacher in the step. */
  cached?: boolean;
  /** LM batches: which positions train (1) per row of the context; default all. */
  maskFrom?: number;
  /** Classifiers: 3 epochs of 2 steps (a new shuffle each epoch) instead of one of 5. */
  epochs?: 3;
}

const stepsOf = (c: Case) => (c.epochs ? 2 * c.epochs : STEPS);

const INPUT: InputShape = { height: 8, width: 8, channels: 1, classes: 5 };
const MLP: ModelInfo = { spec: { type: "mlp", hidden: [16] }, input: INPUT };
const MLP_TEACHER = { spec: { type: "mlp" as const, hidden: [24], dropout: 0.3 }, input: INPUT, scale: 0.5 };
const CNN: ModelInfo = { spec: { type: "cnn", channels: [2, 3], dense: 6 }, input: INPUT };
const CNN_TEACHER = { spec: { type: "cnn" as const, channels: [3, 4], dense: 8, dropout: 0.3 }, input: INPUT, scale: 0.5 };
const VOCAB = 11;
const LM: ModelInfo = { spec: { type: "llama", layers: 1, width: 8, heads: 2, context: 8, hidden: 16 }, vocab: VOCAB };
const LM_TEACHER = { spec: { type: "llama" as const, layers: 2, width: 16, heads: 2, context: 8 }, vocab: VOCAB, scale: 0.4 };
const adam: OptimizerSpec = { name: "adam", lr: 1e-3 };
const adamw: OptimizerSpec = { name: "adamw", lr: 2e-3, weightDecay: 0.01 };

const CASES: Case[] = [
  { name: "mlp-ce", student: MLP, loss: { name: "ce" }, optimizer: adam, batchSize: 8 },
  { name: "mlp-hinton-T4-l0.5-cached", student: MLP, teacher: MLP_TEACHER, cached: true, loss: { name: "hinton", temperature: 4, lambda: 0.5 }, optimizer: adam, batchSize: 8 },
  { name: "mlp-hinton-T4-l0.9-live-2w", student: MLP, teacher: MLP_TEACHER, loss: { name: "hinton", temperature: 4, lambda: 0.9 }, optimizer: { name: "adam", lr: 1e-3, weightDecay: 0.5 }, batchSize: 32, workers: 2 },
  { name: "mlp-softkd-T2-cached", student: MLP, teacher: MLP_TEACHER, cached: true, loss: { name: "soft-kd", temperature: 2 }, optimizer: { name: "adam", lr: 1e-3, weightDecay: 0.5 }, batchSize: 8 },
  { name: "cnn-hinton-T4-l0.9-cached-2w-3epochs", student: CNN, teacher: CNN_TEACHER, cached: true, loss: { name: "hinton", temperature: 4, lambda: 0.9 }, optimizer: { name: "adam", lr: 1e-3, weightDecay: 0.5 }, batchSize: 32, workers: 2, epochs: 3 },
  { name: "cnn-hinton-T4-l0.9-cached", student: CNN, teacher: CNN_TEACHER, cached: true, loss: { name: "hinton", temperature: 4, lambda: 0.9 }, optimizer: adam, batchSize: 8 },
  { name: "lm-ce", student: LM, loss: { name: "ce" }, optimizer: adamw, batchSize: 4 },
  { name: "lm-rkl-T2-l0.7", student: LM, teacher: LM_TEACHER, loss: { name: "hinton", divergence: "reverse-kl", temperature: 2, lambda: 0.7 }, optimizer: adamw, batchSize: 4 },
  { name: "lm-jsd-b0.5-masked", student: LM, teacher: LM_TEACHER, loss: { name: "soft-kd", divergence: "jsd", beta: 0.5 }, optimizer: adamw, batchSize: 4, maskFrom: 3 },
  { name: "lm-topk3-T2-masked-2w", student: LM, teacher: LM_TEACHER, loss: { name: "soft-kd", topK: 3, temperature: 2 }, optimizer: adamw, batchSize: 4, maskFrom: 3, workers: 2 },
];

function buildAny(m: ModelInfo): TrainableModel {
  return "vocab" in m ? llama(m.spec, m.vocab) : buildModel(m.spec, m.input);
}

/** Random examples: n rows of the case's input. */
function examples(n: number, seed: number): Examples {
  const rng = new Rng(seed);
  const dim = INPUT.height * INPUT.width;
  const labels = new Int32Array(n).map(() => rng.int(INPUT.classes));
  return { x: uniform(n * dim, 1, rng), dim, n, labels, height: INPUT.height, width: INPUT.width };
}

/**
 * Random token batches [B, context] in the trainer's LM format. With `maskFrom`, only positions
 * ≥ maskFrom train (as in a generated batch); the rows have equal counts, so two replicas'
 * per-slice means average to the whole batch's.
 */
function lmBatches(B: number, C: number, seed: number, maskFrom = 0): HostBatch[] {
  const rng = new Rng(seed);
  return Array.from({ length: STEPS }, () => {
    const x = new Int32Array(B * C).map(() => rng.int(VOCAB));
    const labels = new Int32Array(B * C).map(() => rng.int(VOCAB));
    const mask = new Float32Array(B * C);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < C; t++) {
        if (t >= maskFrom) mask[b * C + t] = 1;
        else labels[b * C + t] = -1;
      }
    }
    return { x, xShape: [B, C], labels, labelShape: [B, C], mask };
  });
}

interface Outcome {
  init: Record<string, HostTensor>;
  final: Record<string, HostTensor>;
  losses: number[];
}

const dir = SKIP ? "" : mkdtempSync(join(tmpdir(), "distill-torch-"));
const ours = new Map<string, Outcome>();
const theirs = new Map<string, Record<string, HostTensor>>();

/** Runs our trainer on a case and writes its inputs for the PyTorch script. */
async function runOurs(c: Case, i: number): Promise<Record<string, unknown>> {
  const model = buildAny(c.student);
  const tensors: Record<string, HostTensor> = {};
  let teacher: { model: TrainableModel; params: Params } | undefined;
  if (c.teacher) {
    const t = randomParams(buildAny(c.teacher).shapes, c.teacher.scale, 100 + i);
    teacher = { model: buildAny(c.teacher), params: t.params };
    for (const [k, v] of Object.entries(t.host)) tensors[`teacher.${k}`] = v;
  }
  let data: Examples | BatchSource;
  let cachedTeacherLogits: Float32Array | undefined;
  if ("vocab" in c.student) {
    const batches = lmBatches(c.batchSize, c.student.spec.context, 200 + i, c.maskFrom);
    data = { stepsPerEpoch: STEPS, batch: (_e, s) => batches[s] };
    const cat = <T extends Float32Array | Int32Array>(f: (b: HostBatch) => T, make: new (n: number) => T): T => {
      const out = new make(batches.reduce((n, b) => n + f(b).length, 0));
      batches.forEach((b, s) => out.set(f(b), s * f(b).length));
      return out;
    };
    const shape = [STEPS, c.batchSize, c.student.spec.context];
    tensors["batch.x"] = { dtype: "I32", shape, data: cat((b) => b.x as Int32Array, Int32Array) };
    tensors["batch.labels"] = { dtype: "I32", shape, data: cat((b) => b.labels!, Int32Array) };
    tensors["batch.mask"] = { dtype: "F32", shape, data: cat((b) => b.mask!, Float32Array) };
  } else {
    const perEpoch = c.epochs ? 2 : STEPS;
    const ex = examples(perEpoch * c.batchSize, 300 + i);
    data = ex;
    if (c.cached) cachedTeacherLogits = await cacheTeacherLogits({ model: teacher!.model as never, params: teacher!.params }, ex);
    tensors["data.x"] = { dtype: "F32", shape: [ex.n, ex.dim], data: ex.x };
    tensors["data.labels"] = { dtype: "I32", shape: [ex.n], data: ex.labels };
    // The trainer's example order, epoch after epoch; PyTorch gathers rows (and teacher
    // outputs) by it.
    const epochs = c.epochs ?? 1;
    const order = new Int32Array(epochs * ex.n);
    for (let e = 0; e < epochs; e++) order.set(epochOrder(ex.n, deriveSeed(SEED, "data"), e), e * ex.n);
    tensors["order"] = { dtype: "I32", shape: [order.length], data: order };
  }
  const args = { name: c.name, model, data, seed: SEED, teacher, cachedTeacherLogits, workers: c.workers ?? 1 };
  const spec = { batchSize: c.batchSize, optimizer: c.optimizer, loss: c.loss };
  // Zero epochs: the trainer's own initial weights, untouched.
  const start = await train({ ...args, spec: { ...spec, epochs: 0 } });
  const init = await paramsToHost(start.params);
  disposeParams(start.params);
  const losses: number[] = [];
  const r = await train({ ...args, spec: { ...spec, epochs: c.epochs ?? 1 }, logEvery: 1, log: (rec) => { if ("loss" in rec) losses.push(rec.loss); } });
  assert.equal(r.steps, stepsOf(c));
  const final = await paramsToHost(r.params);
  disposeParams(r.params);
  if (teacher) disposeParams(teacher.params);
  ours.set(c.name, { init, final, losses });
  for (const [k, v] of Object.entries(init)) tensors[`student.${k}`] = v;
  writeFileSync(join(dir, `${c.name}.safetensors`), encodeSafetensors(tensors));
  const info = (m: ModelInfo) => ("vocab" in m ? { spec: m.spec, vocab: m.vocab } : { spec: m.spec, input: m.input });
  return { name: c.name, student: info(c.student), teacher: c.teacher && info(c.teacher), loss: c.loss, optimizer: c.optimizer, batchSize: c.batchSize, steps: stepsOf(c) };
}

before(async () => {
  if (SKIP) return;
  await initDevice("wasm");
  try {
    const manifest = [];
    for (const [i, c] of CASES.entries()) manifest.push(await runOurs(c, i));
    writeFileSync(join(dir, "manifest.json"), JSON.stringify({ cases: manifest }));
    const py = spawnSync(PYTHON, [SCRIPT, dir], { encoding: "utf8", env: { ...process.env, OMP_NUM_THREADS: "1" } });
    assert.equal(py.status, 0, `torch_steps.py failed:\n${py.stderr}`);
    for (const c of CASES) {
      const file = join(dir, `${c.name}.out.safetensors`);
      theirs.set(c.name, decodeSafetensors(readFileSync(file), file).tensors);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

for (const c of CASES) {
  test(`PyTorch cross-check: ${c.name}, ${stepsOf(c)} steps give the same parameters and losses`, { skip: SKIP }, (t_) => {
    const o = ours.get(c.name)!;
    const t = theirs.get(c.name)!;
    const torchLosses = Array.from(t.losses.data as Float64Array);
    assert.equal(o.losses.length, stepsOf(c));
    for (let s = 0; s < stepsOf(c); s++) {
      const tol = TOL * Math.max(1, Math.abs(torchLosses[s]));
      assert.ok(Math.abs(o.losses[s] - torchLosses[s]) <= tol, `step ${s + 1} loss: ours ${o.losses[s]}, PyTorch ${torchLosses[s]}`);
    }
    let moved = 0;
    let worst = 0;
    for (const [name, ft] of Object.entries(o.final)) {
      assert.ok(Object.hasOwn(t, name), `PyTorch returned no ${name}`);
      const d = maxAbsDiff(ft.data as Float32Array, t[name].data as Float64Array);
      assert.ok(d <= TOL, `${name}: max |ours − PyTorch| = ${d.toExponential(3)} > ${TOL}`);
      worst = Math.max(worst, d);
      moved = Math.max(moved, maxAbsDiff(o.init[name].data as Float32Array, t[name].data as Float64Array));
    }
    // The comparison means something only if five steps moved the weights well past the tolerance.
    assert.ok(moved > 20 * TOL, `parameters moved only ${moved}`);
    t_.diagnostic(`max |ours − PyTorch| ${worst.toExponential(2)}; weights moved up to ${moved.toExponential(2)}`);
  });
}
