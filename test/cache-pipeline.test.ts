// The pipeline side of the soft-label cache, without a cache: the aligned window order students
// of a cache draw, the recipe fields, and `--shard` parsing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { alignedWindows, textSource } from "../src/data/text-source.js";
import { evalWindows } from "../src/text/corpus.js";
import { WINDOWS_PER_CHUNK, chunkCount, chunkSize } from "../src/cache/types.js";
import { loadAnyRecipe, validateLMRecipe, type LMRecipe } from "../src/recipe/recipe.js";
import { parseShard } from "../src/cache/build.js";
import { UserError } from "../src/util/errors.js";
import { cacheWindows } from "../src/teachers/cache.js";

/** The window ids of steps 0..steps-1, concatenated. */
function drawn(seed: number, steps: number, batch: number, total: number): number[] {
  const out: number[] = [];
  for (let s = 0; s < steps; s++) out.push(...alignedWindows(seed, s, batch, total));
  return out;
}

test("aligned windows: every pass visits each window exactly once, whole chunks at a time, chunks strided over the text", () => {
  // 197 windows in 4 chunks (50, 49, 49, 49 windows); a batch of 7 does not divide the pass
  // (passes continue across steps).
  const total = 3 * WINDOWS_PER_CHUNK + 5;
  const C = chunkCount(total);
  assert.equal(C, 4);
  assert.deepEqual([0, 1, 2, 3].map((c) => chunkSize(c, total)), [50, 49, 49, 49]);
  const chunkOf = (w: number) => w % C;
  const B = 7;
  const passes = 3;
  const all = drawn(11, Math.ceil((passes * total) / B), B, total);
  const orders: number[][] = [];
  for (let p = 0; p < passes; p++) {
    const pass = all.slice(p * total, (p + 1) * total);
    assert.deepEqual([...pass].sort((a, b) => a - b), Array.from({ length: total }, (_, i) => i), `pass ${p} is not a permutation of the windows`);
    // Each chunk is one contiguous run of the pass: a reader never returns to a chunk it left.
    const chunkRuns = pass.map(chunkOf).filter((c, i, a) => i === 0 || a[i - 1] !== c);
    assert.equal(chunkRuns.length, 4, `pass ${p} visits chunks ${chunkRuns.join(",")}: a chunk split in two runs`);
    // Shuffled inside the chunks too (not c, c + C, c + 2C, ... within a chunk).
    assert.ok(pass.some((w, i) => i > 0 && chunkOf(w) === chunkOf(pass[i - 1]) && w !== pass[i - 1] + C), "windows inside a chunk are in order");
    // A chunk's windows span the text: its first 7 drawn are not one stretch of it.
    const first = pass.slice(0, B);
    assert.ok(Math.max(...first) - Math.min(...first) > total / 2, `the first batch of pass ${p} spans only windows ${Math.min(...first)}..${Math.max(...first)}`);
    orders.push(pass);
  }
  assert.notDeepEqual(orders[0], orders[1], "two passes in the same order");
  // A batch of B ≤ a chunk spans at most two chunks.
  for (let s = 0; s < 200; s++) {
    const chunks = new Set(Array.from(alignedWindows(11, s, B, total), chunkOf));
    assert.ok(chunks.size <= 2, `step ${s} touches chunks ${[...chunks].join(",")}`);
  }
});

test("aligned windows are a function of (seed, step) alone: a resumed run draws what the uninterrupted one drew", () => {
  const total = 2 * WINDOWS_PER_CHUNK + 9;
  const straight = Array.from({ length: 40 }, (_, s) => Array.from(alignedWindows(5, s, 6, total)));
  // Out of order, with other seeds' draws in between (the permutations' memo must not leak state).
  for (const s of [39, 3, 17, 0, 25]) {
    alignedWindows(6, s, 6, total);
    alignedWindows(5, s + 1, 6, total + 1);
    assert.deepEqual(Array.from(alignedWindows(5, s, 6, total)), straight[s], `step ${s}`);
  }
  assert.notDeepEqual(Array.from(alignedWindows(6, 0, 6, total)), straight[0], "the seed does not change the order");
});

test("an aligned text source's batches are the cache's windows (evalWindows) that its window ids name", async () => {
  const ids = Int32Array.from({ length: 1000 }, (_, i) => (i * 7919) % 97);
  const C = 12;
  const src = textSource({ ids, context: C, batchSize: 5, steps: 10, seed: 3, windows: "aligned" });
  const ev = evalWindows(ids, C);
  for (const step of [0, 9, 30]) {
    const hb = await src.batch(0, step, {} as never);
    assert.deepEqual(Array.from(hb.windows!), Array.from(alignedWindows(3, step, 5, ev.windows)));
    hb.windows!.forEach((w, b) => {
      assert.deepEqual(Array.from(hb.x.subarray(b * C, (b + 1) * C)), Array.from(ev.x.subarray(w * C, (w + 1) * C)), `step ${step} row ${b}: inputs`);
      assert.deepEqual(Array.from(hb.labels!.subarray(b * C, (b + 1) * C)), Array.from(ev.y.subarray(w * C, (w + 1) * C)), `step ${step} row ${b}: targets`);
    });
  }
  // The cache's training windows are the same windows, without copies.
  const cw = cacheWindows(ids, ids.subarray(0, 100), C, 3);
  assert.equal(cw.train.windows, ev.windows);
  assert.deepEqual(Array.from(cw.train.x), Array.from(ev.x));
  assert.deepEqual(Array.from(cw.heldout.x), Array.from(evalWindows(ids.subarray(0, 100), C, 3).x));
  // Random windows (the default) carry no window ids.
  const rnd = await textSource({ ids, context: C, batchSize: 5, steps: 10, seed: 3 }).batch(0, 0, {} as never);
  assert.equal(rnd.windows, undefined);
});

