// What results.json records beside the metrics, so that the report can say what each run was
// given (its settings) and where the numbers came from (the environment).
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { relaxedSimd } from "../engine/relaxed-simd.js";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { LossSpec } from "../losses/index.js";
import { modeWeights } from "../data/modes.js";

/** The recipe's settings of one run, with the defaults the trainer applied filled in. */
export interface RunSettings {
  loss: string;
  /** Distillation losses only: temperature, weight of the distillation term, divergence. */
  temperature?: number;
  lambda?: number;
  divergence?: string;
  beta?: number;
  alpha?: number;
  topK?: number;
  optimizer: string;
  lr: number;
  schedule?: string;
  batchSize: number;
  /** Classifiers: passes over the training view. */
  epochs?: number;
  /** Optimiser steps. */
  steps: number;
  /** Classifiers: distinct training labels the loss can read (0 for pure soft-label KD). */
  labels?: number;
  /** Examples (language models: windows) read in training: steps × batch. */
  examples: number;
  /** Language models: tokens per example (window). */
  context?: number;
  /** Language models: tokens read in training, examples × context. */
  tokens?: number;
  /** Classifiers: random-shift augmentation in pixels. */
  shift?: number;
  /** Language models: where the batches came from, as fractions that add up to 1. */
  modes?: { corpus: number; teacher: number; student: number };
  /** Data-parallel replicas the run trained on. */
  workers: number;
  /** Encoders: intermediate-layer terms added to the logit loss, as "name×weight". */
  intermediate?: string[];
}

interface TrainLike {
  batchSize: number;
  optimizer: { name: string; lr: number; schedule?: string };
  loss: LossSpec;
}

/** The loss settings as the losses registry applies them (hinton: λ 0.5, T 1; soft-kd: λ 1). */
function lossSettings(loss: LossSpec): Pick<RunSettings, "loss" | "temperature" | "lambda" | "divergence" | "beta" | "alpha" | "topK"> {
  if (loss.name === "ce") return { loss: "ce" };
  const divergence = loss.divergence ?? "forward-kl";
  return {
    loss: loss.name,
    temperature: loss.temperature ?? 1,
    lambda: loss.name === "soft-kd" ? 1 : (loss.lambda ?? 0.5),
    divergence,
    ...(divergence === "jsd" ? { beta: loss.beta ?? 0.5 } : {}),
    ...(divergence.startsWith("skew") ? { alpha: loss.alpha ?? 0.1 } : {}),
    ...(loss.topK !== undefined ? { topK: loss.topK } : {}),
  };
}

function common(t: TrainLike, workers: number) {
  return {
    ...lossSettings(t.loss),
    optimizer: t.optimizer.name,
    lr: t.optimizer.lr,
    ...(t.optimizer.schedule ? { schedule: t.optimizer.schedule } : {}),
    batchSize: t.batchSize,
    workers,
  };
}

/**
 * A classifier run trained on `view` examples, of which `labels` carry a label its loss reads.
 * The trainer drops each epoch's last partial batch, so an epoch is ⌊view / batch⌋ steps.
 */
export function classifierSettings(
  t: TrainLike & { epochs: number; shift?: number; intermediate?: { terms: { name: string; weight: number }[] } },
  view: number,
  labels: number,
  workers: number,
): RunSettings {
  const steps = Math.floor(view / t.batchSize) * t.epochs;
  const inter = t.intermediate ? { intermediate: t.intermediate.terms.map((x) => `${x.name}×${x.weight}`) } : {};
  return { ...common(t, workers), epochs: t.epochs, steps, labels, examples: steps * t.batchSize, ...(t.shift ? { shift: t.shift } : {}), ...inter };
}

/** A language-model run of `steps` steps over windows of `context` tokens. */
export function lmSettings(
  t: TrainLike & { steps: number; modes?: { corpus?: number; teacher?: number; student?: number } },
  context: number,
  workers: number,
): RunSettings {
  const examples = t.steps * t.batchSize;
  const w = modeWeights(t.modes ?? {});
  const sum = w.corpus + w.teacher + w.student;
  const modes = { corpus: w.corpus / sum, teacher: w.teacher / sum, student: w.student / sum };
  return { ...common(t, workers), steps: t.steps, examples, context, tokens: examples * context, modes };
}

/** Where the numbers came from. */
export interface Environment {
  /** distill's version (package.json). */
  distill: string;
  /** The git commit of the distill checkout, when it is one and git is installed. */
  commit?: string;
  /** The checkout had uncommitted changes to tracked files. */
  dirty?: boolean;
  node: string;
  /** The array engine and its version. */
  engine: string;
  device: string;
  /** `--workers` as given ("auto" or a count); each run's settings say how many it used. */
  workers: number | "auto";
  /** Logical CPUs of the machine. */
  cpus: number;
  /** The Wasm engine's products used fused multiply-add (relaxed SIMD; DISTILL_RELAXED_SIMD=0 turns it off). */
  fma?: boolean;
  /** Where passes that only read a model ran (`--inference`); absent: distill's engine. */
  inference?: "onnxruntime";
}

/** The package root: this file is src/report/run-info.ts or dist/report/run-info.js. */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

function packageVersion(dir: string): string | undefined {
  try {
    const v = (JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version?: unknown }).version;
    return typeof v === "string" ? v : undefined;
  } catch {
    return undefined;
  }
}

/** The installed version of a dependency (its package.json above its entry point). */
function dependencyVersion(name: string): string | undefined {
  let dir: string;
  try {
    dir = dirname(createRequire(import.meta.url).resolve(name));
  } catch {
    return undefined;
  }
  for (let i = 0; i < 6; i++, dir = dirname(dir)) {
    const pkg = join(dir, "package.json");
    if (!existsSync(pkg)) continue;
    try {
      const p = JSON.parse(readFileSync(pkg, "utf8")) as { name?: unknown; version?: unknown };
      if (p.name === name && typeof p.version === "string") return p.version;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** HEAD of the checkout distill runs from; nothing when it is not one or git is missing. */
function gitCommit(): { commit?: string; dirty?: boolean } {
  const git = (args: string[]) => spawnSync("git", args, { cwd: ROOT, encoding: "utf8", timeout: 5000, stdio: ["ignore", "pipe", "ignore"] });
  const head = git(["rev-parse", "HEAD"]);
  if (head.error || head.status !== 0 || !/^[0-9a-f]{40}$/.test(head.stdout.trim())) return {};
  const status = git(["status", "--porcelain", "--untracked-files=no"]);
  const dirty = !status.error && status.status === 0 && status.stdout.trim() !== "";
  return { commit: head.stdout.trim(), ...(dirty ? { dirty } : {}) };
}

let cachedGit: { commit?: string; dirty?: boolean } | undefined;

export function collectEnvironment(device: string, workers: number | "auto" | undefined, inference: "distill" | "onnxruntime" = "distill"): Environment {
  cachedGit ??= gitCommit();
  return {
    distill: packageVersion(ROOT) ?? "unknown",
    ...cachedGit,
    node: process.version,
    engine: `@jax-js/jax ${dependencyVersion("@jax-js/jax") ?? "unknown"}`,
    device,
    workers: workers ?? 1,
    cpus: availableParallelism(),
    ...(device === "wasm" ? { fma: relaxedSimd } : {}),
    ...(inference === "onnxruntime" ? { inference } : {}),
  };
}
