// Child process of the cache bench's memory measurement: reads a whole cache (argv[2]) as a
// student does, a batch of windows at a time in chunk order, and prints its peak RSS as JSON.
// With --gc (and node's --expose-gc) it collects garbage after every batch, so the peak is what
// the reader holds, not how far V8 let garbage pile up before collecting it.
import { openCache } from "../cache/index.js";

const reader = openCache(process.argv[2]);
const gc = process.argv.includes("--gc") ? (globalThis as { gc?: () => void }).gc : undefined;
const total = reader.manifest.windows.train;
let checksum = 0;
for (let w = 0; w < total; w += 8) {
  const ws = Int32Array.from({ length: Math.min(8, total - w) }, (_, i) => w + i);
  const s = await reader.softLabels("train", ws);
  checksum += s.logprobs[0];
  gc?.();
}
await reader.close();
console.log(JSON.stringify({ windows: total, checksum, peakRssMB: process.resourceUsage().maxRSS / 1024 }));
