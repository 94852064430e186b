// Shards and merge: N shards filled separately and merged equal one unsharded cache row by row;
// merge refuses a missing shard, a missing, corrupt or truncated chunk (named, one line); the
// reader refuses another tokenizer or corpus, and a chunk changed after the merge.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildCache, mergeCache, openCache, corpusHash } from "../src/cache/index.js";
import { UserError } from "../src/util/errors.js";
import { Rng } from "../src/util/rng.js";
import { fakeScore, firstDifference } from "./helpers/cache.js";
import { tempDir } from "./helpers/tmp.js";

const V = 40;
const C = 4;
const rng = new Rng(11);
const train = Int32Array.from({ length: (64 * 5 + 3) * C }, () => rng.int(V)); // 6 chunks
const heldout = Int32Array.from({ length: 70 * C }, () => rng.int(V)); // 2 chunks
const identity = { teacher: "fake-teacher", tokenizer: "tok-a", corpus: corpusHash(train, heldout, C) };
const opts = (dir: string) => ({ dir, identity, k: 6, vocab: V, context: C, train, heldout, score: fakeScore(V, { give: 10 }), batchWindows: 16 });

const oneLine = (re: RegExp) => (e: Error) => e instanceof UserError && re.test(e.message) && !e.message.includes("\n");

/** The merged 3-shard cache, built once and copied for each way of breaking it. */
let sharded: string | null = null;
async function shardedCache(): Promise<string> {
  if (sharded) return sharded;
  const dir = tempDir("distill-cache-shards-");
  for (const index of [2, 0]) assert.equal((await buildCache({ ...opts(dir), shard: { index, count: 3 } })).manifest, null);
  assert.throws(() => mergeCache(dir), oneLine(/shard-1-of-3\.json: missing \(shard 1 of 3 has not finished\)/));
  const r = await buildCache({ ...opts(dir), shard: { index: 1, count: 3 } });
  assert.equal(r.manifest, null);
  // Shard 1 owns chunks 1 and 4 of train (54 windows each: 323 strided over 6 chunks) and
  // chunk 1 of held-out (35: 70 over 2).
  assert.equal(r.scoredWindows, 54 + 54 + 35);
  mergeCache(dir);
  sharded = dir;
  return dir;
}

function copy(dir: string): string {
  const to = tempDir("distill-cache-broken-");
  cpSync(dir, to, { recursive: true });
  return to;
}

test("3 shards filled separately, then merged, equal an unsharded cache row by row", async () => {
  const dir = await shardedCache();
  const whole = tempDir("distill-cache-whole-");
  const w = await buildCache(opts(whole));
  const a = openCache(dir, identity);
  const b = openCache(whole, identity);
  // Same chunks, same bytes (the encoding is deterministic), same manifest.
  assert.deepEqual(a.manifest, w.manifest);
  for (const split of ["train", "heldout"] as const) {
    const n = a.manifest.windows[split];
    const all = Int32Array.from({ length: n }, (_, i) => i);
    const [x, y] = [await a.softLabels(split, all), await b.softLabels(split, all)];
    assert.equal(x.rows, n * C);
    assert.equal(firstDifference(x, y), null, split);
  }
});

test("merge refuses a chunk that is missing, corrupt or truncated, and a shard record that leaves one out, naming it", async () => {
  const dir = await shardedCache();
  const gone = copy(dir);
  rmSync(join(gone, "train-00004.parquet"));
  assert.throws(() => mergeCache(gone), oneLine(/train-00004\.parquet: missing \(shard-1-of-3\.json lists it\)/));

  const corrupt = copy(dir);
  const f = join(corrupt, "heldout-00001.parquet");
  const bytes = readFileSync(f);
  bytes[Math.floor(bytes.length / 2)] ^= 0x55;
  writeFileSync(f, bytes);
  assert.throws(() => mergeCache(corrupt), oneLine(/heldout-00001\.parquet: .*SHA-256.*shard-1-of-3\.json recorded .*\(corrupt or truncated chunk\)/));

  const short = copy(dir);
  const g = join(short, "train-00000.parquet");
  truncateSync(g, readFileSync(g).length - 100);
  assert.throws(() => mergeCache(short), oneLine(/train-00000\.parquet: .*\(corrupt or truncated chunk\)/));

  const unlisted = copy(dir);
  const rec = join(unlisted, "shard-2-of-3.json");
  const doc = JSON.parse(readFileSync(rec, "utf8"));
  doc.chunks = doc.chunks.filter((c: { file: string }) => c.file !== "train-00002.parquet");
  writeFileSync(rec, JSON.stringify(doc));
  assert.throws(() => mergeCache(unlisted), oneLine(/train-00002\.parquet: missing \(no finished shard lists chunk 2 of train\)/));

  const twice = copy(dir);
  const rec0 = join(twice, "shard-0-of-3.json");
  const d0 = JSON.parse(readFileSync(rec0, "utf8"));
  d0.chunks.push(JSON.parse(readFileSync(join(twice, "shard-1-of-3.json"), "utf8")).chunks[0]);
  writeFileSync(rec0, JSON.stringify(d0));
  assert.throws(() => mergeCache(twice), oneLine(/train-00001\.parquet: listed twice/));
});

test("a shard of another plan is refused before it scores anything", async () => {
  const dir = tempDir("distill-cache-plan-");
  await buildCache({ ...opts(dir), shard: { index: 0, count: 2 } });
  let calls = 0;
  const counting = async (x: Int32Array, s: [number, number]) => {
    calls++;
    return fakeScore(V)(x, s);
  };
  await assert.rejects(buildCache({ ...opts(dir), identity: { ...identity, teacher: "another" }, score: counting, shard: { index: 1, count: 2 } }), oneLine(/teacher is "fake-teacher" in .*plan\.json, "another" in this build/));
  await assert.rejects(buildCache({ ...opts(dir), precision: "exact", score: counting, shard: { index: 1, count: 2 } }), oneLine(/precision is "quantized" in .*plan\.json, "exact" in this build/));
  assert.equal(calls, 0);
  await assert.rejects(buildCache({ ...opts(dir), shard: { index: 2, count: 2 } }), oneLine(/--shard: index 2 is not in 0\.\.1/));
});

test("openCache refuses another tokenizer or corpus, an unmerged cache, and a chunk changed after the merge (named)", async () => {
  const dir = await shardedCache();
  assert.throws(() => openCache(dir, { tokenizer: "tok-b" }), oneLine(/manifest\.json: tokenizer is tok-a, the recipe's is tok-b/));
  assert.throws(() => openCache(dir, { corpus: "0".repeat(64) }), oneLine(new RegExp(`manifest\\.json: corpus is ${identity.corpus}, the recipe's is 0{64}`)));
  assert.throws(() => openCache(dir, { context: 8 }), oneLine(/context is 4, the recipe's is 8/));

  const unmerged = copy(dir);
  rmSync(join(unmerged, "manifest.json"));
  assert.throws(() => openCache(unmerged), oneLine(/no manifest\.json \(an unfinished cache/));

  const changed = copy(dir);
  const f = join(changed, "train-00003.parquet");
  const bytes = readFileSync(f);
  bytes[bytes.length - 20] ^= 1;
  writeFileSync(f, bytes);
  const r = openCache(changed);
  // Chunks other than the changed one still read (window w is in chunk w mod 6).
  await r.softLabels("train", Int32Array.from([0, 64, 128]));
  await assert.rejects(r.softLabels("train", Int32Array.from([201])), oneLine(/train-00003\.parquet: SHA-256 .* does not match manifest\.json's .*\(corrupt or truncated chunk\)/));
});
