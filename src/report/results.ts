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
