// A soft-label cache (`distill cache`, src/cache) as an LM teacher: `teacher: { cache: DIR }`.
// It holds the teacher's top k over the recipe's aligned training windows and its held-out
// windows, so students draw aligned windows (src/data/text-source.ts) and take each batch's soft
// labels from the reader by window id; the held-out split gives the teacher's own metrics and
// the students' agreement. It cannot score new text: no generated batches.
import { corpusHash, openCache, type CacheReader } from "../cache/index.js";
import { UserError } from "../util/errors.js";
import { evalWindows } from "../text/corpus.js";
import type { BatchSource } from "../train/trainer.js";
import { lmLogProbsOf, withLabelsFrom } from "./teacher.js";

/** The windows a cache scores: the training text cut into consecutive windows, and the held-out windows the report evaluates. */
export interface CacheWindows {
  context: number;
  train: { x: Int32Array; windows: number };
  heldout: { x: Int32Array; y: Int32Array; windows: number };
  /** SHA-256 of both splits' window inputs: the cache's corpus identity. */
  corpus: string;
}

export function cacheWindows(trainIds: Int32Array, heldIds: Int32Array, context: number, evalWindowsMax?: number): CacheWindows {
  // The training windows are evalWindows(trainIds, context) without its copies: consecutive
  // windows' inputs are the stream's first windows × context ids (the corpus may be gigabytes).
  const windows = Math.floor((trainIds.length - 1) / context);
  const train = { x: trainIds.subarray(0, windows * context), windows };
  const heldout = evalWindows(heldIds, context, evalWindowsMax);
  return { context, train, heldout, corpus: corpusHash(train.x, heldout.x, context) };
}

export interface CacheTeacher {
  reader: CacheReader;
  dir: string;
  k: number;
  context: number;
  vocab: number;
  /** The students' name for it in their config hash: the cached teacher's identity, k and precision. */
  hash: string;
  /** The windows it was checked against (the held-out ones give the teacher's metrics). */
  windows: CacheWindows;
  close(): Promise<void>;
}

/**
 * Opens DIR and checks it against the recipe's tokenizer and corpus windows (one line naming both
 * hashes otherwise). The students' context is checked first, by its own line: it changes the
 * windows, so the corpus hash would differ too, less helpfully.
 */
export function openCacheTeacher(dir: string, expect: { tokenizer: string; windows: CacheWindows; field: string }): CacheTeacher {
  const peek = openCache(dir);
  void peek.close();
  if (peek.manifest.context !== expect.windows.context) {
    throw new UserError(`${expect.field}: the students' context is ${expect.windows.context}, but the cache ${dir} holds windows of ${peek.manifest.context} tokens (every student must use its context)`);
  }
  const reader = openCache(dir, { tokenizer: expect.tokenizer, corpus: expect.windows.corpus, context: expect.windows.context });
  const m = reader.manifest;
  return {
    reader,
    dir,
    k: m.k,
    context: m.context,
    vocab: m.vocab,
    hash: `cache:${m.teacher}:top${m.k}:${m.precision}`,
    windows: expect.windows,
    close: () => reader.close(),
  };
}

/** Batches of aligned windows carrying the cache's soft labels for those windows. */
export function withCachedSoftLabels(source: BatchSource, t: CacheTeacher): BatchSource {
  return withLabelsFrom(source, t.dir, (hb) => {
    if (!hb.windows) throw new Error(`${t.dir}: a cache teacher needs aligned windows (the batch has no window ids)`);
    return t.reader.softLabels("train", hb.windows);
  });
}

/** The cached teacher's log-probabilities over the held-out windows (top-k expanded as for any top-k teacher). */
export function cachedHeldOutLogProbs(t: CacheTeacher): Promise<{ logits: Float32Array; coverage?: number }> {
  const w = t.windows;
  return lmLogProbsOf(
    (first, n) => t.reader.softLabels("heldout", Int32Array.from({ length: n }, (_, i) => first + i)),
    w.heldout.windows,
    w.context,
    t.vocab,
    w.heldout.y,
  );
}
