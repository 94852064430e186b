// Deployment numbers for one model: bytes on disk per exported format, and inference latency
// (median ms per example at batch 1 and 64) in onnxruntime-node on the exported ONNX and in
// distill's own jit forward. `distill run` records them per run when a recipe asks for
// `export: [...]`; `distill bench --workload deploy` prints them for a teacher against a student.
import { lstatSync, readdirSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { jit, np, tree, type Arr } from "../engine/index.js";
import { encodeSafetensors } from "../checkpoint/safetensors.js";
import type { Params } from "../nn/models.js";
import type { ExportFormat } from "../recipe/recipe.js";
import { Rng } from "../util/rng.js";
import { writeFileAtomic } from "../util/fs.js";
import type { Exportable } from "./exportable.js";
import { exportOnnx } from "./onnx.js";
import { textFeeds, wholeSequenceFeeds } from "./onnx-feeds.js";
import { writeHfFolder } from "./hf.js";
import { exportGguf } from "./gguf.js";
import { modelIO, pixelLayout, toLayout, writeWebFolder, type WebFolderOptions } from "./web.js";

export type { ExportFormat } from "../recipe/recipe.js";

export interface Latency {
  /** Median milliseconds per example. */
  batch1: number;
  batch64: number;
}

export interface DeployRecord {
  /** Bytes on disk: safetensors (parameters only), onnx, hf (folder), gguf-f32, gguf-f16, web (folder). */
  bytes: Record<string, number>;
  latency: { onnxruntime?: Latency; distill: Latency };
  /** Formats asked for that could not be written, with why (an exporter not available in this build). */
  skipped?: Record<string, string>;
}

export { exportableFrom } from "./exportable.js";

/** Total bytes of a file, or of every file under a folder. */
export function bytesOnDisk(path: string): number {
  const st = lstatSync(path);
  if (!st.isDirectory()) return st.size;
  return readdirSync(path).reduce((n, name) => n + bytesOnDisk(join(path, name)), 0);
}

function safetensorsBytes(m: Exportable): Uint8Array {
  const t: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> = {};
  for (const [name, p] of Object.entries(m.params)) t[name] = { dtype: "F32", shape: p.shape, data: p.data };
  return encodeSafetensors(t);
}

/** A stub exporter of the base commit says "not implemented yet": that format is skipped, not an error. */
function notImplemented(e: unknown): string | null {
  return e instanceof Error && /not implemented yet/.test(e.message) ? e.message : null;
}

/** Timing settings: warm-up calls, then calls until both minimums are reached (or the cap). */
export interface TimingOptions {
  warmup?: number;
  minReps?: number;
  minMs?: number;
  maxReps?: number;
  /** Stop after this long once 3 calls are timed. */
  maxMs?: number;
}

const median = (xs: number[]) => {
  const s = xs.slice().sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
};

/**
 * Median ms per call of `f` (awaited), after warm-up (the first call compiles): at least
 * `minReps` calls and `minMs`, but a slow model (a language model's batch of 64 windows can take
 * a second a call) stops after `maxMs` once it has 3.
 */
async function timeCalls(f: () => Promise<unknown>, o: TimingOptions): Promise<number> {
  for (let i = 0; i < (o.warmup ?? 2); i++) await f();
  const times: number[] = [];
  const start = performance.now();
  const more = () => {
    const n = times.length;
    const elapsed = performance.now() - start;
    if (n >= (o.maxReps ?? 200) || (n >= 3 && elapsed > (o.maxMs ?? 2000))) return false;
    return n < (o.minReps ?? 10) || elapsed < (o.minMs ?? 150);
  };
  while (more()) {
    const t0 = performance.now();
    await f();
    times.push(performance.now() - t0);
  }
  return median(times);
}

/**
 * Random inputs for one batch: pixels in [0, 1] (classifier), token ids over a whole context
 * (LM), or whole rows of token ids as floats, no padding (text classifier: the longest input).
 */
function sampleInputs(m: Exportable, batch: number): { pixels?: Float32Array; tokens?: Int32Array; dim: number } {
  const rng = new Rng(7);
  if (m.family === "text") {
    const { length, vocab, padId } = m.input.text;
    return { pixels: Float32Array.from({ length: batch * length }, () => (padId + 1 + rng.int(vocab - 1)) % vocab), dim: length };
  }
  if (m.family === "classifier") {
    const dim = m.input.height * m.input.width * m.input.channels;
    return { pixels: Float32Array.from({ length: batch * dim }, () => rng.int(256) / 255), dim };
  }
  const C = m.model.spec.context;
  return { tokens: Int32Array.from({ length: batch * C }, () => rng.int(m.model.vocab)), dim: C };
}

/** onnxruntime-node on one thread (as distill's forward runs), median ms per example at batch 1 and 64. */
export async function onnxLatency(m: Exportable, onnx: Uint8Array, timing: TimingOptions = {}): Promise<Latency> {
  const session = await ort.InferenceSession.create(onnx, { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: "sequential" });
  try {
    const io = await modelIO(onnx);
    const per = async (batch: number) => {
      const s = sampleInputs(m, batch);
      const feeds: Record<string, ort.Tensor> = {};
      if (m.family === "text") {
        Object.assign(feeds, textFeeds(io.inputs, s.pixels!, batch, s.dim, m.input.text.padId));
      } else if (m.family === "classifier") {
        const input = io.inputs[0];
        const layout = pixelLayout(input.shape, m.input, m.source);
        const { height: H, width: W, channels: C } = m.input;
        const shape = layout === "flat" ? [batch, s.dim] : layout === "nchw" ? [batch, C, H, W] : [batch, H, W, C];
        feeds[input.name] = new ort.Tensor("float32", toLayout(s.pixels!, m.input, layout), shape);
      } else {
        Object.assign(feeds, wholeSequenceFeeds(io.inputs, s.tokens!, batch, s.dim));
      }
      return (await timeCalls(() => session.run(feeds), timing)) / batch;
    };
    return { batch1: await per(1), batch64: await per(64) };
  } finally {
    await session.release();
  }
}

/** distill's jit forward (as eval/predict.ts runs it), logits read back to the host, ms per example. */
export async function distillLatency(m: Exportable, timing: TimingOptions = {}): Promise<Latency> {
  const params: Params = {};
  for (const [name, p] of Object.entries(m.params)) params[name] = np.array(p.data).reshape(p.shape);
  const f =
    m.family !== "lm"
      ? (jit((p: Params, x: Arr) => m.model.apply(p, x, { train: false })) as (p: Params, x: Arr) => Arr)
      : (jit(((p: Params, t: Arr) => m.model.apply(p, t)) as never) as unknown as (p: Params, x: Arr) => Arr);
  try {
    const per = async (batch: number) => {
      const s = sampleInputs(m, batch);
      const run = async () => {
        const x = s.pixels ? np.array(s.pixels).reshape([batch, s.dim]) : np.array(s.tokens!, { dtype: np.int32 }).reshape([batch, s.dim]);
        return f(tree.ref(params), x).data();
      };
      return (await timeCalls(run, timing)) / batch;
    };
    return { batch1: await per(1), batch64: await per(64) };
  } finally {
    tree.dispose(params);
  }
}

/**
 * Writes the formats asked for into `dir` (model.safetensors always, as the baseline size;
 * onnx → model.onnx, hf → hf/, gguf → model-f32.gguf and model-f16.gguf for LMs, web → web/),
 * each file whole (atomic writes, folders renamed into place), and measures latency.
 * `info` reports skipped formats.
 */
export async function exportAndMeasure(
  m: Exportable,
  formats: readonly ExportFormat[],
  dir: string,
  info: (line: string) => void = () => {},
  timing: TimingOptions = {},
  web: Omit<WebFolderOptions, "onnx"> = {},
): Promise<DeployRecord> {
  const bytes: Record<string, number> = {};
  const skipped: Record<string, string> = {};
  const put = (name: string, data: Uint8Array) => {
    writeFileAtomic(join(dir, name), data);
    return data.length;
  };
  bytes.safetensors = put("model.safetensors", safetensorsBytes(m));
  let onnx: Uint8Array | undefined;
  const want = new Set(formats);
  // Latency in onnxruntime needs the ONNX file whatever was asked for; written only when asked.
  try {
    onnx = exportOnnx(m);
    if (want.has("onnx")) bytes.onnx = put("model.onnx", onnx);
  } catch (e) {
    const why = notImplemented(e);
    if (why === null) throw e;
    if (want.has("onnx")) skipped.onnx = why;
  }
  const attempt = async (format: ExportFormat, f: () => Promise<void> | void) => {
    if (!want.has(format)) return;
    try {
      await f();
    } catch (e) {
      const why = notImplemented(e);
      if (why === null) throw e;
      skipped[format] = why;
    }
  };
  await attempt("hf", async () => {
    await writeHfFolder(m, join(dir, "hf"), { replace: true });
    bytes.hf = bytesOnDisk(join(dir, "hf"));
  });
  await attempt("gguf", () => {
    if (m.family !== "lm") return void (skipped.gguf = "GGUF is written for language models only");
    for (const dtype of ["f32", "f16"] as const) bytes[`gguf-${dtype}`] = put(`model-${dtype}.gguf`, exportGguf(m, dtype));
  });
  await attempt("web", async () => {
    if (!onnx) return void (skipped.web = "the browser folder needs the ONNX exporter");
    await writeWebFolder(m, join(dir, "web"), { ...web, onnx });
    bytes.web = bytesOnDisk(join(dir, "web"));
  });
  for (const [f, why] of Object.entries(skipped)) info(`export ${f} skipped: ${why}`);
  const latency: DeployRecord["latency"] = { distill: await distillLatency(m, timing) };
  if (onnx) latency.onnxruntime = await onnxLatency(m, onnx, timing);
  return Object.keys(skipped).length ? { bytes, latency, skipped } : { bytes, latency };
}

/** Bytes and latency without writing anything the caller keeps (bench): ONNX and safetensors sizes in memory. */
export async function measureModel(m: Exportable, timing: TimingOptions = {}): Promise<DeployRecord> {
  const bytes: Record<string, number> = { safetensors: safetensorsBytes(m).length };
  let onnx: Uint8Array | undefined;
  const skipped: Record<string, string> = {};
  try {
    onnx = exportOnnx(m);
    bytes.onnx = onnx.length;
  } catch (e) {
    const why = notImplemented(e);
    if (why === null) throw e;
    skipped.onnx = why;
  }
  const latency: DeployRecord["latency"] = { distill: await distillLatency(m, timing) };
  if (onnx) latency.onnxruntime = await onnxLatency(m, onnx, timing);
  return Object.keys(skipped).length ? { bytes, latency, skipped } : { bytes, latency };
}
