// `distill cache` and `teacher: { cache }` through the CLI, with a live top-k teacher to compare:
// a tiny char-LM teacher trained by distill and exported to GGUF (llama.cpp gives its top k). A
// student trained from an exact cache equals the student trained with the live GGUF teacher on
// the same aligned windows, bit for bit; a quantized cache gives a close one; bad input is one
// line and exit 2.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, truncateSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { exportCheckpoint } from "../src/export/index.js";
import { loadCheckpoint } from "../src/checkpoint/checkpoint.js";
import { runCli } from "./helpers/fixtures.js";
import { checkpointOf, results, run, sha256 } from "./helpers/byo.js";
import { tempDir } from "./helpers/tmp.js";

const dir = tempDir("distill-cache-cli-");
const corpus = join(dir, "corpus");
mkdirSync(corpus);
writeFileSync(join(corpus, "a.txt"), "the quick brown fox jumps over the lazy dog. pack my box with five dozen liquor jugs! ".repeat(60));
const opt = { name: "adamw", lr: 0.01 };
const student = { type: "llama", layers: 1, width: 8, heads: 2, context: 16 };
const K = 4;

function recipe(name: string, teacher: unknown, edit?: (r: Record<string, any>) => void): string {
  const r: Record<string, any> = {
    kind: "lm",
    name,
    data: { corpus, tokenizer: "char", evalWindows: 8 },
    teacher,
    students: [{ name: "fkl", role: "distilled", model: student, train: { steps: 12, batchSize: 4, optimizer: opt, loss: { name: "hinton", lambda: 1, topK: K } } }],
    samples: { prompts: 0, promptLength: 4, tokens: 6, scoredPrompts: 0 },
  };
  edit?.(r);
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringify(r));
  return path;
}

function ok(args: string[]): { stdout: string; stderr: string } {
  const r = runCli(args);
  assert.equal(r.code, 0, `${args.join(" ")}\n${r.stderr}`);
  return r;
}

/** Exit 2 with exactly one line on stderr, matching `pattern`. */
function refused(args: string[], pattern: RegExp): string {
  const r = runCli([...args, "-q"]);
  assert.equal(r.code, 2, `${args.join(" ")}: exit ${r.code}\n${r.stderr}`);
  assert.match(r.stderr, /^distill: error: [^\n]+\n$/, `not one line: ${r.stderr}`);
  assert.match(r.stderr, pattern);
  return r.stderr;
}

// The teacher: trained here once, exported to GGUF.
const gguf = join(dir, "teacher.gguf");
const teacherCk = () => checkpointOf(join(dir, "teacher-run"), "teacher");
async function teacherGguf(): Promise<string> {
  if (existsSync(gguf)) return gguf;
  const t = recipe("teacher", { model: { type: "llama", layers: 1, width: 16, heads: 2, context: 16 }, train: { steps: 30, batchSize: 8, optimizer: opt, loss: { name: "ce" } } });
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

test("bad input: one line, exit 2", async () => {
  const cacheDir = await ggufCache("exact");
  // A recipe whose corpus windows differ (another held-out fraction): both hashes named.
  refused(["run", recipe("other-corpus", { cache: cacheDir }, (r) => (r.data.heldOut = 0.2)), "--out", join(dir, "x1")], /corpus/);
  // Another tokenizer (bytes, not characters).
  refused(["run", recipe("other-tok", { cache: cacheDir }, (r) => (r.data.tokenizer = "byte")), "--out", join(dir, "x2")], /tokenizer/);
  // What a cache cannot do, refused before anything trains.
  refused(["run", recipe("onpolicy", { cache: cacheDir }, (r) => (r.students[0].train.modes = { corpus: 0.5, student: 0.5 })), "--out", join(dir, "x3")], /students\[0\]\.train\.modes\.student: .*teacher\.cache/);
  refused(["run", recipe("seqkd", { cache: cacheDir }, (r) => (r.students[0].train.modes = { corpus: 0.5, teacher: 0.5 })), "--out", join(dir, "x4")], /students\[0\]\.train\.modes\.teacher: .*teacher\.cache/);
  refused(["run", recipe("hot", { cache: cacheDir }, (r) => (r.students[0].train.loss.temperature = 2)), "--out", join(dir, "x5")], /students\[0\]\.train\.loss\.temperature: 2 with a top-k teacher \(teacher\.cache\)/);
  refused(["run", recipe("k8", { cache: cacheDir }, (r) => (r.students[0].train.loss.topK = 8)), "--out", join(dir, "x6")], /students\[0\]\.train\.loss\.topK: 8 differs from the cache's k of 4/);
  refused(["run", recipe("ctx", { cache: cacheDir }, (r) => (r.students[0].model = { ...student, context: 8 })), "--out", join(dir, "x7")], /corpus|context/);
  // distill cache: k above the vocabulary, a bad shard, no cache block.
  refused(["cache", recipe("big-k", { checkpoint: teacherCk() }, (r) => (r.cache = { dir: join(dir, "x8"), topK: 1000 }))], /^distill: error: cache\.topK: 1000 is larger than the vocabulary of \d+ tokens\n$/);
  refused(["cache", recipe("shard", { checkpoint: teacherCk() }, (r) => (r.cache = { dir: join(dir, "x9"), topK: 2 })), "--shard", "3/2"], /^distill: error: --shard 3\/2: expected i\/N with 0 ≤ i < N/);
  refused(["cache", recipe("no-block", { checkpoint: teacherCk() })], /no cache block/);
  assert.ok(!existsSync(join(dir, "x8")) && !existsSync(join(dir, "x9")), "a refused distill cache wrote a folder");
});

test("a cache with a chunk missing or truncated is refused with one line naming the chunk", async () => {
  const src = await ggufCache("exact");
  for (const damage of ["missing", "truncated"] as const) {
    // A copy of the cache, damaged.
    const d = join(dir, `damaged-${damage}`);
    mkdirSync(d, { recursive: true });
    for (const f of readdirSync(src)) writeFileSync(join(d, f), readFileSync(join(src, f)));
    const manifest = JSON.parse(readFileSync(join(d, "manifest.json"), "utf8"));
    const victim = manifest.shards.find((s: { split: string }) => s.split === "train").file as string;
    if (damage === "missing") unlinkSync(join(d, victim));
    else truncateSync(join(d, victim), Math.floor(manifest.shards[0].bytes / 2));
    refused(["run", recipe(`damaged-${damage}`, { cache: d }), "--out", join(dir, `out-${damage}`)], new RegExp(victim.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
  }
});
