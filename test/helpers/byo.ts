// Helpers of the bring-your-own-teacher CLI tests: a run's results and checkpoints in OUT.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** The run's results.json. */
export const results = (out: string) => JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as { runs: { name: string; role: string; model: string; params: number; metrics: Record<string, number>; teacherParams?: number; settings?: Record<string, unknown>; topKCoverage?: number }[] };
export const run = (res: ReturnType<typeof results>, name: string) => res.runs.find((r) => r.name === name)!;

/** The finished checkpoint `<name>-<hash>.safetensors` of a run in OUT/seed-0. */
export function checkpointOf(out: string, name: string): string {
  const f = readdirSync(join(out, "seed-0")).find((x) => x.startsWith(`${name}-`) && x.endsWith(".safetensors"));
  assert.ok(f, `no ${name} checkpoint in ${out}`);
  return join(out, "seed-0", f);
}

export const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

