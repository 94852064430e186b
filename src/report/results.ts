// results.json (a stable shape that scripts and the HTML report read) and the printed table.
import { writeFileAtomic } from "../util/fs.js";
import { lmVerdicts, verdicts, type Generation, type HeldOutWindows, type PerExample } from "./verdicts.js";
import type { ReliabilityBin } from "../eval/metrics.js";
import type { Environment, RunSettings } from "./run-info.js";
import type { DeployRecord } from "../export/deploy.js";

export { lmVerdicts, verdicts } from "./verdicts.js";

export interface RunMetrics {
  accuracy: number;
  agreement: number;
  ece: number;
  loss: number;
  /** Classifiers: macro-averaged F1 over the classes (absent in older files). */
  macroF1?: number;
}

export interface RunRecord {
  name: string;
  role: "teacher" | "scratch" | "distilled";
  model: string;
  params: number;
  seed: number;
  metrics: RunMetrics;
  seconds: number;
  /** What the run was given (absent for a teacher loaded from a checkpoint, and in older files). */
  settings?: RunSettings;
  /** Classifiers: test-set counts, rows true class, columns predicted class. */
  confusion?: number[][];
  /** Reliability bins of the test (LM: held-out) predictions; their ECE is metrics.ece. */
  reliability?: ReliabilityBin[];
  /** Classifiers: per-example test correctness, for the paired test between two runs. */
  perExample?: PerExample;
  /** Language models: the mean NLL of each held-out window, for the paired bootstrap. */
  heldOutWindows?: HeldOutWindows;
  /** Language models: the teacher's NLL and distinct-n of the run's own samples. */
  generation?: Generation;
  /** Distilled runs: the teacher's parameter count (the size ratio when the teacher is not listed). */
  teacherParams?: number;
  /** keep: best-validation: the epoch (1-based) whose parameters were kept and tested. */
  keptEpoch?: number;
  /**
   * A top-k teacher (GGUF) from a file: the share of held-out positions whose true next token is
   * among its k. Its NLL is exact there and an estimate elsewhere (see teachers/teacher.ts).
   */
  topKCoverage?: number;
  /** `export: [...]` in the recipe: bytes on disk per exported format and inference latency. */
  deploy?: DeployRecord;
}

export interface Results {
  recipe: string;
  device: string;
  runs: RunRecord[];
  /** Classifiers: the class names, in label order. */
  classes?: string[];
  /** Text classification: what the data was, examples per class per split, and truncation. */
  data?: DataSummary;
  environment?: Environment;
}

export interface DataSummary {
  description: string;
  /** Per split (train, validation, test): examples per class, in class order. */
  classCounts: Record<string, number[]>;
  /** Per split: examples cut to the model's maximum length. */
  truncated?: Record<string, number>;
  maxLength?: number;
}

export interface Summary {
  name: string;
  role: RunRecord["role"];
  model: string;
  params: number;
  seeds: number;
  mean: RunMetrics;
  std: RunMetrics;
  seconds: number;
}

const KEYS: (keyof RunMetrics)[] = ["accuracy", "agreement", "ece", "loss", "macroF1"];

/** Mean and sample standard deviation per run name, in first-seen order. */
export function summarize(runs: RunRecord[]): Summary[] {
  const names = [...new Set(runs.map((r) => r.name))];
  return names.map((name) => {
    const rs = runs.filter((r) => r.name === name);
    const mean = {} as RunMetrics;
    const std = {} as RunMetrics;
    for (const k of KEYS) {
      const xs = rs.map((r) => r.metrics[k] ?? NaN);
      const m = xs.reduce((a, b) => a + b, 0) / xs.length;
      mean[k] = m;
      std[k] = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1)) : 0;
    }
    return {
      name,
      role: rs[0].role,
      model: rs[0].model,
      params: rs[0].params,
      seeds: rs.length,
      mean,
      std,
      seconds: rs.reduce((a, r) => a + r.seconds, 0) / rs.length,
    };
  });
}

function pct(m: number, s: number, seeds: number): string {
  // Agreement is NaN for a run that no teacher was loaded beside (`distill train --student`).
  if (!Number.isFinite(m)) return "-";
  return seeds > 1 ? `${(m * 100).toFixed(2)} ± ${(s * 100).toFixed(2)}` : (m * 100).toFixed(2);
}

