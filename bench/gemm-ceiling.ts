// How fast can any Wasm code on this CPU run the teacher MLP's train step? Times the step's
// eight matrix products (one replica's half of a batch of 128) with a plain hand-written
// Wasm-SIMD kernel (gemm-ceiling.wat), on one thread and on two at once, and with jax-js's
// np.dot (plain, and as the step forms each product), and prints the step time if every product ran at the hand kernel's speed and
// nothing else took any time: an upper bound for `distill bench`'s teacher-mlp figure.
//
//   apt-get install wabt   # wat2wasm
//   npx tsx bench/gemm-ceiling.ts
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import type { Arr } from "../src/engine/index.js";

/** [M, K, N] of the products in one replica's step (64 rows): forward, input grads, weight grads. */
const SHAPES: [string, number, number, number][] = [
  ["x·W1 (forward)", 64, 784, 512],
  ["h1·W2", 64, 512, 256],
  ["h2·W3", 64, 256, 10],
  ["dz3·W3ᵀ (input grads)", 64, 10, 256],
  ["dz2·W2ᵀ", 64, 256, 512],
  ["h2ᵀ·dz3 (weight grads)", 256, 64, 10],
  ["h1ᵀ·dz2", 512, 64, 256],
  ["xᵀ·dz1", 784, 64, 512],
];
const REPS = 200;

type Gemm = (a: number, b: number, c: number, M: number, N: number, K: number) => void;

/** Seconds per product of each shape with the hand kernel (N padded to a multiple of 8). */
function timeHand(wasm: Uint8Array): number[] {
  const { gemm, mem } = new WebAssembly.Instance(new WebAssembly.Module(wasm)).exports as { gemm: Gemm; mem: WebAssembly.Memory };
  const f = new Float32Array(mem.buffer);
  return SHAPES.map(([, M, K, N0]) => {
    const N = Math.ceil(N0 / 8) * 8;
    const a = 0;
    const b = 4 * M * K;
    const c = b + 4 * K * N;
    for (let i = 0; i < M * K + K * N; i++) f[i] = ((i * 7919) % 1000) / 1000 - 0.5;
    gemm(a, b, c, M, N, K);
    for (const [i, j] of [[0, 0], [M - 1, N - 1], [M >> 1, N >> 1]]) {
      let s = 0;
      for (let k = 0; k < K; k++) s += f[i * K + k] * f[M * K + k * N + j];
      if (Math.abs(s - f[c / 4 + i * N + j]) > 1e-3 * (1 + Math.abs(s))) throw new Error(`hand kernel wrong at ${M}×${K}×${N}`);
    }
    let best = Infinity;
    for (let round = 0; round < 5; round++) {
      const t0 = performance.now();
      for (let r = 0; r < REPS; r++) gemm(a, b, c, M, N, K);
      best = Math.min(best, (performance.now() - t0) / 1000 / REPS);
    }
    return best;
  });
}

/**
 * How the MLP's step forms each product: weights are stored [out, in], so the forward reads
 * Wᵀ through a transposed view ("nt": a·bᵀ), input gradients are plain ("nn") and weight
 * gradients read the output gradient transposed ("tn": aᵀ·b, giving [out, in]).
 */
const STEP_FORMS: ("nn" | "nt" | "tn")[] = ["nt", "nt", "nt", "nn", "nn", "tn", "tn", "tn"];

