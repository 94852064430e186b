// `distill bench --workload cache`: the soft-label cache's size and speed. Bytes per token at
// k = 16, 64, 128 for a real teacher (a small byte-level Llama trained here, V = 256) and for a
// synthetic Zipf-like large vocabulary (labelled as such), the KL divergence between the exact
// and the stored (k+1)-outcome distribution, write and read tokens per second through the real
// buildCache / openCache, and the reader's peak RSS at 1× and 10× cache sizes (child processes).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { llama } from "../nn/llama.js";
import { train } from "../train/trainer.js";
import { textSource } from "../data/text-source.js";
import { lmLogits } from "../eval/lm-metrics.js";
import { byteTokenizer } from "../text/tokenizer.js";
import { topKOfLogits } from "../teachers/teacher.js";
import { Rng } from "../util/rng.js";
import { buildCache, openCache } from "../cache/index.js";
import { decodeChunk, encodeChunk } from "../cache/chunks.js";
import { chunkCount, type CachePrecision, type TopKLabels } from "../cache/types.js";
import type { SoftLabels } from "../teachers/types.js";
import { klPerToken, zipfLogits } from "./cache-measure.js";
import { DEBIAN_FORTUNES, readCorpus } from "../text/corpus.js";

export { klPerToken, zipfLogits };

/**
 * English text for the byte-level teacher: the first 64 KiB of Debian's fortunes (a fixed text,
 * so the sizes printed do not move when this repository's files change), else the package's
 * README, else a stand-in.
 */
function englishText(): string {
  if (existsSync(DEBIAN_FORTUNES)) return readCorpus(DEBIAN_FORTUNES).text.slice(0, 65536);
  const here = dirname(fileURLToPath(import.meta.url));
  for (const p of [join(here, "../../README.md"), join(here, "../../../README.md")]) if (existsSync(p)) return readFileSync(p, "utf8");
  return "Knowledge distillation trains a small student to match a large teacher's distribution over the next token. ".repeat(200);
}

/**
 * A real teacher's next-token logits over V = 256: a 2-layer byte-level Llama trained for `steps`
 * steps on English text, evaluated on `windows` windows of `context` bytes. Needs the engine.
 */
export async function trainedByteLMLogits(o: { steps: number; windows: number; context: number }): Promise<{ logits: Float32Array; rows: number; vocab: number }> {
  const ids = byteTokenizer().encode(englishText());
  const model = llama({ type: "llama", layers: 2, width: 32, heads: 2, context: o.context }, 256);
  const r = await train({
    name: "cache-bench-teacher",
    model,
    spec: { epochs: 1, batchSize: 8, optimizer: { name: "adamw", lr: 1e-2 }, loss: { name: "ce" } },
    data: textSource({ ids, context: o.context, batchSize: 8, steps: o.steps, seed: 0 }),
    seed: 0,
    logEvery: 1 << 30,
  });
  const x = new Int32Array(o.windows * o.context);
  const stride = Math.max(1, Math.floor((ids.length - o.context) / o.windows));
  for (let w = 0; w < o.windows; w++) x.set(ids.subarray(w * stride, w * stride + o.context), w * o.context);
  const logits = await lmLogits(model, r.params, x, o.context);
  return { logits, rows: o.windows * o.context, vocab: 256 };
}

/** A score function over precomputed labels: window w of the ids names rows w·context... */
function replayScore(all: SoftLabels & { kind: "topk" }, context: number) {
  return async (x: Int32Array, shape: [number, number]): Promise<SoftLabels> => {
    // x's first id of each window is the window's index (see storeOnce); rows follow it.
    const rows = shape[0] * shape[1];
    const k = all.k;
    const ids = new Int32Array(rows * k);
    const logprobs = new Float32Array(rows * k);
    const logTail = new Float32Array(rows);
    for (let b = 0; b < shape[0]; b++) {
      const w = x[b * context];
      ids.set(all.ids.subarray(w * context * k, (w + 1) * context * k), b * context * k);
      logprobs.set(all.logprobs.subarray(w * context * k, (w + 1) * context * k), b * context * k);
      logTail.set(all.logTail!.subarray(w * context, (w + 1) * context), b * context);
    }
    return { kind: "topk", rows, classes: all.classes, k, ids, logprobs, logTail };
  };
}

