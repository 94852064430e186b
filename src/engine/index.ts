// The one place that starts jax-js. Everything else imports `np`, `jit`, ... from here, so the
// Node 20 prelude has always run before jax-js touches iterators or Float16Array.
import "./relaxed-simd.js";
import { createdMemories, stopRecordingMemories } from "./prelude.js";
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { createRequire } from "node:module";
import * as jax from "@jax-js/jax";
import { UserError } from "../util/errors.js";

export { numpy as np, nn, random, lax, tree, jit, grad, valueAndGrad, vmap } from "@jax-js/jax";
import { numpy as np, random } from "@jax-js/jax";

stopRecordingMemories();
// jax-js's Wasm backend creates exactly one memory, when its module loads.
const wasmMemory: WebAssembly.Memory | null = createdMemories.length === 1 ? createdMemories[0] : null;
export type Arr = jax.Array;
export type Device = "wasm" | "webgpu";

let current: Device | null = null;


/** Starts the requested device once; `webgpu` only when asked, and an error when absent. */
export async function initDevice(device: Device = "wasm"): Promise<Device> {
  if (current === device) return device;
  if (current !== null) throw new Error(`engine already initialised on ${current}; cannot switch to ${device}`);
  if (device === "webgpu") await installWebGPU();
  else if (device !== "wasm") throw new UserError(`unknown device "${device}" (expected wasm or webgpu)`);
  else checkEnginePatches();
  const got = await jax.init(device);
  if (!got.includes(device)) {
    throw new UserError(
      device === "webgpu"
        ? "--device webgpu: no WebGPU adapter found: Dawn (the optional `webgpu` package) needs a GPU with a Vulkan driver (on Debian: libvulkan1 and the GPU's driver); or use --device wasm"
        : `could not start the ${device} device`,
    );
  }
  jax.defaultDevice(device);
  current = device;
  await installBufferCounter(device);
  return device;
}

export function currentDevice(): Device {
  if (current === null) throw new Error("engine not initialised: call initDevice() first");
  return current;
}

// Dawn for Node ships in the optional npm `webgpu` package; load it only when asked.
async function installWebGPU(): Promise<void> {
  const g = globalThis as Record<string, unknown>;
  if ((g.navigator as { gpu?: unknown } | undefined)?.gpu) return;
  let mod: { create: (opts: string[]) => unknown; globals: Record<string, unknown> };
  try {
    mod = (await import("webgpu" as string)) as typeof mod;
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "ERR_MODULE_NOT_FOUND") throw new UserError("--device webgpu: the optional `webgpu` package is not installed (npm install webgpu)");
    throw new UserError(`--device webgpu: the \`webgpu\` package failed to load: ${(e as Error).message.split("\n")[0]}`);
  }
  Object.assign(globalThis, mod.globals);
  Object.defineProperty(globalThis, "navigator", {
    value: { gpu: mod.create([]), userAgent: "Node.js" },
    configurable: true,
    writable: true,
  });
}

// jax-js keeps its buffer table private; the backend object is reachable only through its
// internal chunk. We mirror malloc/incRef/decRef so tests can assert that a step leaks nothing.
let live = 0;
const refs = new Map<number, number>();
// DISTILL_DEBUG_BUFFERS=1 records where each live buffer was allocated (see liveBufferSites).
const sites = process.env.DISTILL_DEBUG_BUFFERS ? new Map<number, string>() : null;
type BackendLike = {
  malloc(size: number, init?: Uint8Array): number;
  incRef(slot: number): void;
  decRef(slot: number): void;
};

function internalChunk(): string {
  const require = createRequire(import.meta.url);
  const dir = dirname(require.resolve("@jax-js/jax"));
  const chunk = readdirSync(dir).find((f) => /^backend-.*\.js$/.test(f));
  if (!chunk) throw new Error("jax-js internal backend chunk not found");
  return join(dir, chunk);
}

/**
 * The changes patches/@jax-js+jax+0.1.25.patch makes to the engine's Wasm backend (npm install
 * applies it through patch-package): each leaves a marker comment in the file. An engine
 * installed without them (`--ignore-scripts`, another version) would run slower or, for a
 * future version, differently, so distill refuses to start rather than run it silently.
 */
export const ENGINE_PATCHES = ["distill patch (tile)", "distill patch (instance)"] as const;

/** The markers of ENGINE_PATCHES that the backend's source `text` lacks. */
export function missingEnginePatches(text: string): string[] {
  return ENGINE_PATCHES.filter((m) => !text.includes(m));
}