/** Seconds per product with jax-js's np.dot, plain (`form` "nn") or as the step forms it. */
async function timeJaxJs(asStep: boolean): Promise<number[]> {
  const { initDevice, np, jit } = await import("../src/engine/index.js");
  await initDevice("wasm");
  const dots = {
    nn: jit((x: Arr, y: Arr) => np.dot(x, y)),
    nt: jit((x: Arr, y: Arr) => np.dot(x, y.transpose())),
    tn: jit((x: Arr, y: Arr) => np.dot(x.transpose(), y)),
  } as unknown as Record<"nn" | "nt" | "tn", (x: Arr, y: Arr) => Arr>;
  const out: number[] = [];
  for (const [i, [, M0, K, N0]] of SHAPES.entries()) {
    const form = asStep ? STEP_FORMS[i] : "nn";
    // The weight gradients' output is [out, in]: the transpose of the [in, out] product named.
    const [M, N] = form === "tn" ? [N0, M0] : [M0, N0];
    const dot = dots[form];
    const a = np.ones(form === "tn" ? [K, M] : [M, K]).mul(0.5);
    const b = np.ones(form === "nt" ? [N, K] : [K, N]).mul(0.25);
    for (let i = 0; i < 5; i++) dot(a.ref, b.ref).dataSync();
    let best = Infinity;
    for (let round = 0; round < 5; round++) {
      const t0 = performance.now();
      for (let r = 0; r < REPS / 4; r++) (await dot(a.ref, b.ref).blockUntilReady()).dispose();
      best = Math.min(best, (performance.now() - t0) / 1000 / (REPS / 4));
    }
    a.dispose();
    b.dispose();
    out.push(best);
  }
  return out;
}

if (!isMainThread) {
  parentPort!.postMessage(timeHand(workerData as Uint8Array));
} else {
  const dir = mkdtempSync(join(tmpdir(), "gemm-"));
  let wasm: Uint8Array;
  try {
    const wat = fileURLToPath(new URL("./gemm-ceiling.wat", import.meta.url));
    execFileSync("wat2wasm", [wat, "-o", join(dir, "g.wasm")]);
    wasm = readFileSync(join(dir, "g.wasm"));
  } catch (e) {
    console.error(`gemm-ceiling: wat2wasm failed (${(e as Error).message.split("\n")[0]}); on Debian: apt-get install wabt`);
    process.exit(1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const self = fileURLToPath(import.meta.url);
  const onWorker = () =>
    new Promise<number[]>((resolve, reject) => {
      const w = new Worker(`import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))}).then((m) => m.register()).then(() => import(${JSON.stringify(new URL(`file://${self}`).href)}))`, { eval: true, workerData: wasm });
      w.once("message", resolve);
      w.once("error", reject);
    });
  const one = timeHand(wasm);
  const [two] = await Promise.all([onWorker(), onWorker()]);
  const jaxjs = await timeJaxJs(false);
  const asStep = await timeJaxJs(true);
  const gf = (i: number, s: number) => ((2 * SHAPES[i][1] * SHAPES[i][2] * SHAPES[i][3]) / s / 1e9).toFixed(1).padStart(6);
  console.log(`${"product".padEnd(24)} ${"M×K×N".padEnd(12)} GFLOP/s: hand 1 thread  hand, 2 at once  jax-js np.dot  as the step (form)`);
  SHAPES.forEach(([name, M, K, N], i) => console.log(`${name.padEnd(24)} ${`${M}×${K}×${N}`.padEnd(12)} ${gf(i, one[i]).padStart(21)} ${gf(i, two[i]).padStart(16)} ${gf(i, jaxjs[i]).padStart(14)} ${gf(i, asStep[i]).padStart(12)} (${STEP_FORMS[i]})`));
  const flops = SHAPES.reduce((s, [, M, K, N]) => s + 2 * M * K * N, 0);
  const sum = (t: number[]) => t.reduce((a, b) => a + b, 0);
  const step = sum(two);
  console.log(`one replica's products: ${(flops / 1e6).toFixed(1)} MFLOP; at the hand kernel's speed with both cores busy: ${(step * 1e3).toFixed(2)} ms (${(flops / step / 1e9).toFixed(1)} GFLOP/s); with jax-js's np.dot: ${(sum(jaxjs) * 1e3).toFixed(2)} ms (${(sum(asStep) * 1e3).toFixed(2)} ms as the step forms them)`);
  console.log(`ceiling: a teacher-mlp step (batch 128, two replicas of 64) with nothing but these products at the hand kernel's speed: ${(128 / step).toFixed(0)} samples/s`);
}
