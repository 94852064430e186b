// Where one replica's training step spends its time, kernel by kernel: runs a bench workload
// on one thread at the replica's batch with jax-js's kernel tracing on, and prints the kernels
// that took the most time (their size, reduction and expression, shortened).
//
//   npx tsx bench/kernel-profile.ts [teacher-mlp|student-kd-mlp|cnn-student|lm-student-kd] [batch] [steps]
import { PerformanceObserver } from "node:perf_hooks";
import { jax } from "../src/engine/index.js";
import { runWorkload } from "../src/bench/bench.js";

const [workload = "teacher-mlp", batch = "64", steps = "100"] = process.argv.slice(2);
const totals = new Map<string, { ms: number; n: number }>();
let all = 0;
const obs = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const d = (e as unknown as { detail?: { devtools?: { properties?: [string, string][] } } }).detail;
    const props = Object.fromEntries(d?.devtools?.properties ?? []);
    const key = `${e.name} ${props.reduction ?? ""} ${(props.exp ?? props.inputShapes ?? "").slice(0, 160)}`;
    const t = totals.get(key) ?? { ms: 0, n: 0 };
    t.ms += e.duration;
    t.n++;
    totals.set(key, t);
    all += e.duration;
    performance.clearMeasures(e.name);
  }
});
obs.observe({ entryTypes: ["measure"] });
const j = (jax as unknown as { profiler: { startTrace(): void; stopTrace(): void } }).profiler;
j.startTrace();
const r = await runWorkload(workload, { batch: Number(batch), steps: Number(steps), workers: 1 });
j.stopTrace();
await new Promise((res) => setTimeout(res, 50));
obs.disconnect();
const per = Number(steps) + 10; // the bench's 10 warm-up steps are traced too
console.log(`${workload}, batch ${batch}, 1 thread: ${r.msPerStep.toFixed(2)} ms/step; kernels ${(all / per).toFixed(2)} ms/step`);
for (const [k, t] of [...totals].sort((a, b) => b[1].ms - a[1].ms).slice(0, 25)) console.log(`${(t.ms / per).toFixed(3).padStart(7)} ms  ×${(t.n / per).toFixed(0).padStart(3)}  ${k}`);
