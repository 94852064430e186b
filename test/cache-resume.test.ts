// Resumable: a child building the cache is killed with SIGKILL at 10 seeded random points in a
// row (each run re-started as the same build), then left to finish; every row then equals an
// uninterrupted cache's, none lost or duplicated, and no temporary file is left behind.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildCache, openCache } from "../src/cache/index.js";
import { Rng } from "../src/util/rng.js";
import { REPO_ROOT } from "./helpers/fixtures.js";
import { RESUME_CACHE, firstDifference } from "./helpers/cache.js";
import { tempDir } from "./helpers/tmp.js";

const CHILD = join(REPO_ROOT, "test/helpers/cache-build-child.ts");

/** Runs the child; with `killAfter`, SIGKILLs it `extraMs` after its killAfter-th progress line. */
function runChild(dir: string, killAfter?: { lines: number; extraMs: number }): Promise<{ signal: NodeJS.Signals | null; code: number | null; out: string; pid: number }> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const child = spawn(process.execPath, ["--import", "tsx", CHILD, dir], { cwd: REPO_ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    let lines = 0;
    let armed = false;
    child.stdout.on("data", (d: Buffer) => {
      out += d;
      lines += d.toString().split("\n").filter((l) => l.startsWith("scored")).length;
      if (killAfter && !armed && lines >= killAfter.lines) {
        armed = true;
        setTimeout(() => child.kill("SIGKILL"), killAfter.extraMs);
      }
    });
    child.stderr.on("data", (d: Buffer) => (err += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (code !== 0 && signal === null) reject(new Error(`child failed (${code}): ${err.trim()}`));
      resolve({ code, signal, out, pid: child.pid! });
    });
  });
}

test("killed with SIGKILL at 10 random points, then finished: row for row the uninterrupted cache", async () => {
  const reference = tempDir("distill-cache-ref-");
  const want = (await buildCache(RESUME_CACHE.options(reference))).manifest!;
  const dir = tempDir("distill-cache-resume-");
  const rng = new Rng(2026);
  const chunksSeen: number[] = [];
  let deadPid = 0;
  let temps = 0;
  for (let i = 0; i < 10; i++) {
    const r = await runChild(dir, { lines: 1 + rng.int(4), extraMs: rng.int(30) });
    assert.equal(r.signal, "SIGKILL", `run ${i} finished before it was killed`);
    deadPid = r.pid;
    assert.ok(!existsSync(join(dir, "manifest.json")), `run ${i}: killed, yet the cache is complete`);
    temps += readdirSync(dir).filter((f) => f.endsWith(".tmp")).length;
    chunksSeen.push(readdirSync(dir).filter((f) => f.endsWith(".parquet") && !f.startsWith(".")).length);
  }
  // The kills landed while work was under way, and the restarts kept what earlier runs finished.
  assert.ok(chunksSeen.at(-1)! > 0 && chunksSeen.at(-1)! < want.shards.length, `chunks after each kill: ${chunksSeen}`);
  for (let i = 1; i < chunksSeen.length; i++) assert.ok(chunksSeen[i] >= chunksSeen[i - 1], `chunks after each kill: ${chunksSeen}`);
  console.log(`chunks after each kill: ${chunksSeen}; temporary files found after kills: ${temps}`);
  // A kill between writing a chunk's temporary file and renaming it leaves this behind: a
  // half-written chunk under writeFileAtomic's temporary name, which the next run removes.
  const stale = join(dir, `.train-00013.parquet.${deadPid}.tmp`);
  writeFileSync(stale, "PAR1 half a chunk");
  const present = readdirSync(dir).filter((f) => f.endsWith(".parquet") && !f.startsWith("."));
  const kept = present.reduce((a, f) => a + (f === "heldout-00001.parquet" ? 17 : 64), 0);
  const last = await runChild(dir);
  assert.equal(last.code, 0);
  // It continued where the kills stopped it: only the chunks not yet written were scored.
  const scored = [...last.out.matchAll(/^scored (\d+) windows$/gm)].reduce((a, m) => a + Number(m[1]), 0);
  assert.equal(scored, want.windows.train + want.windows.heldout - kept);
  assert.match(last.out, /done\n$/);
  assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith(".tmp")), [], "a temporary file was left behind");
  const got = openCache(dir);
  assert.deepEqual(got.manifest, want);
  const ref = openCache(reference);
  for (const split of ["train", "heldout"] as const) {
    const all = Int32Array.from({ length: want.windows[split] }, (_, i) => i);
    assert.equal(firstDifference(await got.softLabels(split, all), await ref.softLabels(split, all)), null, split);
  }
});
