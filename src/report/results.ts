// results.json (a stable shape that scripts and the HTML report read) and the printed table.
import { writeFileAtomic } from "../util/fs.js";

export interface RunMetrics {
  accuracy: number;
  agreement: number;
  ece: number;
  loss: number;
}

export interface RunRecord {
  name: string;
  role: "teacher" | "scratch" | "distilled";
  model: string;
  params: number;
  seed: number;
  metrics: RunMetrics;
  seconds: number;
  /** keep: best-validation: the epoch (1-based) whose parameters were kept and tested. */
  keptEpoch?: number;
}

export interface Results {
  recipe: string;
  device: string;
  runs: RunRecord[];
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

const KEYS: (keyof RunMetrics)[] = ["accuracy", "agreement", "ece", "loss"];

/** Mean and sample standard deviation per run name, in first-seen order. */
export function summarize(runs: RunRecord[]): Summary[] {
  const names = [...new Set(runs.map((r) => r.name))];
  return names.map((name) => {
    const rs = runs.filter((r) => r.name === name);
    const mean = {} as RunMetrics;
    const std = {} as RunMetrics;
    for (const k of KEYS) {
      const xs = rs.map((r) => r.metrics[k]);
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

/**
 * One line per distilled student against the best scratch student: the gain in test accuracy,
 * stated plainly whichever way it goes.
 */
export function verdicts(summary: Summary[]): string[] {
  const scratch = summary.filter((s) => s.role === "scratch");
  if (scratch.length === 0) return [];
  const best = scratch.reduce((a, b) => (b.mean.accuracy > a.mean.accuracy ? b : a));
  return summary
    .filter((s) => s.role === "distilled")
    .map((d) => {
      const gain = (d.mean.accuracy - best.mean.accuracy) * 100;
      const word = gain > 0 ? "helped" : "did NOT help";
      return `${d.name} vs ${best.name}: ${gain >= 0 ? "+" : ""}${gain.toFixed(2)} points of test accuracy (mean of ${d.seeds} seed${d.seeds > 1 ? "s" : ""}): distillation ${word} on this recipe`;
    });
}

function pct(m: number, s: number, seeds: number): string {
  return seeds > 1 ? `${(m * 100).toFixed(2)} ± ${(s * 100).toFixed(2)}` : (m * 100).toFixed(2);
}

export function formatTable(results: Results): string {
  const summary = summarize(results.runs);
  const header = ["run", "role", "model", "params", "accuracy %", "agreement %", "ECE", "test loss", "train s"];
  const rows = summary.map((s) => [
    s.name,
    s.role,
    s.model,
    s.params.toLocaleString("en-US"),
    pct(s.mean.accuracy, s.std.accuracy, s.seeds),
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
    ...verdicts(summary),
  ].join("\n");
}

export function writeResults(path: string, results: Results): void {
  writeFileAtomic(path, JSON.stringify(results, null, 2) + "\n");
}

/**
 * Language models: lower held-out loss is better. One line per distilled student against the
 * scratch student, in nats/token, whichever way it goes.
 */
export function lmVerdicts(runs: RunRecord[]): string[] {
  const mean = (name: string) => {
    const rs = runs.filter((r) => r.name === name);
    return rs.reduce((a, r) => a + r.metrics.loss, 0) / rs.length;
  };
  const names = [...new Set(runs.map((r) => r.name))];
  const scratch = names.filter((n) => runs.find((r) => r.name === n)!.role === "scratch");
  if (scratch.length === 0) return [];
  const best = scratch.reduce((a, b) => (mean(b) < mean(a) ? b : a));
  return names
    .filter((n) => runs.find((r) => r.name === n)!.role === "distilled")
    .map((n) => {
      const gain = mean(best) - mean(n);
      return `${n} vs ${best}: held-out loss ${gain >= 0 ? "−" : "+"}${Math.abs(gain).toFixed(4)} nats/token: distillation ${gain > 0 ? "helped" : "did NOT help"} on this measure`;
    });
}

export function formatLMTable(results: Results): string {
  const names = [...new Set(results.runs.map((r) => r.name))];
  const header = ["run", "role", "model", "params", "loss nats/tok", "perplexity", "bits/char", "agreement %", "accuracy %", "train s"];
  const avg = (rs: RunRecord[], f: (r: RunRecord) => number | undefined) => {
    const xs = rs.map(f).filter((v): v is number => typeof v === "number" && Number.isFinite(v));
    return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
  };
  const fmt = (v: number, d: number) => (Number.isFinite(v) ? v.toFixed(d) : "-");
  const rows = names.map((n) => {
    const rs = results.runs.filter((r) => r.name === n);
    const m = (k: string) => avg(rs, (r) => (r.metrics as unknown as Record<string, number>)[k]);
    return [n, rs[0].role, rs[0].model, rs[0].params.toLocaleString("en-US"), fmt(m("loss"), 4), fmt(m("perplexity"), 3), fmt(m("bitsPerChar"), 3), fmt(m("agreement") * 100, 2), fmt(m("accuracy") * 100, 2), fmt(avg(rs, (r) => r.seconds), 1)];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ");
  const seeds = [...new Set(results.runs.map((r) => r.seed))];
  return [
    `recipe ${results.recipe} on ${results.device}, seeds ${seeds.join(",")} (held-out metrics${seeds.length > 1 ? ", mean over seeds" : ""})`,
    line(header),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
    ...lmVerdicts(results.runs),
  ].join("\n");
}
