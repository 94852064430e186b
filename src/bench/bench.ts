// `distill bench`: the training and inference paths that decide how long a distillation takes,
// timed through the real trainer on synthetic data of the real shapes.
import { random, tree } from "../engine/index.js";
import { buildModel, type Model, type Params } from "../nn/models.js";
import { llama, type LanguageModel } from "../nn/llama.js";
import { train, type BatchSource, type HostBatch, type TrainSpec } from "../train/trainer.js";
import { classifierLogits, ownModelOnOnnx, type InferenceEngine } from "../teachers/own-onnx.js";
import { TEACHER_THREADS, withSoftLabels } from "../teachers/teacher.js";
import { Rng } from "../util/rng.js";
import { stepsPerEpoch, type Examples } from "../data/batches.js";
import { UserError } from "../util/errors.js";
import { resolveWorkers } from "../train/replicas.js";
import { inferenceWorkers } from "../parallel/pool.js";
import type { Arr } from "../engine/index.js";
import type { DeployRecord, TimingOptions } from "../export/deploy.js";
import type { Exportable } from "../export/exportable.js";
import { fmtBytes, fmtMs } from "../report/results.js";

export interface BenchResult {
  workload: string;
  steps: number;
  /** Data-parallel replicas the training workloads ran on. */
  workers: number;
  batch: number;
  msPerStep: number;
  /** Samples per second; tokens per second for language models. */
  throughput: number;
  unit: "samples/s" | "tokens/s";
  /** The process's peak resident set size so far (workloads run one after another). */
  peakRssMB: number;
  /** Peak resident set size in each quarter of the timed steps (training workloads). */
  rssMB: number[];
  /** The workload's model-reading part ran in onnxruntime (`--inference onnxruntime`). */
  inference?: "onnxruntime";
}

export interface BenchOptions {
  /** Timed steps; default per workload (2,000 for the MLPs, so memory growth would show). */
  steps?: number;
  workers?: number | "auto";
  /** Batch size of the classifier training workloads (default 128, the article's). */
  batch?: number;
  /** "onnxruntime": teacher-inference and lm-student-kd's frozen teacher run the ONNX export there. */
  inference?: InferenceEngine;
}

const DEFAULT_STEPS: Record<string, number> = {
  "teacher-mlp": 2000,
  "student-kd-mlp": 2000,
  "cnn-student": 300,
  "teacher-inference": 200,
  "lm-student-kd": 20,
};

const FMNIST = { height: 28, width: 28, channels: 1, classes: 10 };

/**
 * Random examples of the real shape, 8,192 rows (at least two batches): the trainer builds its
 * batches from them (shuffled, gathered, sliced per worker) as it does from a real data set.
 */
function randomExamples(batch: number, classes: number): { data: Examples; teacherLogits: Float32Array } {
  const rng = new Rng(1);
  const n = Math.max(8192, 2 * batch);
  const x = Float32Array.from({ length: n * 784 }, () => rng.nextU32() / 4294967296);
  const labels = Int32Array.from({ length: n }, () => rng.int(classes));
  const teacherLogits = Float32Array.from({ length: n * classes }, () => rng.nextU32() / 4294967296 - 0.5);
  return { data: { x, dim: 784, n, labels, height: 28, width: 28 }, teacherLogits };
}

function tokenSource(rows: number, context: number, vocab: number): BatchSource {
  const rng = new Rng(2);
  const x = Int32Array.from({ length: rows * context }, () => rng.int(vocab));
  const labels = Int32Array.from({ length: rows * context }, () => rng.int(vocab));
  const mask = new Float32Array(rows * context).fill(1);
  const batch: HostBatch = { x, xShape: [rows, context], labels, labelShape: [rows, context], mask };
  return { stepsPerEpoch: 1 << 30, batch: () => batch };
}

const rssNow = () => process.memoryUsage.rss() / 2 ** 20;

