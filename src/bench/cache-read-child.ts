// Child process of the cache bench's memory measurement: reads a whole cache (argv[2]) as a
// student does, a batch of windows at a time in chunk order, and prints its peak RSS as JSON.
// With --gc (and node's --expose-gc) it collects garbage after every batch, so the peak is what
// the reader holds, not how far V8 let garbage pile up before collecting it.
import { existsSync, readFileSync } from "node:fs";
import { openCache } from "../cache/index.js";
import { alignedWindows } from "../data/text-source.js";

const reader = openCache(process.argv[2]);
const gc = process.argv.includes("--gc") ? (globalThis as { gc?: () => void }).gc : undefined;
const total = reader.manifest.windows.train;
let checksum = 0;
// One pass in the students' aligned order (chunk by chunk); the last batch runs into the next pass.
for (let step = 0; step * 8 < total; step++) {
  const s = await reader.softLabels("train", alignedWindows(0, step, 8, total));
  checksum += s.logprobs[0];
  gc?.();
}
await reader.close();
// VmHWM is this process's own high-water mark; getrusage's maxRSS also counts the parent's RSS
// at fork time (Linux folds the pre-exec peak in), which would hide the reader behind the bench.
const hwm = /^VmHWM:\s+(\d+) kB/m.exec(existsSync("/proc/self/status") ? readFileSync("/proc/self/status", "utf8") : "");
const peakRssMB = (hwm ? Number(hwm[1]) : process.resourceUsage().maxRSS) / 1024;
console.log(JSON.stringify({ windows: total, checksum, peakRssMB }));
