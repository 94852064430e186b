// `distill train` and `distill distill` do only some of a recipe's runs: their results are
// merged into OUT/results.json rather than replacing the table the other runs wrote.
import { existsSync } from "node:fs";
import { UserError } from "../util/errors.js";
import { readFileBounded } from "../util/fs.js";
import type { Results, RunRecord } from "./results.js";

type Sample = { name: string; seed: number };
type AnyResults = Results & { samples?: Sample[] };

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/**
 * The results.json at `path` that a partial command will add its runs to, or null when there is
 * none. One that cannot be merged into (not a distill results file, or another recipe's) is a
 * UserError, raised before anything is trained: merging two recipes' tables would mislead, and
 * replacing the file would lose the other recipe's runs.
 */
export function readResultsForMerge(path: string, recipe: string): AnyResults | null {
  if (!existsSync(path)) return null;
  const bytes = readFileBounded(path, 256 * 2 ** 20, "results file");
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString("utf8"));
  } catch {
    throw new UserError(`${path}: not valid JSON, so this command's runs cannot be added to it (move it away or choose another --out)`);
  }
  const runsOk =
    isObject(raw) &&
    typeof raw.recipe === "string" &&
    Array.isArray(raw.runs) &&
    raw.runs.every((r) => isObject(r) && typeof r.name === "string" && typeof r.seed === "number");
  if (!runsOk) throw new UserError(`${path}: not a distill results file, so this command's runs cannot be added to it (move it away or choose another --out)`);
  const res = raw as unknown as AnyResults;
  if (res.recipe !== recipe) {
    throw new UserError(`${path}: holds the results of recipe "${res.recipe}", not "${recipe}"; choose another --out (this command adds its runs to the table there)`);
  }
  if (res.samples !== undefined && !(Array.isArray(res.samples) && res.samples.every((s) => isObject(s) && typeof s.name === "string" && typeof s.seed === "number"))) {
    throw new UserError(`${path}: "samples" is not a list of samples, so this command's runs cannot be added to it`);
  }
  return res;
}

/**
 * `fresh` merged into `existing`: a run (or sample) of the same name and seed is replaced,
 * every other one kept. Runs are ordered as `order` lists their names (the recipe's: teacher,
 * then the students), then by seed; names the recipe no longer has come last, as they were.
 */
export function mergeResults<R extends AnyResults>(existing: AnyResults | null, fresh: R, order: string[]): R {
  if (!existing) return fresh;
  const key = (r: { name: string; seed: number }) => JSON.stringify([r.name, r.seed]);
  const replaced = new Set(fresh.runs.map(key));
  const runs: RunRecord[] = [...existing.runs.filter((r) => !replaced.has(key(r))), ...fresh.runs];
  const rank = (name: string) => {
    const i = order.indexOf(name);
    return i < 0 ? order.length : i;
  };
  // Array.prototype.sort is stable, so runs of equal rank and seed keep their order.
  runs.sort((a, b) => rank(a.name) - rank(b.name) || a.seed - b.seed);
  const merged = { ...existing, ...fresh, runs } as R;
  if (existing.samples || fresh.samples) {
    const ran = new Set(fresh.runs.map(key));
    const samples = [...(existing.samples ?? []).filter((s) => !ran.has(key(s))), ...(fresh.samples ?? [])];
    samples.sort((a, b) => rank(a.name) - rank(b.name) || a.seed - b.seed);
    (merged as AnyResults).samples = samples;
  }
  if (existing.device !== fresh.device) merged.device = [...new Set([...existing.device.split(", "), fresh.device])].join(", ");
  return merged;
}