/** Times `steps` trainer steps after `warmup` (compile) steps, sampling RSS each quarter. */
async function timeTraining(
  model: Model | LanguageModel,
  data: Examples | BatchSource,
  spec: TrainSpec,
  steps: number,
  warmup: number,
  rss: number[],
  workers: number | "auto",
  extra: { teacher?: { model: Model | LanguageModel; params: Params }; cachedTeacherLogits?: Float32Array } = {},
): Promise<number> {
  let t0 = 0;
  let t1 = 0;
  const total = warmup + steps;
  const quarter = Math.max(1, Math.floor(steps / 4));
  // Examples: as many epochs as it takes, stopped after `total` steps. Other sources: one epoch.
  const stop = { requested: false };
  const epochs = "batch" in data ? 1 : Math.ceil(total / stepsPerEpoch(data.n, spec.batchSize));
  const source = "batch" in data ? { stepsPerEpoch: total, batch: data.batch } : data;
  const r = await train({
    name: "bench",
    model,
    spec: { ...spec, epochs },
    data: source,
    seed: 0,
    ...extra,
    logEvery: 1 << 30,
    workers,
    stop,
    progress: (done) => {
      if (done === warmup) t0 = performance.now();
      if (done === total) {
        t1 = performance.now();
        stop.requested = true;
      }
      if (done <= warmup || done > total) return;
      // The peak of each quarter, sampled every step: a leak shows as a rising staircase.
      const q = Math.min(3, Math.floor((done - warmup - 1) / quarter));
      rss[q] = Math.max(rss[q] ?? 0, rssNow());
    },
  });
  tree.dispose(r.params);
  return (t1 - t0) / steps;
}

export const WORKLOADS = ["teacher-mlp", "student-kd-mlp", "cnn-student", "teacher-inference", "lm-student-kd"] as const;
export type Workload = (typeof WORKLOADS)[number];

