// The engine's matrix products against a float64 reference, and the install-time kernel patches
// (patches/@jax-js+jax+0.1.25.patch) and start-up relaxed SIMD that make them faster.
//
// Bugs these catch: a tile that drops or repeats a tail column or row (widths 1-17 straddle the
// 4-lane vectors and the 4 x 8 tile), a partial-k accumulation stored to the wrong place or not
// reloaded (K > 64 is split into k tiles, and a fused epilogue then runs once), a transposed view
// read with the wrong stride, a cached instance bound to a stale memory (buffers allocated after
// growth), FMA turned on or off without the checkpoint hash noticing, and a patch that silently
// failed to apply.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ENGINE_PATCHES, initDevice, jit, liveBuffers, missingEnginePatches, np, relaxedSimd, type Arr } from "../src/engine/index.js";
import { withWorkers } from "../src/pipeline.js";
import { tempDir } from "./helpers/tmp.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

before(async () => {
  await initDevice("wasm");
});

/** Deterministic values in [-1, 1) (xorshift32), so failures reproduce. */
function values(n: number, seed: number): Float32Array {
  let s = (seed * 2654435761) >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

type Form = "nn" | "nt" | "tn" | "tt";
const dots = {
  nn: jit((a: Arr, b: Arr) => np.dot(a, b)),
  nt: jit((a: Arr, b: Arr) => np.dot(a, b.transpose())),
  tn: jit((a: Arr, b: Arr) => np.dot(a.transpose(), b)),
  tt: jit((a: Arr, b: Arr) => np.dot(a.transpose(), b.transpose())),
} as unknown as Record<Form, (a: Arr, b: Arr) => Arr>;
// A product with an epilogue fused into its store: relu(a·b + bias), as a dense layer runs.
const dense = jit((a: Arr, b: Arr, bias: Arr) => np.maximum(np.dot(a, b).add(bias), 0)) as unknown as (a: Arr, b: Arr, bias: Arr) => Arr;

/**
 * Checks C (M×N, float32 from the engine) against the float64 product of A (M×K) and B (K×N),
 * both row-major in plain layout, with the float32 bound K·2⁻²³·Σ|a||b| per element (twice the
 * worst case of a sequential float32 sum, which FMA and any k-tiling stay within).
 */
function checkProduct(what: string, A: Float32Array, B: Float32Array, C: Float32Array, M: number, K: number, N: number, epilogue?: Float32Array): void {
  assert.equal(C.length, M * N, `${what}: output length`);
  let worst = 0;
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      let mag = 0;
      for (let k = 0; k < K; k++) {
        const p = A[i * K + k] * B[k * N + j];
        s += p;
        mag += Math.abs(p);
      }
      let bound = K * 2 ** -23 * mag + 1e-30;
      if (epilogue) {
        s = Math.max(s + epilogue[j], 0);
        bound += 2 ** -23 * Math.abs(epilogue[j]);
      }
      const err = Math.abs(C[i * N + j] - s);
      if (!(err <= bound)) assert.fail(`${what}: C[${i},${j}] = ${C[i * N + j]}, float64 ${s} (error ${err.toExponential(2)} > bound ${bound.toExponential(2)})`);
      worst = Math.max(worst, err / bound);
    }
  }
  assert.ok(worst <= 1, what);
}

/** Row-major transpose of an r×c matrix. */
function transpose(x: Float32Array, r: number, c: number): Float32Array {
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = x[i * c + j];
  return out;
}

/** The engine's product in the given form, computed from plain-layout A and B. */
function engineProduct(form: Form, A: Float32Array, B: Float32Array, M: number, K: number, N: number): Float32Array {
  const a = form[0] === "t" ? np.array(transpose(A, M, K)).reshape([K, M]) : np.array(A).reshape([M, K]);
  const b = form[1] === "t" ? np.array(transpose(B, K, N)).reshape([N, K]) : np.array(B).reshape([K, N]);
  return dots[form](a, b).dataSync() as Float32Array;
}

// [M, K, N]: every width 1-17 on each axis against the others' tails, then the teacher MLP's
// products and large, odd and degenerate shapes up to 1000×1000.
const SMALL: [number, number, number][] = [];
for (let w = 1; w <= 17; w++) SMALL.push([5, 7, w], [w, 9, 13], [4, w, 8], [w, w, w]);
const LARGE: [number, number, number][] = [
  [1, 1, 1],
  [64, 784, 512],
  [64, 256, 10],
  [64, 10, 256],
  [10, 64, 256],
  [129, 67, 131],
  [128, 128, 128],
  [1000, 3, 1000],
  [1000, 1, 1000],
  [1, 1000, 1],
  [1000, 1000, 1],
  [1, 1000, 1000],
  [333, 1000, 7],
  [17, 1000, 17],
];

