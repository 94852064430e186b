// Reading does not grow with the cache: a child that reads a whole 10× cache (2,000 windows of
// 128 positions at k = 128: 250 MB once decoded) peaks within 10 % of one that reads a 1× cache
// (4 chunks: past the first chunks' warm-up of the allocator). Loading a cache whole would add the
// decoded size (≥ 90 MB more at 10×) to the peak, several times the 10 % allowed. The children
// collect garbage after every batch: without that, the peak measures how much freed memory V8
// lets pile up before collecting (it grows over a long read up to V8's limit, then stops),
// not what the reader holds; the bench prints both.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readerMemory } from "../src/bench/cache-bench.js";

test("peak RSS reading a 10× cache is within 10 % of a 1× cache's", async () => {
  const [one, ten] = await readerMemory(200, { natural: false });
  assert.ok(ten.decodedMB >= 100, `10× cache decodes to ${ten.decodedMB} MB`);
  assert.ok(ten.peakRssGcMB <= one.peakRssGcMB * 1.1, `peak RSS ${one.peakRssGcMB.toFixed(0)} MB at 1× (${one.decodedMB.toFixed(0)} MB decoded), ${ten.peakRssGcMB.toFixed(0)} MB at 10× (${ten.decodedMB.toFixed(0)} MB)`);
  console.log(`peak RSS ${one.peakRssGcMB.toFixed(0)} MB at 1×, ${ten.peakRssGcMB.toFixed(0)} MB at 10× (${ten.decodedMB.toFixed(0)} MB decoded)`);
});
