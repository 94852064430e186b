// The soft-label cache's store: what is read back equals what the teacher gave (exact: bit for
// bit; quantized: KL ≤ 1e-3 nats per token at k = 16, 64, 128, under 300 bytes per token at
// k = 128 for V = 256), whatever form the teacher gave it in, and the reader streams.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { initDevice } from "../src/engine/index.js";
import { buildCache, openCache, corpusHash } from "../src/cache/index.js";
import { logTailOf, topKOfLogits } from "../src/teachers/teacher.js";
import { UserError } from "../src/util/errors.js";
import { Rng } from "../src/util/rng.js";
import type { CachePrecision, TopKLabels } from "../src/cache/types.js";
import { storeOnce, trainedByteLMLogits } from "../src/bench/cache-bench.js";
import { fakeScore, firstDifference, gatherWindows, klPerToken, pseudoLogits, zipfLogits } from "./helpers/cache.js";
import { tempDir } from "./helpers/tmp.js";

before(async () => {
  await initDevice("wasm");
});

const V = 50;
const C = 8;
const ids = (windows: number, seed: number) => {
  const rng = new Rng(seed);
  return Int32Array.from({ length: windows * C }, () => rng.int(V));
};
const identity = (train: Int32Array, heldout: Int32Array) => ({ teacher: "fake", tokenizer: "tok", corpus: corpusHash(train, heldout, C) });

async function build(dir: string, o: { k: number; precision?: CachePrecision; score: ReturnType<typeof fakeScore>; train: Int32Array; heldout: Int32Array; batchWindows?: number; concurrency?: number }) {
  return buildCache({ dir, identity: identity(o.train, o.heldout), vocab: V, context: C, ...o });
}

/** What the cache should hold for windows `ws`: the dense teacher cut to k, computed here. */
const expected = (src: Int32Array, ws: Int32Array, k: number): TopKLabels => {
  const x = gatherWindows(src, C, ws);
  return topKOfLogits(pseudoLogits(x, C, V), x.length, V, k);
};