export interface StoreMeasurement {
  k: number;
  vocab: number;
  precision: CachePrecision;
  positions: number;
  bytesPerToken: number;
  kl: number;
  writeTokensPerS: number;
  readTokensPerS: number;
}

/**
 * Stores `labels` (rows = windows × context, already cut to k) through buildCache, reads every
 * window back through openCache in a shuffled order, and measures size, KL and speed. The
 * teacher is a replay of the labels, so the write time is the store's alone.
 */
export async function storeOnce(labels: TopKLabels, context: number, precision: CachePrecision): Promise<StoreMeasurement & { stored: TopKLabels }> {
  const windows = labels.rows / context;
  const dir = mkdtempSync(join(tmpdir(), "distill-cache-bench-"));
  try {
    const train = new Int32Array(windows * context);
    for (let w = 0; w < windows; w++) train[w * context] = w; // the replay teacher's key
    const t0 = performance.now();
    await buildCache({
      dir,
      identity: { teacher: "bench", tokenizer: "bench", corpus: "bench" },
      k: labels.k,
      vocab: labels.classes,
      context,
      precision,
      train,
      heldout: new Int32Array(0),
      score: replayScore(labels, context),
      batchWindows: 16,
    });
    const writeS = (performance.now() - t0) / 1000;
    const bytes = readdirSync(dir)
      .filter((f) => f.endsWith(".parquet"))
      .reduce((a, f) => a + statSync(join(dir, f)).size, 0);
    const reader = openCache(dir);
    const order = new Rng(7).permutation(windows);
    // Students read chunk by chunk (aligned windows shuffled within a chunk): so does the bench.
    const chunks = chunkCount(windows, reader.manifest.windowsPerChunk);
    const byChunk = Int32Array.from(order).sort((a, b) => (a % chunks) - (b % chunks));
    const t1 = performance.now();
    const got = await reader.softLabels("train", byChunk);
    const readS = (performance.now() - t1) / 1000;
    await reader.close();
    // Back into window order for the comparison.
    const stored: TopKLabels = { ...got, ids: new Int32Array(got.ids.length), logprobs: new Float32Array(got.logprobs.length), logTail: new Float32Array(got.rows) };
    const k = labels.k;
    byChunk.forEach((w, i) => {
      stored.ids.set(got.ids.subarray(i * context * k, (i + 1) * context * k), w * context * k);
      stored.logprobs.set(got.logprobs.subarray(i * context * k, (i + 1) * context * k), w * context * k);
      stored.logTail.set(got.logTail.subarray(i * context, (i + 1) * context), w * context);
    });
    return {
      k,
      vocab: labels.classes,
      precision,
      positions: labels.rows,
      bytesPerToken: bytes / labels.rows,
      kl: klPerToken(labels, stored),
      writeTokensPerS: labels.rows / writeS,
      readTokensPerS: labels.rows / readS,
      stored,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface CodecMeasurement {
  codec: string;
  bytesPerToken: number;
  encodeTokensPerS: number;
  decodeTokensPerS: number;
}

/**
 * Parquet codecs on one chunk of `labels` (the first 64 windows): bytes per token, encode and
 * decode tokens/s (Parquet and our row codec together), best of three runs each.
 */
export async function codecTable(labels: TopKLabels, context: number): Promise<CodecMeasurement[]> {
  const windows = Math.min(64, labels.rows / context);
  const rows = windows * context;
  const k = labels.k;
  const part: TopKLabels = { ...labels, rows, ids: labels.ids.subarray(0, rows * k), logprobs: labels.logprobs.subarray(0, rows * k), logTail: labels.logTail.subarray(0, rows) };
  const m = { split: "train" as const, chunk: 0, firstWindow: 0, stride: 1, windows, context, k, vocab: labels.classes, precision: "quantized" as const };
  const out: CodecMeasurement[] = [];
  const variants: [string, Parameters<typeof encodeChunk>[2]][] = [
    ["BROTLI q4", { codec: "BROTLI", quality: 4 }],
    ["BROTLI q5", { codec: "BROTLI", quality: 5 }],
    ["BROTLI q6", { codec: "BROTLI", quality: 6 }],
    ["BROTLI q9", { codec: "BROTLI", quality: 9 }],
    ["GZIP", { codec: "GZIP" }],
    ["SNAPPY", { codec: "SNAPPY" }],
    ["UNCOMPRESSED", { codec: "UNCOMPRESSED" }],
  ];
  const dec = { ids: new Int32Array(rows * k), logprobs: new Float32Array(rows * k), logTail: new Float32Array(rows) };
  for (const [name, opts] of variants) {
    let bytes: Uint8Array = new Uint8Array(0);
    let enc = Infinity;
    let de = Infinity;
    for (let rep = 0; rep < 3; rep++) {
      let t = performance.now();
      bytes = encodeChunk(m, part, opts);
      enc = Math.min(enc, performance.now() - t);
      t = performance.now();
      await decodeChunk(bytes, m, dec, 0, name);
      de = Math.min(de, performance.now() - t);
    }
    out.push({ codec: name, bytesPerToken: bytes.length / rows, encodeTokensPerS: rows / (enc / 1000), decodeTokensPerS: rows / (de / 1000) });
  }
  return out;
}

/** One line of the bench's table. */
export function formatStore(label: string, m: StoreMeasurement): string {
  return `cache ${label.padEnd(30)} k=${String(m.k).padStart(3)} ${m.precision.padEnd(9)} ${m.bytesPerToken.toFixed(1).padStart(7)} bytes/token  KL ${m.kl.toExponential(2)} nats/token  write ${Math.round(m.writeTokensPerS).toLocaleString("en-US").padStart(8)} tokens/s  read ${Math.round(m.readTokensPerS).toLocaleString("en-US").padStart(9)} tokens/s  (${m.positions.toLocaleString("en-US")} positions)`;
}

/**
 * Peak RSS (MB) of a child that reads a whole cache chunk by chunk; with `gc`, collecting
 * garbage after every batch (V8 otherwise lets tens of MB of freed chunks pile up before it
 * collects, more in a long read than a short one, whatever the reader holds).
 */
function readerPeakRss(dir: string, gc: boolean): number {
  const ts = import.meta.url.endsWith(".ts");
  const child = join(dirname(fileURLToPath(import.meta.url)), "cache-read-child" + (ts ? ".ts" : ".js"));
  const args = [...(gc ? ["--expose-gc"] : []), ...(ts ? ["--import", "tsx"] : []), child, dir, ...(gc ? ["--gc"] : [])];
  const r = spawnSync(process.execPath, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`cache reader child failed: ${r.stderr.trim().split("\n").slice(-3).join(" ")}`);
  return JSON.parse(r.stdout.trim().split("\n").pop()!).peakRssMB;
}

/** Builds a cache of synthetic top-k rows (fast: no teacher) with `windows` windows. */
async function syntheticCache(dir: string, windows: number, context: number, k: number, vocab: number): Promise<void> {
  const base = topKOfLogits(zipfLogits(context * 4, vocab, 1), context * 4, vocab, k);
  await buildCache({
    dir,
    identity: { teacher: "bench", tokenizer: "bench", corpus: "bench" },
    k,
    vocab,
    context,
    train: Int32Array.from({ length: windows * context }, (_, i) => i % context),
    heldout: new Int32Array(0),
    batchWindows: 16,
    // The same four windows' rows over and over: the reader decodes every row regardless.
    score: async (_x, [b, c]) => {
      const rows = b * c;
      const ids = new Int32Array(rows * k);
      const logprobs = new Float32Array(rows * k);
      const logTail = new Float32Array(rows);
      for (let i = 0; i < b; i++) {
        const s = (i % 4) * c;
        ids.set(base.ids.subarray(s * k, (s + c) * k), i * c * k);
        logprobs.set(base.logprobs.subarray(s * k, (s + c) * k), i * c * k);
        logTail.set(base.logTail.subarray(s, s + c), i * c);
      }
      return { kind: "topk", rows, classes: vocab, k, ids, logprobs, logTail };
    },
  });
}

export interface MemoryMeasurement {
  windows: number;
  decodedMB: number;
  /** Peak RSS reading it with V8's own collection schedule (NaN when not measured). */
  peakRssMB: number;
  /** Peak RSS collecting garbage after every batch: what the reader holds. */
  peakRssGcMB: number;
}

/** The reader's peak RSS on a 1× and a 10× cache (k = 128, context 128, V = 256). */
export async function readerMemory(baseWindows = 200, o: { natural?: boolean } = {}): Promise<MemoryMeasurement[]> {
  const context = 128;
  const k = 128;
  const out: MemoryMeasurement[] = [];
  for (const mult of [1, 10]) {
    const dir = mkdtempSync(join(tmpdir(), "distill-cache-mem-"));
    try {
      const windows = baseWindows * mult;
      await syntheticCache(dir, windows, context, k, 256);
      out.push({ windows, decodedMB: (windows * context * (k * 8 + 4)) / 2 ** 20, peakRssMB: o.natural === false ? NaN : readerPeakRss(dir, false), peakRssGcMB: readerPeakRss(dir, true) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return out;
}

/** The whole workload: prints its lines and returns them. */
export async function runCacheBench(log: (line: string) => void = console.log): Promise<{ stores: (StoreMeasurement & { label: string })[]; codecs: CodecMeasurement[]; memory: MemoryMeasurement[] }> {
  const stores: (StoreMeasurement & { label: string })[] = [];
  const context = 64;
  const real = await trainedByteLMLogits({ steps: 300, windows: 256, context });
  // Synthetic large vocabularies (no such teacher runs here): 32k as Llama 2's, 150k as Qwen's.
  const synth = [
    { label: "synthetic Zipf (V=32000)", rows: 64 * 16, vocab: 32000 },
    { label: "synthetic Zipf (V=150000)", rows: 64 * 4, vocab: 150000 },
  ].map((s) => ({ ...s, logits: zipfLogits(s.rows, s.vocab, 2) }));
  for (const k of [16, 64, 128]) {
    const a = topKOfLogits(real.logits, real.rows, 256, k);
    for (const precision of ["quantized", "exact"] as const) {
      const { stored: _s, ...m } = await storeOnce(a, context, precision);
      stores.push({ label: "byte LM (trained, V=256)", ...m });
      log(formatStore("byte LM (trained, V=256)", m));
    }
    for (const z of synth) {
      const { stored: _t, ...m } = await storeOnce(topKOfLogits(z.logits, z.rows, z.vocab, k), context, "quantized");
      stores.push({ label: z.label, ...m });
      log(formatStore(z.label, m));
    }
  }
  const codecs = await codecTable(topKOfLogits(real.logits, real.rows, 256, 128), context);
  for (const c of codecs) log(`cache codec ${c.codec.padEnd(13)} byte LM k=128 quantized ${c.bytesPerToken.toFixed(1).padStart(7)} bytes/token  encode ${Math.round(c.encodeTokensPerS).toLocaleString("en-US").padStart(8)} tokens/s  decode ${Math.round(c.decodeTokensPerS).toLocaleString("en-US").padStart(8)} tokens/s`);
  const memory = await readerMemory();
  for (const m of memory) log(`cache reader  ${String(m.windows).padStart(5)} windows (${m.decodedMB.toFixed(0).padStart(4)} MB decoded in all)  peak RSS ${m.peakRssMB.toFixed(0)} MB, ${m.peakRssGcMB.toFixed(0)} MB collecting garbage after every batch`);
  return { stores, codecs, memory };
}
