// Training-loss curves for the HTML report, read back from the JSONL logs the pipeline writes
// beside each checkpoint: OUT/seed-S/<name>-<10 hex config hash>.metrics.jsonl, one
// {run, epoch, step, loss, lr, seconds} record per line, and with a validation set one
// {run, epoch, step, valLoss, valAccuracy, seconds} record per epoch.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Results } from "./results.js";
import type { LossCurve } from "./html.js";

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * The log of run `name` in `dir`. Several config hashes for one name (the recipe changed
 * between runs) resolve to the most recently written log, the one the latest results came from.
 */
function findLog(dir: string, name: string): string | null {
  if (!existsSync(dir)) return null;
  const re = new RegExp(`^${escapeRegExp(name)}-[0-9a-f]{10}\\.metrics\\.jsonl$`);
  let best: { path: string; mtime: number } | null = null;
  for (const file of readdirSync(dir).sort()) {
    if (!re.test(file)) continue;
    const path = join(dir, file);
    const st = statSync(path);
    if (!st.isFile()) continue;
    if (!best || st.mtimeMs >= best.mtime) best = { path, mtime: st.mtimeMs };
  }
  return best?.path ?? null;
}

/**
 * Parses one log, skipping blank or malformed lines (a run killed mid-write leaves half a
 * line). A resumed run appends after its last checkpoint, so a step can appear twice: the later
 * record wins. Points come back sorted by step.
 */
export function parseMetricsLog(textContent: string): { step: number; loss: number }[] {
  const byStep = new Map<number, number>();
  for (const raw of textContent.split("\n")) {
    const s = raw.trim();
    if (!s) continue;
    let rec: unknown;
    try {
      rec = JSON.parse(s);
    } catch {
      continue;
    }
    if (typeof rec !== "object" || rec === null) continue;
    const { step, loss } = rec as { step?: unknown; loss?: unknown };
    if (typeof step !== "number" || typeof loss !== "number" || !Number.isFinite(step) || !Number.isFinite(loss)) continue;
    byStep.set(step, loss);
  }
  return [...byStep.entries()].sort((a, b) => a[0] - b[0]).map(([step, loss]) => ({ step, loss }));
}

/** The per-epoch validation records of one log, by step; the later of two for one step wins. */
export function parseValidationLog(textContent: string): { epoch: number; step: number; loss: number; accuracy: number }[] {
  const byStep = new Map<number, { epoch: number; step: number; loss: number; accuracy: number }>();
  for (const raw of textContent.split("\n")) {
    let rec: unknown;
    try {
      rec = JSON.parse(raw);
    } catch {
      continue;
    }
    if (typeof rec !== "object" || rec === null) continue;
    const { epoch, step, valLoss, valAccuracy } = rec as Record<string, unknown>;
    const nums = [epoch, step, valLoss, valAccuracy];
    if (!nums.every((v) => typeof v === "number" && Number.isFinite(v))) continue;
    byStep.set(step as number, { epoch: epoch as number, step: step as number, loss: valLoss as number, accuracy: valAccuracy as number });
  }
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

/** One curve per (run name, seed) in `results` that has a non-empty log under OUT/seed-S/. */
export function readCurves(out: string, results: Results): LossCurve[] {
  const curves: LossCurve[] = [];
  const seen = new Set<string>();
  for (const r of results.runs) {
    const key = JSON.stringify([r.name, r.seed]);
    if (seen.has(key)) continue;
    seen.add(key);
    const path = findLog(join(out, `seed-${r.seed}`), r.name);
    if (!path) continue;
    const text = readFileSync(path, "utf8");
    const points = parseMetricsLog(text);
    const validation = parseValidationLog(text);
    if (points.length > 0) curves.push({ name: r.name, seed: r.seed, points, ...(validation.length > 0 ? { validation } : {}) });
  }
  return curves;
}
