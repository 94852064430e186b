// `distill cache` with a teacher trained here (dense logits, cut to k by the store): it trains
// the teacher as `distill run` would, shards and a merge give the cache one run gives, a student
// of the cache interrupted and resumed replays the uninterrupted one, and bad input is one line
// and exit 2.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { openCache } from "../src/cache/index.js";
import type { CacheSplit } from "../src/cache/types.js";
import { loadCheckpoint } from "../src/checkpoint/checkpoint.js";
import { runUntil } from "./helpers/fixtures.js";
import { checkpointOf, results, run } from "./helpers/byo.js";
import { tempDir } from "./helpers/tmp.js";
import { textCorpus, writeLMRecipe, ok, tinyTeacher } from "./helpers/cache-recipes.js";

const dir = tempDir("distill-cache-shard-");
const corpus = textCorpus(dir);
const teacher = tinyTeacher;
const runs = join(dir, "runs");
const recipe = (name: string, t: unknown, edit?: (r: Record<string, any>) => void) => writeLMRecipe(dir, corpus, name, t, { name: "shard", steps: 24, cacheDir: join(dir, "cache-one") }, edit);

const cacheRecipe = recipe("fill", teacher);
let one: string | null = null;
/** The unsharded cache; its teacher trained by `distill cache` itself. */
function cacheOne(): string {
  if (one) return one;
  const r = ok(["cache", cacheRecipe, "--runs", runs]);
  assert.match(r.stderr, /teacher seed 0/, "distill cache did not train the teacher");
  assert.match(r.stdout, /cache: .*cache-one complete/);
  one = join(dir, "cache-one");
  return one;
}

/** Every row of both splits, as bytes, to compare caches row by row. */
async function rowsOf(d: string): Promise<Record<string, string>> {
  const reader = openCache(d);
  const out: Record<string, string> = {};
  for (const split of ["train", "heldout"] as CacheSplit[]) {
    for (let w = 0; w < reader.manifest.windows[split]; w++) {
      const s = await reader.softLabels(split, Int32Array.of(w));
      out[`${split}/${w}`] = [s.ids, s.logprobs, s.logTail].map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64")).join(" ");
    }
  }
  await reader.close();
  return out;
}

test("distill cache trains the recipe's teacher as distill run would; --shard 0/2 and 1/2 then --merge give the unsharded cache row for row", async () => {
  const c1 = cacheOne();
  const m1 = JSON.parse(readFileSync(join(c1, "manifest.json"), "utf8"));
  // The teacher it scored with is the one `distill run` reuses (named by its config hash).
  const teacherFile = readdirSync(join(runs, "seed-0")).find((f) => /^teacher-.*\.safetensors$/.test(f))!;
  assert.equal(teacherFile, `teacher-${m1.teacher}.safetensors`);
  const again = ok(["cache", cacheRecipe, "--runs", runs]);
  assert.match(again.stdout, /0 windows scored now/, "a finished cache was scored again");

  const c2 = join(dir, "cache-sharded");
  const s0 = ok(["cache", cacheRecipe, "--runs", runs, "--out", c2, "--shard", "0/2", "-q"]);
  assert.match(s0.stdout, /shard 0\/2 done .*--merge/);
  assert.ok(!existsSync(join(c2, "manifest.json")), "one shard of two wrote the manifest");
  ok(["cache", cacheRecipe, "--runs", runs, "--out", c2, "--shard", "1/2", "-q"]);
  const m = ok(["cache", cacheRecipe, "--out", c2, "--merge"]);
  assert.match(m.stdout, /^merged: /);
  const m2 = JSON.parse(readFileSync(join(c2, "manifest.json"), "utf8"));
  for (const f of ["teacher", "tokenizer", "corpus", "k", "vocab", "context", "precision", "rows"]) assert.deepEqual(m2[f], m1[f], f);
  assert.ok(m1.windows.train > 2 * m1.windowsPerChunk, `only ${m1.windows.train} training windows: the shards would not split`);
  assert.deepEqual(await rowsOf(c2), await rowsOf(c1));
});

test("a student of the cache interrupted and resumed from its checkpoint replays the uninterrupted one", async () => {
  const c = cacheOne();
  const r = recipe("student", { cache: c }, (x) => (x.students[0].train.steps = 60));
  const straight = join(dir, "straight");
  ok(["run", r, "--out", straight, "-q"]);
  const out = join(dir, "resumed");
  const r1 = await runUntil(["run", r, "--out", out], (stderr) => /fkl seed 0 .*: [2-6]0%/.test(stderr), "SIGINT", 120_000);
  assert.equal(r1.code, 130, r1.stderr);
  const json = readdirSync(join(out, "seed-0")).find((f) => /^fkl-.*\.json$/.test(f))!;
  const state = JSON.parse(readFileSync(join(out, "seed-0", json), "utf8")).state;
  assert.ok(!state.done && state.step > 0 && state.step < 60, `saved at step ${state.step}`);
  ok(["run", r, "--out", out, "--resume", "-q"]);
  assert.equal(run(results(out), "fkl").metrics.loss, run(results(straight), "fkl").metrics.loss);
  const tensors = (o: string) => Object.entries(loadCheckpoint(checkpointOf(o, "fkl")).tensors).map(([k, v]) => [k, Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength).toString("base64")]);
  assert.deepEqual(tensors(out), tensors(straight));
});

test("distill cache killed (kill -9) after its first chunk, then run again, continues to the cache one run gives, row for row", async () => {
  const c1 = cacheOne();
  const c3 = join(dir, "cache-killed");
  const args = ["cache", cacheRecipe, "--runs", runs, "--out", c3];
  const k = await runUntil(args, () => existsSync(join(c3, "train-00000.parquet")), "SIGKILL", 120_000);
  assert.equal(k.signal, "SIGKILL");
  assert.ok(!existsSync(join(c3, "manifest.json")), "the build finished before it was killed");
  const again = ok([...args, "-q"]);
  assert.match(again.stdout, /complete/);
  assert.deepEqual(await rowsOf(c3), await rowsOf(c1));
});

test("distill cache stopped by Ctrl-C: exit 130, whole chunks kept, and the same command continues to the same cache", async () => {
  const c1 = cacheOne();
  const c4 = join(dir, "cache-sigint");
  const args = ["cache", cacheRecipe, "--runs", runs, "--out", c4];
  const k = await runUntil(args, (stderr) => /cache .*: [3-6]0%/.test(stderr), "SIGINT", 120_000);
  assert.equal(k.code, 130, k.stderr);
  assert.match(k.stderr, /distill: interrupted: the chunks of .*cache-sigint written so far are kept; run the same command to continue\n$/);
  assert.ok(!existsSync(join(c4, "manifest.json")));
  const again = ok([...args, "-q"]);
  const scored = Number(/\((\d+) windows scored now/.exec(again.stdout)?.[1]);
  const m = JSON.parse(readFileSync(join(c1, "manifest.json"), "utf8"));
  assert.ok(scored < m.windows.train + m.windows.heldout, `scored all ${scored} windows again: nothing was kept`);
  assert.deepEqual(await rowsOf(c4), await rowsOf(c1));
});