test("matmul: every width 1-17 on each axis, plain and through transposed views, matches float64", () => {
  const before = liveBuffers();
  for (const [M, K, N] of SMALL) {
    const A = values(M * K, M * 1000 + K);
    const B = values(K * N, N * 1000 + K + 7);
    for (const form of ["nn", "nt", "tn", "tt"] as Form[]) checkProduct(`${form} ${M}×${K}×${N}`, A, B, engineProduct(form, A, B, M, K, N), M, K, N);
  }
  assert.equal(liveBuffers(), before, "no device buffers left behind");
});

test("matmul: large, odd and degenerate shapes up to 1000×1000 match float64, in every form", () => {
  for (const [M, K, N] of LARGE) {
    const A = values(M * K, M + 3 * K);
    const B = values(K * N, N + 5 * K);
    const forms: Form[] = M * N * K > 5e6 ? ["nn", "nt", "tn"] : ["nn", "nt", "tn", "tt"];
    for (const form of forms) checkProduct(`${form} ${M}×${K}×${N}`, A, B, engineProduct(form, A, B, M, K, N), M, K, N);
  }
});

test("matmul with a fused epilogue (relu(a·b + bias)): k split into tiles of 64 and the epilogue applied once", () => {
  for (const [M, K, N] of [[8, 200, 24], [13, 130, 9], [64, 784, 128], [4, 64, 8], [4, 65, 8], [7, 3, 17]] as [number, number, number][]) {
    const A = values(M * K, K);
    const B = values(K * N, N);
    const bias = values(N, 99);
    const C = dense(np.array(A).reshape([M, K]), np.array(B).reshape([K, N]), np.array(bias)).dataSync() as Float32Array;
    checkProduct(`dense ${M}×${K}×${N}`, A, B, C, M, K, N, bias);
  }
});

test("matmul: buffers allocated after the memory grew are read right by kernels instantiated before", () => {
  const [M, K, N] = [12, 40, 20];
  const A = values(M * K, 1);
  const B = values(K * N, 2);
  const first = engineProduct("nn", A, B, M, K, N);
  // Grow the engine's memory by ~64 MB while the first operands' kernel stays cached.
  const big = np.zeros([16 * 1024 * 1024]).add(1);
  const A2 = values(M * K, 3);
  const again = engineProduct("nn", A2, B, M, K, N);
  big.dispose();
  checkProduct("before growth", A, B, first, M, K, N);
  checkProduct("after growth", A2, B, again, M, K, N);
});

test("matmul: the same product twice gives the same bits", () => {
  const [M, K, N] = [64, 784, 512];
  const A = values(M * K, 11);
  const B = values(K * N, 12);
  for (const form of ["nn", "nt", "tn"] as Form[]) {
    const x = engineProduct(form, A, B, M, K, N);
    const y = engineProduct(form, A, B, M, K, N);
    assert.deepEqual(Buffer.from(x.buffer), Buffer.from(y.buffer), form);
  }
});

