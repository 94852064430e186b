// Child process of the cache bench's memory measurement: reads a whole cache (argv[2]) as a
// student does, a batch of windows at a time in chunk order, and prints its peak RSS as JSON.
import { openCache } from "../cache/index.js";

const reader = openCache(process.argv[2]);
const total = reader.manifest.windows.train;
let checksum = 0;
for (let w = 0; w < total; w += 8) {
  const ws = Int32Array.from({ length: Math.min(8, total - w) }, (_, i) => w + i);
  const s = await reader.softLabels("train", ws);
  checksum += s.logprobs[0];
}
await reader.close();
console.log(JSON.stringify({ windows: total, checksum, peakRssMB: process.resourceUsage().maxRSS / 1024 }));
