// The persistent soft-label cache: a teacher's top-k log-probabilities over a recipe's training
// (and held-out) windows, stored once as compressed Parquet shards plus a JSON manifest, and
// read back, streaming, by any number of student runs.
import type { SoftLabels } from "../teachers/types.js";

/** Bumped whenever the shard layout or the manifest changes meaning. */
export const CACHE_SCHEMA = 1;

/**
 * Windows per chunk (at most: see chunkCount for which): the unit that is scored, written (one Parquet file, atomically), resumed,
 * assigned to a shard (chunk c → shard c mod N), and shuffled as a whole by the students that
 * read the cache (src/data/text-source.ts, aligned windows), so reading keeps at most two chunks
 * in memory whatever the cache's size.
 */
export const WINDOWS_PER_CHUNK = 64;

/**
 * Which windows a chunk holds: of a split's `total` windows in C = ⌈total / perChunk⌉ chunks,
 * chunk c holds windows c, c + C, c + 2C, ... (slot s is window c + s·C). Strided, not
 * consecutive: consecutive windows are one stretch of the text (in Debian's fortunes, one topic),
 * and students that drew their batches from such chunks trained markedly worse (held-out 1.99
 * against 1.88 nats/char for the char-LM scratch student); a strided chunk spans the whole corpus.
 */
export function chunkCount(total: number, perChunk = WINDOWS_PER_CHUNK): number {
  return Math.ceil(total / perChunk);
}

/** Windows in chunk `chunk` (at most perChunk; the chunks differ by one at most). */
export function chunkSize(chunk: number, total: number, perChunk = WINDOWS_PER_CHUNK): number {
  return Math.floor((total - 1 - chunk) / chunkCount(total, perChunk)) + 1;
}

export type CacheSplit = "train" | "heldout";

/**
 * How log-probabilities are stored: "quantized" (default; 1/32 nat steps, sorted deltas, small
 * enough to beat 300 bytes per token at k = 128) or "exact" (float32, bit for bit what the
 * teacher gave: a student trained from it equals one trained with the live teacher).
 */
export type CachePrecision = "quantized" | "exact";

/** What the cache was computed from; a reader refuses a cache whose identity is not its own. */
export interface CacheIdentity {
  /** The teacher's identity (a file's SHA-256, a server's url + model, a config hash). */
  teacher: string;
  /** SHA-256 (configHash) of the tokenizer's JSON. */
  tokenizer: string;
  /** SHA-256 of the token ids scored (training and held-out windows). */
  corpus: string;
}

export interface CacheShardEntry {
  /** File name inside the cache folder. */
  file: string;
  split: CacheSplit;
  chunk: number;
  firstWindow: number;
  windows: number;
  rows: number;
  bytes: number;
  sha256: string;
}

export interface CacheManifest extends CacheIdentity {
  schema: number;
  k: number;
  vocab: number;
  context: number;
  precision: CachePrecision;
  windowsPerChunk: number;
  windows: Record<CacheSplit, number>;
  /** Positions stored (windows × context, both splits). */
  rows: number;
  shards: CacheShardEntry[];
}

export type TopKLabels = Extract<SoftLabels, { kind: "topk" }> & { logTail: Float32Array };