function checkEnginePatches(): void {
  const file = internalChunk();
  const missing = missingEnginePatches(readFileSync(file, "utf8"));
  // bench/engine-ab.sh times the pristine engine against the patched one.
  if (missing.length > 0 && process.env.DISTILL_UNPATCHED_ENGINE_OK === "1") return;
  if (missing.length > 0) {
    throw new UserError(
      `@jax-js/jax is installed without distill's kernel patches (${missing.map((m) => m.replace("distill patch ", "")).join(", ")} missing in ${file}): run \`npx patch-package\` in distill's folder (npm install runs it), or reinstall @jax-js/jax 0.1.25`,
    );
  }
}

async function loadInternalGetBackend(): Promise<(d: string) => BackendLike> {
  const chunk = internalChunk();
  const mod = (await import(pathToFileURL(chunk).href)) as Record<string, unknown>;
  // The chunk exports getBackend under a minified name; find it by behaviour.
  for (const v of Object.values(mod)) {
    if (typeof v === "function" && v.name === "getBackend") return v as (d: string) => BackendLike;
  }
  throw new Error("jax-js getBackend not found in internal chunk");
}
async function installBufferCounter(device: Device): Promise<void> {
  const b = (await loadInternalGetBackend())(device);
  {
    const malloc = b.malloc.bind(b);
    const incRef = b.incRef.bind(b);
    const decRef = b.decRef.bind(b);
    b.malloc = (size, init) => {
      const slot = malloc(size, init);
      refs.set(slot, 1);
      sites?.set(slot, new Error().stack?.split("\n").slice(2, 14).join("\n") ?? "");
      live++;
      return slot;
    };
    b.incRef = (slot) => {
      incRef(slot);
      refs.set(slot, (refs.get(slot) ?? 0) + 1);
    };
    b.decRef = (slot) => {
      decRef(slot);
      const r0 = refs.get(slot);
      if (r0 === undefined) return; // allocated before the counter was installed
      const r = r0 - 1;
      if (r <= 0) {
        refs.delete(slot);
        sites?.delete(slot);
        live--;
      } else refs.set(slot, r);
    };
  }
}

/** Number of device buffers allocated since the engine started and not yet freed. */
export function liveBuffers(): number {
  return live;
}

/** Allocation stacks of the live buffers, when DISTILL_DEBUG_BUFFERS is set. */
export function liveBufferSites(): string[] {
  return sites ? [...sites.values()] : [];
}

/**
 * `x.dataSync()` written into `dst` instead of a new array (consumes `x`, as dataSync does).
 *
 * jax-js's dataSync copies a Wasm buffer out with `Uint8Array.prototype.slice` on a view of its
 * memory, so every read allocates. A data-parallel step reads all its gradients each step
 * (2 MB for the teacher MLP), and that garbage costs more than the copy: V8 runs a full
 * collection every few steps in each worker, and the other worker waits for it at the next
 * barrier (adding 2 MB of garbage per step slowed the teacher step by 1.3 ms of 9). jax-js has
 * no read-into API, so for the duration of this call the slice of its memory that dataSync
 * makes copies into `dst` instead; any other slice, or any other dataSync path, is untouched,
 * and when the read did not go through the intercepted slice, its result is copied into `dst`.
 * Returns whether the read went straight into `dst` (small constant arrays never do).
 */
export function readInto(x: Arr, dst: Float32Array): boolean {
  const proto = Uint8Array.prototype;
  const slice = proto.slice;
  const target = new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength);
  proto.slice = function (this: Uint8Array, start?: number, end?: number) {
    const from = start ?? 0;
    const to = end ?? this.length;
    if (wasmMemory === null || this.buffer !== wasmMemory.buffer || to - from !== target.length) return slice.call(this, start, end);
    target.set(this.subarray(from, to));
    return target as Uint8Array<ArrayBuffer>; // shared, when dst is; only dataSync sees it
  } as typeof slice;
  let out: Float32Array;
  try {
    out = x.dataSync() as Float32Array;
  } finally {
    proto.slice = slice;
  }
  if (out.buffer === dst.buffer && out.byteOffset === dst.byteOffset) return true;
  if (out.length !== dst.length) throw new Error(`readInto: array has ${out.length} elements, destination ${dst.length}`);
  dst.set(out);
  return false;
}

/** Seeded PRNG key. */
export function key(seed: number): Arr {
  return random.key(seed);
}

/** Splits a key into `n` keys (consumes `k`). */
export function splitKey(k: Arr, n = 2): Arr[] {
  const ks = random.split(k, n);
  return np.unstack(ks);
}

export { jax };
export { relaxedSimd } from "./relaxed-simd.js";
