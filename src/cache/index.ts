// STUB (issue 11, part "cache-store"): the agreed signatures; replaced by the real store.
import type { CacheIdentity, CacheManifest, CachePrecision, CacheSplit, TopKLabels } from "./types.js";
import type { SoftLabels } from "../teachers/types.js";

export interface BuildCacheOptions {
  /** The cache folder (created; chunks already there are kept and skipped: resumable). */
  dir: string;
  identity: CacheIdentity;
  k: number;
  vocab: number;
  context: number;
  precision?: CachePrecision;
  /** Consecutive windows' inputs, [windows × context] token ids, per split. */
  train: Int32Array;
  heldout: Int32Array;
  /** Scores [B, context] windows: top-k (any k ≥ the cache's) or dense logits (cut to k here). */
  score(x: Int32Array, shape: [number, number]): Promise<SoftLabels>;
  /** Fill only chunks c with c mod count === index (default: all, then merge). */
  shard?: { index: number; count: number };
  /** Windows scored per call to `score` (default 8). */
  batchWindows?: number;
  progress?: (doneWindows: number, totalWindows: number) => void;
}

export interface BuildCacheResult {
  /** Windows scored by this call (0 when everything was already there). */
  scoredWindows: number;
  /** The manifest, when this call completed the cache (unsharded), else null. */
  manifest: CacheManifest | null;
}

export async function buildCache(_o: BuildCacheOptions): Promise<BuildCacheResult> {
  throw new Error("not implemented");
}

/** Verifies every shard's checksum and coverage, then writes manifest.json (atomically). */
export function mergeCache(_dir: string): CacheManifest {
  throw new Error("not implemented");
}

export interface CacheReader {
  manifest: CacheManifest;
  /**
   * Soft labels of these windows of a split, in this order: rows = windows.length × context,
   * row-major. Streaming: keeps at most two chunks decoded.
   */
  softLabels(split: CacheSplit, windows: Int32Array): Promise<TopKLabels>;
  close(): Promise<void>;
}

/** Opens a merged cache; refuses one whose identity differs from `expect` (one line naming both). */
export function openCache(_dir: string, _expect?: Partial<CacheIdentity> & { context?: number }): CacheReader {
  throw new Error("not implemented");
}