export async function runWorkload(name: string, opts: BenchOptions = {}): Promise<BenchResult> {
  if (!Object.hasOwn(DEFAULT_STEPS, name)) throw new UserError(`bench: unknown workload "${name}" (known: ${WORKLOADS.join(", ")})`);
  const steps = opts.steps ?? DEFAULT_STEPS[name];
  const adam: TrainSpec["optimizer"] = { name: "adam", lr: 1e-3 };
  const warmup = 10;
  const B = opts.batch ?? 128;
  const requested = opts.workers ?? "auto";
  const rss: number[] = [];
  let ms: number;
  let per = B;
  let batch = B;
  let unit: BenchResult["unit"] = "samples/s";
  let workers = resolveWorkers(requested, B, `bench ${name}`);
  switch (name) {
    case "teacher-mlp": {
      const m = buildModel({ type: "mlp", hidden: [512, 256] }, FMNIST);
      ms = await timeTraining(m, randomExamples(B, 10).data, { epochs: 1, batchSize: B, optimizer: adam, loss: { name: "ce" } }, steps, warmup, rss, workers);
      break;
    }
    case "student-kd-mlp": {
      const m = buildModel({ type: "mlp", hidden: [128] }, FMNIST);
      const spec: TrainSpec = { epochs: 1, batchSize: B, optimizer: adam, loss: { name: "hinton", temperature: 2, lambda: 0.5 } };
      // Teacher logits cached, as the distillation recipes run it.
      const { data, teacherLogits } = randomExamples(B, 10);
      ms = await timeTraining(m, data, spec, steps, warmup, rss, workers, { cachedTeacherLogits: teacherLogits });
      break;
    }
    case "cnn-student": {
      const m = buildModel({ type: "cnn", channels: [8, 16], dense: 32 }, FMNIST);
      ms = await timeTraining(m, randomExamples(B, 10).data, { epochs: 1, batchSize: B, optimizer: adam, loss: { name: "ce" } }, steps, warmup, rss, workers);
      break;
    }
    case "teacher-inference": {
      workers = inferenceWorkers(requested);
      batch = 10000;
      const m = buildModel({ type: "mlp", hidden: [512, 256] }, FMNIST);
      const p = m.init(random.key(0));
      const rng = new Rng(3);
      const x = Float32Array.from({ length: 10000 * 784 }, () => rng.nextU32() / 4294967296);
      const engine = opts.inference ?? "distill";
      await classifierLogits(m, p, x, 784, workers, engine); // compile
      const reps = Math.max(1, Math.round(steps / 40));
      const t0 = performance.now();
      // With onnxruntime each pass also exports the model and opens a session, as evaluation does.
      for (let i = 0; i < reps; i++) await classifierLogits(m, p, x, 784, workers, engine);
      ms = (performance.now() - t0) / reps;
      per = 10000;
      tree.dispose(p);
      break;
    }
    case "lm-student-kd": {
      // charlm-fortunes: student 2×64 learning from the 4×128 teacher by forward KL, batch 32 × 64.
      const V = 113;
      batch = 32;
      workers = resolveWorkers(requested, batch, `bench ${name}`);
      const teacher = llama({ type: "llama", layers: 4, width: 128, heads: 4, context: 64 }, V);
      const tp = teacher.init(random.key(1));
      const student = llama({ type: "llama", layers: 2, width: 64, heads: 2, context: 64 }, V);
      const spec: TrainSpec = { epochs: 1, batchSize: batch, optimizer: { name: "adamw", lr: 2e-3 }, loss: { name: "hinton", divergence: "forward-kl", lambda: 0.5 } };
      if (opts.inference === "onnxruntime") {
        // The teacher's soft labels from its ONNX export, on the host, riding on each batch (as
        // distill run --inference onnxruntime gives them).
        const ext = await ownModelOnOnnx(teacher, tp, TEACHER_THREADS);
        try {
          ms = await timeTraining(student, withSoftLabels(tokenSource(batch, 64, V), ext), spec, steps, 3, rss, workers);
        } finally {
          await ext.close();
        }
      } else {
        const lmTeacher = { model: { ...teacher, apply: (p: Params, x: Arr) => teacher.apply(p, x) }, params: tp };
        ms = await timeTraining(student, tokenSource(batch, 64, V), spec, steps, 3, rss, workers, { teacher: lmTeacher });
      }
      tree.dispose(tp);
      per = batch * 64;
      unit = "tokens/s";
      break;
    }
    default:
      throw new UserError(`bench: unknown workload "${name}"`);
  }
  return {
    workload: name,
    steps,
    workers,
    batch,
    msPerStep: ms,
    throughput: (per * 1000) / ms,
    unit,
    peakRssMB: process.resourceUsage().maxRSS / 1024,
    rssMB: rss,
    ...(opts.inference === "onnxruntime" && (name === "teacher-inference" || name === "lm-student-kd") ? { inference: "onnxruntime" as const } : {}),
  };
}

/**
 * Whether RSS stayed flat: the last quarter's peak no higher than the peak before it, give or
 * take max(32 MB, 10 %). A leak sets a new high every quarter; the three engines' JavaScript
 * heaps breathing with garbage collection (±25 MB seen over 20,000 steps, with no trend) do not.
 */
export function rssFlat(rss: number[]): boolean | null {
  if (rss.length < 2) return null;
  const before = Math.max(...rss.slice(0, -1));
  return rss[rss.length - 1] <= before + Math.max(32, 0.1 * before);
}

export function formatBench(r: BenchResult): string {
  const line = `${r.workload.padEnd(18)} ${r.msPerStep.toFixed(2).padStart(9)} ms/step  ${Math.round(r.throughput).toLocaleString("en-US").padStart(10)} ${r.unit}  peak RSS ${r.peakRssMB.toFixed(0)} MB  (batch ${r.batch}, ${r.workers} worker${r.workers > 1 ? "s" : ""}${r.inference ? `, ${r.workload === "lm-student-kd" ? "teacher" : "forward"} in onnxruntime` : ""})`;
  if (r.rssMB.length < 2) return line;
  const flat = rssFlat(r.rssMB);
  return `${line}\n${"".padEnd(18)} peak RSS per quarter of ${r.steps} steps: ${r.rssMB.map((x) => x.toFixed(0)).join(" → ")} MB (${flat ? "flat" : "GROWING"})`;
}