const base = () => ({
  kind: "lm",
  name: "c",
  data: { tokenizer: "char" },
  teacher: { gguf: "t.gguf", topK: 8 },
  students: [{ name: "s", role: "distilled", model: { type: "llama", layers: 1, width: 8, heads: 2, context: 8 }, train: { steps: 1, batchSize: 2, optimizer: { name: "adam", lr: 0.01 }, loss: { name: "hinton" } } }],
});

function refused(edit: (r: any) => void, pattern: RegExp): void {
  const r = base() as any;
  edit(r);
  assert.throws(() => validateLMRecipe(r, "r.yaml"), (e: unknown) => e instanceof UserError && pattern.test(e.message) && !e.message.includes("\n"));
}

test("recipe: teacher.server, teacher.cache, the cache block and data.windows validate, and bad values name the field", () => {
  const ok = base() as any;
  ok.cache = { dir: "c", topK: 8, precision: "exact" };
  ok.data.windows = "aligned";
  assert.equal(validateLMRecipe(ok, "r.yaml").cache?.precision, "exact");
  const srv = base() as any;
  srv.teacher = { server: { url: ["http://127.0.0.1:1", "http://127.0.0.1:2"], model: "m", apiKeyEnv: "KEY", topK: 4, concurrency: 2 } };
  assert.deepEqual(validateLMRecipe(srv, "r.yaml").teacher, srv.teacher);
  const cached = base() as any;
  cached.teacher = { cache: "c" };
  assert.deepEqual(validateLMRecipe(cached, "r.yaml").teacher, { cache: "c" });

  refused((r) => (r.cache = { dir: "c", topK: 9 }), /^r\.yaml: cache\.topK: 9 is more than the teacher's topK of 8$/);
  refused((r) => (r.cache = { dir: "c", topK: 4, precision: "fp8" }), /^r\.yaml: cache\.precision: /);
  refused((r) => (r.cache = { dir: "c", topK: 4, extra: 1 }), /^r\.yaml: cache: unknown field "extra"/);
  refused((r) => (r.teacher = { server: { url: [], model: "m", topK: 4 } }), /^r\.yaml: teacher\.server\.url/);
  refused((r) => (r.teacher = { server: { url: "http://x", model: "m", topK: 4, apiKey: "secret" } }), /^r\.yaml: teacher\.server: unknown field "apiKey"/);
  refused((r) => ((r.teacher = { cache: "c" }), (r.data.windows = "random")), /^r\.yaml: data\.windows: random windows with teacher\.cache/);
  refused((r) => ((r.teacher = { cache: "c" }), (r.cache = { dir: "d", topK: 2 })), /^r\.yaml: cache: the teacher is already a cache/);
  refused((r) => (r.data.windows = "sequential"), /^r\.yaml: data\.windows: /);
});

test("--shard i/N: 0 ≤ i < N, else one line naming the value", () => {
  assert.deepEqual(parseShard("1/2"), { index: 1, count: 2 });
  assert.deepEqual(parseShard("0/1"), { index: 0, count: 1 });
  for (const bad of ["3/2", "2/2", "0/0", "-1/2", "1", "a/b", "1/2/3", "1.5/2"]) {
    assert.throws(() => parseShard(bad), (e: unknown) => e instanceof UserError && e.message.startsWith(`--shard ${bad}: expected i/N with 0 ≤ i < N`), bad);
  }
});

test("the shipped cache recipes: charlm-cache fills with charlm-fortunes's teacher (so each command reuses the other's) at the context charlm-from-cache's students read", () => {
  const fill = loadAnyRecipe("recipes/charlm-cache.yaml") as LMRecipe;
  const fortunes = loadAnyRecipe("recipes/charlm-fortunes.yaml") as LMRecipe;
  const students = loadAnyRecipe("recipes/charlm-from-cache.yaml") as LMRecipe;
  assert.equal(fill.name, fortunes.name, "another name: distill cache would train its teacher in another runs/ folder");
  assert.deepEqual(fill.teacher, fortunes.teacher);
  assert.deepEqual(fill.data, fortunes.data);
  assert.deepEqual(students.teacher, { cache: fill.cache!.dir });
  const context = Math.max(...fill.students.map((s) => s.model.context));
  for (const s of students.students) assert.equal(s.model.context, context, s.name);
  assert.deepEqual({ ...students.data }, { ...fill.data });
});