test("exact: every row comes back bit for bit, in the order asked, across chunks and both splits", async () => {
  const train = ids(150, 1); // chunks of 64, 64 and 22 windows
  const heldout = ids(10, 2);
  const dir = tempDir("distill-cache-");
  // Batches of 5 windows do not divide a chunk; three calls in flight at once.
  const r = await build(dir, { k: 12, precision: "exact", score: fakeScore(V), train, heldout, batchWindows: 5, concurrency: 3 });
  assert.equal(r.scoredWindows, 160);
  assert.ok(r.manifest);
  assert.deepEqual(r.manifest.windows, { train: 150, heldout: 10 });
  assert.equal(r.manifest.rows, 160 * C);
  assert.deepEqual(
    r.manifest.shards.map((s) => s.file),
    ["train-00000.parquet", "train-00001.parquet", "train-00002.parquet", "heldout-00000.parquet"],
  );
  const reader = openCache(dir, { context: C, tokenizer: "tok" });
  const order = new Rng(3).permutation(150);
  const got = await reader.softLabels("train", order);
  assert.equal(firstDifference(got, expected(train, order, 12)), null);
  const hw = Int32Array.from([9, 0, 4, 4]); // a window twice is two copies
  assert.equal(firstDifference(await reader.softLabels("heldout", hw), expected(heldout, hw, 12)), null);
  assert.ok(reader.stats!.maxDecoded <= 2, `held ${reader.stats!.maxDecoded} chunks decoded`);
  await assert.rejects(reader.softLabels("heldout", Int32Array.from([10])), /window 10 of heldout is outside the cache's 10/);
  await reader.close();
  // Built again: nothing to score, same manifest.
  const again = await build(dir, { k: 12, precision: "exact", score: fakeScore(V), train, heldout });
  assert.equal(again.scoredWindows, 0);
  assert.deepEqual(again.manifest, r.manifest);
});

test("any form of teacher output is stored as the same top k: more than k and unsorted, no tail, k = vocabulary", async () => {
  const train = ids(70, 4);
  const heldout = ids(3, 5);
  const all = Int32Array.from({ length: 70 }, (_, i) => i);
  const want = expected(train, all, 9);
  const read = async (score: ReturnType<typeof fakeScore>, k = 9) => {
    const dir = tempDir("distill-cache-");
    await build(dir, { k, precision: "exact", score, train, heldout });
    return openCache(dir).softLabels("train", all);
  };
  // A server's top 16 listed in any order, with its tail: sorted, cut to 9, the 7 dropped
  // folded into the tail (float64), which then matches the dense tail to float32 rounding.
  const more = await read(fakeScore(V, { give: 16, shuffled: true }));
  assert.deepEqual(more.ids, want.ids);
  assert.deepEqual(more.logprobs, want.logprobs);
  for (let r = 0; r < want.rows; r++) assert.ok(Math.abs(more.logTail[r] - want.logTail[r]) < 2e-6 * Math.max(1, Math.abs(want.logTail[r])), `row ${r}: ${more.logTail[r]} vs ${want.logTail[r]}`);
  // A top 9 without a tail: the tail is logTailOf's.
  const noTail = await read(fakeScore(V, { give: 9, tail: false }));
  assert.deepEqual(noTail.logprobs, want.logprobs);
  assert.deepEqual(noTail.logTail, logTailOf(want.logprobs, want.rows, 9));
  // k = V: the tail is empty (−∞), stored and read back as such.
  const full = await read(fakeScore(V), V);
  assert.ok(full.logTail.every((t) => t === -Infinity));
  assert.equal(firstDifference(full, expected(train, all, V)), null);
  // Quantized with an empty tail: still a distribution over the V kept.
  const dir = tempDir("distill-cache-");
  await build(dir, { k: V, score: fakeScore(V), train, heldout });
  const q = await openCache(dir).softLabels("train", all);
  for (let r = 0; r < q.rows; r++) {
    let s = 0;
    for (let j = 0; j < V; j++) s += Math.exp(q.logprobs[r * V + j]);
    assert.ok(Math.abs(s - 1) < 1e-5 && q.logTail[r] === -Infinity, `row ${r}: Σp = ${s}, tail ${q.logTail[r]}`);
  }
});

test("quantized: KL ≤ 1e-3 nats/token at k = 16, 64, 128 on a trained byte LM and a Zipf-like 32k vocabulary; < 300 bytes/token at k = 128, V = 256", async () => {
  const context = 64;
  const real = await trainedByteLMLogits({ steps: 80, windows: 64, context });
  const zipfRows = 2 * context;
  const zipf = zipfLogits(zipfRows, 32000, 9);
  for (const k of [16, 64, 128]) {
    for (const [label, exact] of [
      ["byte LM", topKOfLogits(real.logits, real.rows, 256, k)],
      ["Zipf 32k", topKOfLogits(zipf, zipfRows, 32000, k)],
    ] as const) {
      const m = await storeOnce(exact, context, "quantized");
      assert.ok(m.kl <= 1e-3, `${label} k=${k}: KL ${m.kl}`);
      // Not vacuous: the stored values are not the exact ones, yet within half a step of them
      // up to one shift per row (the renormalization): rounding each delta instead of the
      // cumulative value would drift by up to k/64 nat along a row and fail this.
      let changed = 0;
      for (let r = 0; r < exact.rows; r++) {
        let lo = Infinity;
        let hi = -Infinity;
        for (let j = 0; j < k; j++) {
          const lp = exact.logprobs[r * k + j];
          if (lp < -30) continue;
          const d = m.stored.logprobs[r * k + j] - lp;
          if (d !== 0) changed++;
          lo = Math.min(lo, d);
          hi = Math.max(hi, d);
        }
        assert.ok(hi - lo <= 1 / 32 + 1e-4, `${label} k=${k} row ${r}: errors spread over ${hi - lo} nats`);
      }
      assert.ok(changed > exact.rows, `${label} k=${k}: quantization changed only ${changed} values`);
      assert.deepEqual(m.stored.ids, exact.ids);
      if (label === "byte LM" && k === 128) assert.ok(m.bytesPerToken < 300, `${m.bytesPerToken} bytes/token`);
    }
  }
});

test("the KL measure itself: zero for identical rows, positive and finite for a perturbed row, infinite for a wrong id", () => {
  const t = topKOfLogits(pseudoLogits(ids(2, 8), C, V), 2 * C, V, 5);
  assert.equal(klPerToken(t, t), 0);
  const moved = { ...t, logprobs: t.logprobs.map((v, i) => (i === 0 ? v - 0.1 : v)) };
  const kl = klPerToken(t, moved);
  assert.ok(kl > 0 && kl < 1, String(kl));
  let other = 0;
  while (t.ids.subarray(0, 5).includes(other)) other++;
  const wrong = { ...t, ids: t.ids.map((v, i) => (i === 0 ? other : v)) };
  assert.equal(klPerToken(t, wrong), Infinity);
});

test("the reader streams: in chunk order each chunk is loaded once; a random order never holds more than two decoded", async () => {
  const train = ids(64 * 5, 6);
  const dir = tempDir("distill-cache-");
  await build(dir, { k: 4, score: fakeScore(V), train, heldout: ids(1, 7), batchWindows: 16 });
  const reader = openCache(dir);
  // Chunk c holds windows c, c + 5, c + 10, ... (320 windows strided over 5 chunks).
  const inChunkOrder = Int32Array.from({ length: 320 }, (_, i) => (i % 64) * 5 + Math.floor(i / 64));
  for (let w = 0; w < 320; w += 16) await reader.softLabels("train", inChunkOrder.subarray(w, w + 16));
  assert.equal(reader.stats!.loads, 5);
  for (let i = 0; i < 30; i++) await reader.softLabels("train", new Rng(i).permutation(320).subarray(0, 4));
  assert.ok(reader.stats!.maxDecoded <= 2);
  assert.ok(reader.stats!.loads > 5);
  const files = readdirSync(dir).filter((f) => f.endsWith(".parquet"));
  assert.equal(files.length, 6);
  assert.ok(files.every((f) => statSync(join(dir, f)).size > 0));
});

test("bad input: a teacher that gives fewer than k, and a restart with another k, are refused with one line", async () => {
  const train = ids(10, 9);
  const heldout = ids(2, 10);
  const dir = tempDir("distill-cache-");
  await assert.rejects(build(dir, { k: 8, score: fakeScore(V, { give: 4 }), train, heldout }), (e: Error) => e instanceof UserError && /top 4 .*k = 8/.test(e.message));
  await assert.rejects(build(dir, { k: 16, score: fakeScore(V), train, heldout }), (e: Error) => e instanceof UserError && /k is 8 in .*plan\.json, 16 in this build/.test(e.message) && !e.message.includes("\n"));
  await assert.rejects(build(dir, { k: 8, score: fakeScore(V), train: ids(11, 9), heldout }), /corpus is "[0-9a-f]{64}" in .*plan\.json, "[0-9a-f]{64}" in this build/);
  const nan = async (x: Int32Array, shape: [number, number]) => {
    const s = await fakeScore(V, { give: 8 })(x, shape);
    if (s.kind === "topk") s.logprobs[3] = NaN;
    return s;
  };
  await assert.rejects(build(dir, { k: 8, score: nan, train, heldout }), /log-probability of NaN at train window 0 position 0/);
  const denseNaN = async (x: Int32Array, shape: [number, number]) => {
    const s = await fakeScore(V)(x, shape);
    if (s.kind === "dense") s.logits[2 * V + 5] = NaN;
    return s;
  };
  await assert.rejects(build(dir, { k: 8, score: denseNaN, train, heldout }), /NaN logit at train window 0 position 2/);
  const file = join(dir, "plan.json");
  await assert.rejects(build(file, { k: 8, score: fakeScore(V), train, heldout }), (e: Error) => e instanceof UserError && e.message === `${file}: exists and is not a folder; a cache is a folder`);
});