export interface DeployBenchRow {
  role: "teacher" | "student";
  model: string;
  params: number;
  source: string;
  deploy: DeployRecord;
}

/**
 * `distill bench --workload deploy`: bytes and latency (export/deploy.ts) of a teacher and a
 * student, by default the seed recipe's Fashion-MNIST MLPs (784-512-256-10 and 784-128-10) with
 * random parameters (sizes and latency do not depend on the values), or two finished checkpoints.
 */
export async function runDeployBench(opts: { teacher?: string; student?: string; timing?: TimingOptions } = {}): Promise<DeployBenchRow[]> {
  const { exportableFrom, measureModel } = await import("../export/deploy.js");
  const { loadExportable } = await import("../export/exportable.js");
  const load = async (role: "teacher" | "student", path: string | undefined, hidden: number[]): Promise<DeployBenchRow> => {
    let m: Exportable;
    if (path) m = loadExportable(path);
    else {
      const model = buildModel({ type: "mlp", hidden }, FMNIST);
      const p = model.init(random.key(role === "teacher" ? 1 : 2));
      m = await exportableFrom(model, p, { input: FMNIST }, `random ${model.name}`);
      tree.dispose(p);
    }
    const params = Object.values(m.params).reduce((n, t) => n + t.data.length, 0);
    return { role, model: m.model.name, params, source: path ?? "random parameters", deploy: await measureModel(m, opts.timing) };
  };
  return [await load("teacher", opts.teacher, [512, 256]), await load("student", opts.student, [128])];
}

/** The two rows and teacher/student ratios (size, latency). */
export function formatDeployBench(rows: DeployBenchRow[]): string {
  const cells = (r: DeployBenchRow): string[] => {
    const d = r.deploy;
    return [
      r.role,
      r.model,
      r.params.toLocaleString("en-US"),
      fmtBytes(d.bytes.safetensors),
      fmtBytes(d.bytes.onnx),
      fmtMs(d.latency.onnxruntime?.batch1),
      fmtMs(d.latency.onnxruntime?.batch64),
      fmtMs(d.latency.distill.batch1),
      fmtMs(d.latency.distill.batch64),
    ];
  };
  const [t, s] = rows;
  const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && b > 0 ? `${(a / b).toFixed(1)}×` : "-");
  const ratios = [
    "teacher/student",
    "",
    ratio(t.params, s.params),
    ratio(t.deploy.bytes.safetensors, s.deploy.bytes.safetensors),
    ratio(t.deploy.bytes.onnx, s.deploy.bytes.onnx),
    ratio(t.deploy.latency.onnxruntime?.batch1, s.deploy.latency.onnxruntime?.batch1),
    ratio(t.deploy.latency.onnxruntime?.batch64, s.deploy.latency.onnxruntime?.batch64),
    ratio(t.deploy.latency.distill.batch1, s.deploy.latency.distill.batch1),
    ratio(t.deploy.latency.distill.batch64, s.deploy.latency.distill.batch64),
  ];
  const header = ["", "model", "params", "safetensors", "onnx", "ort ms/ex b1", "ort ms/ex b64", "distill ms/ex b1", "distill ms/ex b64"];
  const body = [...rows.map(cells), ratios];
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (c: string[]) => c.map((x, i) => x.padEnd(widths[i])).join("  ").trimEnd();
  return [
    "deploy: median ms per example after warm-up, onnxruntime-node (on the exported ONNX) and distill (jit forward), one thread each",
    line(header),
    line(widths.map((w) => "-".repeat(w))),
    ...body.map(line),
    ...rows.filter((r) => r.source !== "random parameters").map((r) => `${r.role}: ${r.source}`),
  ].join("\n");
}
