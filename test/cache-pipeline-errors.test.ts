// Bad input around the soft-label cache: one line, exit 2, before anything trains (a chunk whose
// bytes changed: when it is first read). The cache: a tiny teacher trained here, cut to k = 4.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, truncateSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { initDevice } from "../src/engine/index.js";
import { loadAnyRecipe } from "../src/recipe/recipe.js";
import { runLMRecipe } from "../src/pipeline-lm.js";
import { cacheRecipe } from "../src/cache/build.js";
import { UserError } from "../src/util/errors.js";
import { tempDir } from "./helpers/tmp.js";
import { textCorpus, writeLMRecipe, ok, refused, student, tinyTeacher } from "./helpers/cache-recipes.js";

const dir = tempDir("distill-cache-errors-");
const corpus = textCorpus(dir);
const teacher = tinyTeacher;
const runs = join(dir, "runs");
const recipe = (name: string, t: unknown, edit?: (r: Record<string, any>) => void) => writeLMRecipe(dir, corpus, name, t, { name: "shard", steps: 24, cacheDir: join(dir, "cache-one") }, edit);

const fillRecipe = recipe("fill", teacher);
let one: string | null = null;
function cacheOne(): string {
  if (one) return one;
  ok(["cache", fillRecipe, "--runs", runs, "-q"]);
  one = join(dir, "cache-one");
  return one;
}

const quiet = { start() {}, update() {}, stop() {}, info() {} };
/** `distill run` / `distill cache` in this process, for refusals that need no CLI of their own (main turns any UserError into one line and exit 2). */
async function refusedHere(kind: "run" | "cache", path: string, pattern: RegExp): Promise<void> {
  await initDevice("wasm");
  const recipe = loadAnyRecipe(path);
  assert.equal(recipe.kind, "lm");
  const opts = { out: join(dir, "here"), seeds: [0], device: "wasm" as const, progress: quiet, stop: { requested: false }, workers: 1 };
  const p = kind === "run" ? runLMRecipe(recipe as never, opts) : cacheRecipe(recipe as never, { ...opts, out: runs });
  await assert.rejects(p, (e: unknown) => e instanceof UserError && !e.message.includes("\n") && pattern.test(e.message));
}

test("bad input through the CLI: one line, exit 2, nothing trained or written", () => {
  const c = cacheOne();
  // A recipe whose corpus windows differ (another held-out fraction): both hashes named.
  refused(["run", recipe("other-corpus", { cache: c }, (r) => (r.data.heldOut = 0.2)), "--out", join(dir, "x1")], /manifest\.json: corpus is [0-9a-f]{64}, the recipe's is [0-9a-f]{64}\n$/);
  // What a cache cannot do, refused before anything trains.
  refused(["run", recipe("onpolicy", { cache: c }, (r) => (r.students[0].train.modes = { corpus: 0.5, student: 0.5 })), "--out", join(dir, "x3")], /students\[0\]\.train\.modes\.student: .*teacher\.cache/);
  // distill cache: k above the vocabulary, a bad shard.
  refused(["cache", recipe("big-k", teacher, (r) => (r.cache = { dir: join(dir, "x8"), topK: 1000 })), "--runs", runs], /^distill: error: cache\.topK: 1000 is larger than the vocabulary of \d+ tokens\n$/);
  refused(["cache", recipe("shard-3-2", teacher, (r) => (r.cache.dir = join(dir, "x9"))), "--runs", runs, "--shard", "3/2"], /^distill: error: --shard 3\/2: expected i\/N with 0 ≤ i < N/);
  assert.ok(!existsSync(join(dir, "x8")) && !existsSync(join(dir, "x9")), "a refused distill cache wrote a folder");
  for (const x of ["x1", "x3"]) assert.ok(!existsSync(join(dir, x, "seed-0")) || readdirSync(join(dir, x, "seed-0")).length === 0, `${x}: something trained`);
});

test("more refusals, each one line naming the field or the value", async () => {
  const c = cacheOne();
  await refusedHere("run", recipe("other-tok", { cache: c }, (r) => (r.data.tokenizer = "byte")), /manifest\.json: tokenizer is [0-9a-f]+, the recipe's is [0-9a-f]+$/);
  await refusedHere("run", recipe("seqkd", { cache: c }, (r) => (r.students[0].train.modes = { corpus: 0.5, teacher: 0.5 })), /^students\[0\]\.train\.modes\.teacher: .*teacher\.cache holds only/);
  await refusedHere("run", recipe("hot", { cache: c }, (r) => (r.students[0].train.loss.temperature = 2)), /^students\[0\]\.train\.loss\.temperature: 2 with a top-k teacher \(teacher\.cache\)/);
  await refusedHere("run", recipe("k8", { cache: c }, (r) => (r.students[0].train.loss.topK = 8)), /^students\[0\]\.train\.loss\.topK: 8 differs from the cache's k of 4/);
  await refusedHere("run", recipe("ctx", { cache: c }, (r) => (r.students[0].model = { ...student, context: 8 })), /^students\[0\]\.model\.context: the students' context is 8, but the cache .* holds windows of 16 tokens/);
  await refusedHere("cache", recipe("no-block", teacher, (r) => delete r.cache), /no cache block/);
  await refusedHere("cache", recipe("cache-of-cache", { cache: c }), /teacher\.cache: the teacher is already a cache/);
});

test("a cache with a chunk missing or truncated is refused with one line naming the chunk", () => {
  const src = cacheOne();
  for (const damage of ["missing", "truncated"] as const) {
    const d = join(dir, `damaged-${damage}`);
    mkdirSync(d, { recursive: true });
    for (const f of readdirSync(src)) writeFileSync(join(d, f), readFileSync(join(src, f)));
    const manifest = JSON.parse(readFileSync(join(d, "manifest.json"), "utf8"));
    const victim = manifest.shards.find((s: { split: string; chunk: number }) => s.split === "train" && s.chunk === 1);
    if (damage === "missing") unlinkSync(join(d, victim.file));
    else truncateSync(join(d, victim.file), Math.floor(victim.bytes / 2));
    const name = victim.file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    refused(["run", recipe(`damaged-${damage}`, { cache: d }), "--out", join(dir, `out-${damage}`)], new RegExp(`${name}: ${damage === "missing" ? "missing" : "\\d+ bytes, manifest.json says"}`));
  }
  // Same size, other bytes: found by the chunk's SHA-256 when the student reads it.
  const d = join(dir, "damaged-flipped");
  mkdirSync(d, { recursive: true });
  for (const f of readdirSync(src)) writeFileSync(join(d, f), readFileSync(join(src, f)));
  const manifest = JSON.parse(readFileSync(join(d, "manifest.json"), "utf8"));
  for (const e of manifest.shards.filter((s: { split: string }) => s.split === "train")) {
    const bytes = readFileSync(join(d, e.file));
    bytes[bytes.length >> 1] ^= 0xff;
    writeFileSync(join(d, e.file), bytes);
  }
  refused(["run", recipe("damaged-flipped", { cache: d }), "--out", join(dir, "out-flipped")], /train-\d{5}\.parquet: SHA-256 .* does not match manifest\.json.s/);
});