// A child process per setting: the V8 flag is process-wide and set before jax-js loads.
const CHILD = `
import { initDevice, jit, np, relaxedSimd } from ${JSON.stringify(join(ROOT, "src/engine/index.ts"))};
import { withWorkers } from ${JSON.stringify(join(ROOT, "src/pipeline.ts"))};
import { createHash } from "node:crypto";
await initDevice("wasm");
const n = 96, k = 500;
const a = np.array(Float32Array.from({ length: n * k }, (_, i) => Math.sin(i) * 0.9)).reshape([n, k]);
const b = np.array(Float32Array.from({ length: k * n }, (_, i) => Math.cos(3 * i) * 0.7)).reshape([k, n]);
const c = jit((x, y) => np.dot(x, y))(a, b).dataSync();
const cfg = withWorkers({ train: {} }, 8, { workers: 1 }, "t");
console.log(JSON.stringify({ relaxedSimd, fma: cfg.fma ?? false, hash: createHash("sha256").update(Buffer.from(c.buffer)).digest("hex"), c: Array.from(c) }));
`;
function child(relaxed: "0" | "1"): { relaxedSimd: boolean; fma: boolean; hash: string; c: number[] } {
  const dir = tempDir("matmul-child");
  try {
    const file = join(dir, "child.mts");
    writeFileSync(file, CHILD);
    const r = spawnSync(process.execPath, ["--import", "tsx", file], { cwd: ROOT, env: { ...process.env, DISTILL_RELAXED_SIMD: relaxed }, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("relaxed SIMD: on by default where V8 has it, deterministic per setting, within float32 error of the plain path, and in the checkpoint hash", () => {
  const plain = [child("0"), child("0")];
  const fused = [child("1"), child("1")];
  assert.equal(plain[0].relaxedSimd, false, "DISTILL_RELAXED_SIMD=0 turns relaxed SIMD off");
  assert.equal(plain[0].fma, false, "no fma key in the checkpoint config without it");
  assert.equal(plain[0].hash, plain[1].hash, "plain path: same bits in two processes");
  assert.equal(fused[0].hash, fused[1].hash, "fused path: same bits in two processes");
  // Node 20's V8 has relaxed SIMD behind a flag; distill sets it at start-up.
  assert.equal(fused[0].relaxedSimd, true, "relaxed SIMD is on by default");
  assert.equal(fused[0].fma, true, "fma: true goes into the checkpoint config");
  assert.notEqual(fused[0].hash, plain[0].hash, "FMA rounds differently: the products are not bit-identical");
  // Both against each other: each is within K·2⁻²⁴·Σ|ab| of the exact value.
  let worst = 0;
  for (let i = 0; i < plain[0].c.length; i++) worst = Math.max(worst, Math.abs(plain[0].c[i] - fused[0].c[i]));
  assert.ok(worst < 500 * 2 ** -22 * 500, `plain and fused differ by ${worst}`);
  assert.ok(worst > 0);
});

test("relaxed SIMD: this process's setting reaches the checkpoint config (wasm only)", () => {
  const c = withWorkers({ train: {} }, 8, { workers: 1, device: "wasm" }, "t") as { fma?: boolean };
  assert.equal(c.fma === true, relaxedSimd);
  const g = withWorkers({ train: {} }, 8, { workers: 1, device: "webgpu" }, "t") as { fma?: boolean };
  assert.equal(Object.hasOwn(g, "fma"), false, "the WebGPU device has no FMA setting");
});

/** The installed jax-js folder, the patch's text, the file it patches, and that file as installed and without the patch's added lines. */
function patchedBackend() {
  const pkgDir = dirname(dirname(createRequire(import.meta.url).resolve("@jax-js/jax")));
  const patch = readFileSync(join(ROOT, "patches/@jax-js+jax+0.1.25.patch"), "utf8");
  const file = patch.match(/^\+\+\+ b\/node_modules\/@jax-js\/jax\/(\S+)$/m)![1];
  const installed = readFileSync(join(pkgDir, file), "utf8");
  const added = patch.split("\n").filter((l) => l.startsWith("+") && !l.startsWith("+++")).map((l) => l.slice(1));
  const pristine = installed.split("\n").filter((l) => !added.includes(l)).join("\n");
  return { pkgDir, patch, file, installed, pristine };
}

test("engine patches: every marker is in the installed backend, none in the pristine 0.1.25 file", () => {
  const { patch, installed, pristine } = patchedBackend();
  assert.deepEqual(missingEnginePatches(installed), []);
  // Without the patch's added lines every marker must be gone, so the start-up check would
  // refuse an unpatched engine.
  assert.deepEqual(missingEnginePatches(pristine), [...ENGINE_PATCHES]);
  for (const m of ENGINE_PATCHES) assert.ok(patch.includes(m), `the patch file carries "${m}"`);
});

test("engine patches: install fails with a message naming the package when the patch does not apply", () => {
  const { pkgDir, file, pristine } = patchedBackend();
  const dir = tempDir("patch-fail");
  try {
    // A project like ours whose jax-js is another version with different code at the patched lines.
    const jax = join(dir, "node_modules/@jax-js/jax");
    mkdirSync(join(jax, "dist"), { recursive: true });
    cpSync(join(pkgDir, "package.json"), join(jax, "package.json"));
    const pkg = JSON.parse(readFileSync(join(jax, "package.json"), "utf8"));
    writeFileSync(join(jax, "package.json"), JSON.stringify({ ...pkg, version: "0.1.26" }));
    writeFileSync(join(jax, file), pristine.replace("const TILED_SIMD_MICRO_ROWS = 4;", "const TILED_SIMD_MICRO_ROWS = 8;"));
    cpSync(join(ROOT, "patches"), join(dir, "patches"), { recursive: true });
    writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "p", version: "1.0.0", dependencies: { "@jax-js/jax": "0.1.26" } }));
    const bin = join(dirname(createRequire(import.meta.url).resolve("patch-package/package.json")), "index.js");
    const r = spawnSync(process.execPath, [bin, "--error-on-fail"], { cwd: dir, encoding: "utf8", env: { ...process.env, CI: "" } });
    assert.notEqual(r.status, 0, "install must fail");
    const out = r.stdout + r.stderr;
    assert.match(out, /@jax-js\/jax/);
    assert.match(out, /0\.1\.25/);
    assert.match(out, /0\.1\.26/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
