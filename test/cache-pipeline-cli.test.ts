// `distill cache` and `teacher: { cache }` through the CLI, with a live top-k teacher to compare:
// a tiny char-LM teacher trained by distill and exported to GGUF (llama.cpp gives its top k). A
// student trained from an exact cache equals the student trained with the live GGUF teacher on
// the same aligned windows, bit for bit; a quantized cache gives a close one. (Sharding, resume and
// bad input: cache-pipeline-shard.test.ts, with a teacher trained here.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { exportCheckpoint } from "../src/export/index.js";
import { loadCheckpoint } from "../src/checkpoint/checkpoint.js";
import { checkpointOf, results, run, sha256 } from "./helpers/byo.js";
import { tempDir } from "./helpers/tmp.js";
import { textCorpus, writeLMRecipe, ok, K, student, tinyTeacher } from "./helpers/cache-recipes.js";

const dir = tempDir("distill-cache-cli-");
const corpus = textCorpus(dir);
const recipe = (name: string, teacher: unknown, edit?: (r: Record<string, any>) => void) => writeLMRecipe(dir, corpus, name, teacher, { steps: 12, lossTopK: true }, edit);

// The teacher: trained here once, exported to GGUF.
const gguf = join(dir, "teacher.gguf");
const teacherCk = () => checkpointOf(join(dir, "teacher-run"), "teacher");
async function teacherGguf(): Promise<string> {
  if (existsSync(gguf)) return gguf;
  const t = recipe("teacher", tinyTeacher);
  ok(["train", t, "--out", join(dir, "teacher-run"), "-q"]);
  await exportCheckpoint(teacherCk(), "gguf", { out: gguf });
  return gguf;
}

/** The live GGUF teacher's run on aligned windows. */
function liveRun(): string {
  const live = join(dir, "live-out");
  if (!existsSync(join(live, "results.json"))) ok(["run", recipe("live", { gguf, topK: K }, (r) => (r.data.windows = "aligned")), "--out", live, "-q"]);
  return live;
}

/** Fills a cache from the GGUF teacher (top K) and returns its folder. */
async function ggufCache(precision: "exact" | "quantized"): Promise<string> {
  const g = await teacherGguf();
  const cacheDir = join(dir, `cache-${precision}`);
  if (!existsSync(join(cacheDir, "manifest.json"))) {
    const r = ok(["cache", recipe(`fill-${precision}`, { gguf: g, topK: K }, (x) => (x.cache = { dir: cacheDir, topK: K, precision })), "-q"]);
    assert.match(r.stdout, /complete/);
  }
  return cacheDir;
}

const tensorsOf = (ck: string) => {
  const t = loadCheckpoint(ck).tensors;
  return Object.fromEntries(Object.entries(t).map(([k, v]) => [k, Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength).toString("base64")]));
};

test("a student from an exact cache equals the one trained with the live GGUF teacher (top-k, same k, aligned windows): same held-out loss, same parameters bit for bit", async (t) => {
  const cacheDir = await ggufCache("exact");
  const manifest = JSON.parse(readFileSync(join(cacheDir, "manifest.json"), "utf8"));
  // The teacher is named by its file's digest, not its path.
  assert.equal(manifest.teacher, `gguf:${sha256(gguf)}:top${K}`);
  assert.equal(manifest.k, K);
  assert.equal(manifest.context, student.context);

  const live = liveRun();
  const fromCache = join(dir, "from-cache-out");
  const c = ok(["run", recipe("from-cache", { cache: cacheDir }), "--out", fromCache]);
  assert.match(c.stderr, new RegExp(`teacher: soft-label cache .*top ${K} of`));

  const [a, b] = [run(results(live), "fkl"), run(results(fromCache), "fkl")];
  t.diagnostic(`held-out: live ${a.metrics.loss}, from the cache ${b.metrics.loss} nats/token`);
  assert.equal(b.metrics.loss, a.metrics.loss);
  assert.equal(b.settings?.topK, K);
  assert.deepEqual(tensorsOf(checkpointOf(fromCache, "fkl")), tensorsOf(checkpointOf(live, "fkl")));
  // The teacher's own row comes from the cache's held-out split: the GGUF teacher's numbers.
  assert.equal(run(results(fromCache), "teacher").metrics.loss, run(results(live), "teacher").metrics.loss);
  assert.equal(run(results(fromCache), "teacher").topKCoverage, run(results(live), "teacher").topKCoverage);

  // Random windows (the default) with the live teacher: another student, so the windows matter.
  const rnd = join(dir, "live-random");
  ok(["run", recipe("live-random", { gguf, topK: K }), "--out", rnd, "-q"]);
  assert.notEqual(run(results(rnd), "fkl").metrics.loss, a.metrics.loss);
});

test("a student from a quantized cache is close to the live teacher's", async (t) => {
  const cacheDir = await ggufCache("quantized");
  const out = join(dir, "from-quantized");
  ok(["run", recipe("from-quantized", { cache: cacheDir }), "--out", out, "-q"]);
  const live = liveRun();
  const [a, b] = [run(results(live), "fkl").metrics.loss, run(results(out), "fkl").metrics.loss];
  t.diagnostic(`held-out: live ${a}, from the quantized cache ${b} nats/token (difference ${Math.abs(a - b)})`);
  assert.ok(Math.abs(a - b) < 2e-3, `live ${a} vs quantized cache ${b}`);
});