export function formatTable(results: Results): string {
  const summary = summarize(results.runs);
  // Macro-F1 where the runs have it (older results.json files do not).
  const f1 = summary.some((s) => Number.isFinite(s.mean.macroF1));
  const header = ["run", "role", "model", "params", "accuracy %", ...(f1 ? ["macro-F1 %"] : []), "agreement %", "ECE", "test loss", "train s"];
  const rows = summary.map((s) => [
    s.name,
    s.role,
    s.model,
    s.params.toLocaleString("en-US"),
    pct(s.mean.accuracy, s.std.accuracy, s.seeds),
    ...(f1 ? [pct(s.mean.macroF1 ?? NaN, s.std.macroF1 ?? NaN, s.seeds)] : []),
    pct(s.mean.agreement, s.std.agreement, s.seeds),
    s.mean.ece.toFixed(4),
    s.mean.loss.toFixed(4),
    s.seconds.toFixed(1),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ");
  const seeds = [...new Set(results.runs.map((r) => r.seed))];
  return [
    `recipe ${results.recipe} on ${results.device}, seeds ${seeds.join(",")} (mean${seeds.length > 1 ? " ± std" : ""})`,
    line(header),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
    ...verdicts(results.runs).map((v) => v.line),
  ].join("\n");
}

export function writeResults(path: string, results: Results): void {
  writeFileAtomic(path, JSON.stringify(results, null, 2) + "\n");
}

export function formatLMTable(results: Results): string {
  const names = [...new Set(results.runs.map((r) => r.name))];
  const header = ["run", "role", "model", "params", "loss nats/tok", "perplexity", "bits/char", "agreement %", "accuracy %", "sample NLL", "distinct-1/2/3", "train s"];
  const avg = (rs: RunRecord[], f: (r: RunRecord) => number | undefined) => {
    const xs = rs.map(f).filter((v): v is number => typeof v === "number" && Number.isFinite(v));
    return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
  };
  const fmt = (v: number, d: number) => (Number.isFinite(v) ? v.toFixed(d) : "-");
  const rows = names.map((n) => {
    const rs = results.runs.filter((r) => r.name === n);
    const m = (k: string) => avg(rs, (r) => (r.metrics as unknown as Record<string, number>)[k]);
    // Generation quality: the teacher's NLL (nats/token) of the run's own samples, and distinct-n.
    const g = (f: (x: NonNullable<RunRecord["generation"]>) => number) => avg(rs, (r) => (r.generation ? f(r.generation) : undefined));
    const distinct = [g((x) => x.distinct1), g((x) => x.distinct2), g((x) => x.distinct3)];
    return [
      n,
      rs[0].role,
      rs[0].model,
      rs[0].params.toLocaleString("en-US"),
      fmt(m("loss"), 4),
      fmt(m("perplexity"), 3),
      fmt(m("bitsPerChar"), 3),
      fmt(m("agreement") * 100, 2),
      fmt(m("accuracy") * 100, 2),
      fmt(g((x) => x.teacherNLL), 4),
      distinct.every(Number.isFinite) ? distinct.map((v) => v.toFixed(2)).join("/") : "-",
      fmt(avg(rs, (r) => r.seconds), 1),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ");
  const seeds = [...new Set(results.runs.map((r) => r.seed))];
  return [
    `recipe ${results.recipe} on ${results.device}, seeds ${seeds.join(",")} (held-out metrics${seeds.length > 1 ? ", mean over seeds" : ""})`,
    line(header),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
    ...lmVerdicts(results.runs).flatMap((v) => (v.generation ? [v.line, v.generation.line] : [v.line])),
    ...(results.runs.some((r) => r.generation) ? ["sample NLL: the teacher's mean NLL (nats/token) of the run's own sampled continuations of held-out prompts (lower: more plausible to the teacher)"] : []),
  ].join("\n");
}

export const fmtBytes = (n: number | undefined) => (n === undefined ? "-" : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(2)} MiB` : `${(n / 1024).toFixed(1)} KiB`);
export const fmtMs = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? "-" : v >= 1 ? v.toFixed(2) : v.toFixed(4));

/**
 * The printed deployment table (after the results table): one row per run and seed whose record
 * has `deploy`; "" when none has.
 */
export function formatDeployTable(results: Pick<Results, "runs">): string {
  const runs = results.runs.filter((r): r is RunRecord & { deploy: DeployRecord } => r.deploy !== undefined);
  if (runs.length === 0) return "";
  const seeds = new Set(runs.map((r) => r.seed)).size;
  const rows = runs.map((r) => ({ name: seeds > 1 ? `${r.name} seed ${r.seed}` : r.name, deploy: r.deploy }));
  const formats = [...new Set(rows.flatMap((r) => Object.keys(r.deploy.bytes)))];
  const header = ["run", ...formats.map((f) => `${f} size`), "ort ms/ex b1", "ort ms/ex b64", "distill ms/ex b1", "distill ms/ex b64"];
  const body = rows.map((r) => [
    r.name,
    ...formats.map((f) => fmtBytes(r.deploy.bytes[f])),
    fmtMs(r.deploy.latency.onnxruntime?.batch1),
    fmtMs(r.deploy.latency.onnxruntime?.batch64),
    fmtMs(r.deploy.latency.distill.batch1),
    fmtMs(r.deploy.latency.distill.batch64),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return ["deployment (median ms per example; onnxruntime-node and distill on one thread)", line(header), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n");
}
