// `distill bench`: the training and inference paths that decide how long a distillation takes,
// timed through the real trainer on synthetic data of the real shapes.
import { random, tree } from "../engine/index.js";
import { buildModel, type Model, type Params } from "../nn/models.js";
import { llama, type LanguageModel } from "../nn/llama.js";
import { train, type BatchSource, type HostBatch, type TrainSpec } from "../train/trainer.js";
import { predictLogits } from "../eval/predict.js";
import { Rng } from "../util/rng.js";
import { UserError } from "../util/errors.js";

export interface BenchResult {
  workload: string;
  steps: number;
  msPerStep: number;
  /** Samples per second; tokens per second for language models. */
  throughput: number;
  unit: "samples/s" | "tokens/s";
  peakRssMB: number;
}

const FMNIST = { height: 28, width: 28, channels: 1, classes: 10 };

function randomSource(rows: number, dim: number, classes: number, withTeacher: boolean): BatchSource {
  const rng = new Rng(1);
  const x = Float32Array.from({ length: rows * dim }, () => rng.nextU32() / 4294967296);
  const labels = Int32Array.from({ length: rows }, () => rng.int(classes));
  const t = Float32Array.from({ length: rows * classes }, () => rng.nextU32() / 4294967296 - 0.5);
  const batch: HostBatch = { x, xShape: [rows, dim], labels, labelShape: [rows] };
  if (withTeacher) Object.assign(batch, { teacherLogits: t, teacherShape: [rows, classes] });
  return { stepsPerEpoch: 1 << 30, batch: () => batch };
}

function tokenSource(rows: number, context: number, vocab: number): BatchSource {
  const rng = new Rng(2);
  const x = Int32Array.from({ length: rows * context }, () => rng.int(vocab));
  const labels = Int32Array.from({ length: rows * context }, () => rng.int(vocab));
  const mask = new Float32Array(rows * context).fill(1);
  const batch: HostBatch = { x, xShape: [rows, context], labels, labelShape: [rows, context], mask };
  return { stepsPerEpoch: 1 << 30, batch: () => batch };
}

/** Times `steps` trainer steps after `warmup` (compile) steps. */
async function timeTraining(
  model: Model | LanguageModel,
  source: BatchSource,
  spec: TrainSpec,
  steps: number,
  warmup: number,
  teacher?: { model: Model | LanguageModel; params: Params },
  workers: number | "auto" = "auto",
): Promise<number> {
  let t0 = 0;
  let t1 = 0;
  const total = warmup + steps;
  const bounded: BatchSource = { stepsPerEpoch: total, batch: source.batch };
  const r = await train({
    name: "bench",
    model,
    spec,
    data: bounded,
    seed: 0,
    teacher,
    logEvery: 1 << 30,
    workers,
    progress: (done) => {
      if (done === warmup) t0 = performance.now();
      if (done === total) t1 = performance.now();
    },
  });
  tree.dispose(r.params);
  return (t1 - t0) / steps;
}

export const WORKLOADS = ["teacher-mlp", "student-kd-mlp", "cnn-student", "teacher-inference", "lm-student-kd"] as const;
export type Workload = (typeof WORKLOADS)[number];

export async function runWorkload(name: string, steps = 200): Promise<BenchResult> {
  const adam: TrainSpec["optimizer"] = { name: "adam", lr: 1e-3 };
  const warmup = 10;
  const rss = () => process.resourceUsage().maxRSS / 1024;
  let ms: number;
  let per: number;
  let unit: BenchResult["unit"] = "samples/s";
  switch (name) {
    case "teacher-mlp": {
      const m = buildModel({ type: "mlp", hidden: [512, 256] }, FMNIST);
      ms = await timeTraining(m, randomSource(128, 784, 10, false), { epochs: 1, batchSize: 128, optimizer: adam, loss: { name: "ce" } }, steps, warmup);
      per = 128;
      break;
    }
    case "student-kd-mlp": {
      const m = buildModel({ type: "mlp", hidden: [128] }, FMNIST);
      const spec: TrainSpec = { epochs: 1, batchSize: 128, optimizer: adam, loss: { name: "hinton", temperature: 2, lambda: 0.5 } };
      // Teacher logits cached (in the batch), as the distillation recipes run it.
      ms = await timeTraining(m, randomSource(128, 784, 10, true), spec, steps, warmup);
      per = 128;
      break;
    }
    case "cnn-student": {
      const m = buildModel({ type: "cnn", channels: [8, 16], dense: 32 }, FMNIST);
      ms = await timeTraining(m, randomSource(128, 784, 10, false), { epochs: 1, batchSize: 128, optimizer: adam, loss: { name: "ce" } }, steps, warmup);
      per = 128;
      break;
    }
    case "teacher-inference": {
      const m = buildModel({ type: "mlp", hidden: [512, 256] }, FMNIST);
      const p = m.init(random.key(0));
      const rng = new Rng(3);
      const x = Float32Array.from({ length: 10000 * 784 }, () => rng.nextU32() / 4294967296);
      await predictLogits(m, p, x, 784); // compile
      const reps = Math.max(1, Math.round(steps / 40));
      const t0 = performance.now();
      for (let i = 0; i < reps; i++) await predictLogits(m, p, x, 784);
      ms = (performance.now() - t0) / reps;
      per = 10000;
      tree.dispose(p);
      break;
    }
    case "lm-student-kd": {
      // charlm-fortunes: student 2×64 learning from the 4×128 teacher by forward KL, batch 32 × 64.
      const V = 113;
      const teacher = llama({ type: "llama", layers: 4, width: 128, heads: 4, context: 64 }, V);
      const tp = teacher.init(random.key(1));
      const student = llama({ type: "llama", layers: 2, width: 64, heads: 2, context: 64 }, V);
      const spec: TrainSpec = { epochs: 1, batchSize: 32, optimizer: { name: "adamw", lr: 2e-3 }, loss: { name: "hinton", divergence: "forward-kl", lambda: 0.5 } };
      ms = await timeTraining(student, tokenSource(32, 64, V), spec, Math.max(5, Math.round(steps / 10)), 3, { model: teacher, params: tp });
      tree.dispose(tp);
      per = 32 * 64;
      unit = "tokens/s";
      break;
    }
    default:
      throw new UserError(`bench: unknown workload "${name}" (known: ${WORKLOADS.join(", ")})`);
  }
  return { workload: name, steps, msPerStep: ms, throughput: (per * 1000) / ms, unit, peakRssMB: rss() };
}

export function formatBench(r: BenchResult): string {
  return `${r.workload.padEnd(18)} ${r.msPerStep.toFixed(2).padStart(9)} ms/step  ${Math.round(r.throughput).toLocaleString("en-US").padStart(10)} ${r.unit}  peak RSS ${r.peakRssMB.toFixed(0)} MB`;
}
