// Teachers and distributions for the soft-label cache tests (and `distill bench --workload cache`
// uses the same ones from src/bench/cache-bench.ts): a deterministic fake teacher, Zipf-like
// logits, and the KL divergence between two (k+1)-outcome distributions in float64.
import type { SoftLabels } from "../../src/teachers/types.js";
import { deriveSeed, Rng } from "../../src/util/rng.js";
import { topKOfLogits } from "../../src/teachers/teacher.js";
import type { TopKLabels } from "../../src/cache/types.js";

export { zipfLogits, klPerToken } from "../../src/bench/cache-measure.js";

/**
 * Pseudo-logits [B·T, vocab] that depend only on each position's token and its predecessor (and
 * the position), so any batching of the same windows gives the same numbers.
 */
export function pseudoLogits(x: Int32Array, context: number, vocab: number): Float32Array {
  const rows = x.length;
  const out = new Float32Array(rows * vocab);
  for (let r = 0; r < rows; r++) {
    const p = r % context;
    const rng = new Rng(deriveSeed("fake-teacher", x[r], p > 0 ? x[r - 1] : -1, p));
    const shift = rng.int(vocab);
    for (let j = 0; j < vocab; j++) {
      // Zipf-like around a position-dependent favourite, with noise.
      const rank = (j - shift + vocab) % vocab;
      out[r * vocab + j] = -1.2 * Math.log(1 + rank) + (rng.nextU32() / 4294967296) * 2;
    }
  }
  return out;
}

/**
 * A deterministic fake teacher for buildCache's `score`: dense logits, or its top `give` entries
 * (shuffled within the row when `shuffled`, as some servers list them) with or without the tail.
 */
export function fakeScore(vocab: number, o: { give?: number; tail?: boolean; shuffled?: boolean; delayMs?: number } = {}) {
  return async (x: Int32Array, shape: [number, number]): Promise<SoftLabels> => {
    if (o.delayMs) await new Promise((r) => setTimeout(r, o.delayMs));
    const logits = pseudoLogits(x, shape[1], vocab);
    const rows = shape[0] * shape[1];
    if (o.give === undefined) return { kind: "dense", rows, classes: vocab, logits };
    const t = topKOfLogits(logits, rows, vocab, o.give);
    if (o.shuffled) {
      const rng = new Rng(deriveSeed("shuffle", x[0]));
      for (let r = 0; r < rows; r++) {
        const perm = rng.permutation(o.give);
        const ids = t.ids.slice(r * o.give, (r + 1) * o.give);
        const lps = t.logprobs.slice(r * o.give, (r + 1) * o.give);
        for (let j = 0; j < o.give; j++) {
          t.ids[r * o.give + j] = ids[perm[j]];
          t.logprobs[r * o.give + j] = lps[perm[j]];
        }
      }
    }
    return o.tail === false ? { kind: "topk", rows, classes: vocab, k: o.give, ids: t.ids, logprobs: t.logprobs } : t;
  };
}

/** The rows of windows `ws` of `ids` (windows × context), as one [ws.length × context] block. */
export function gatherWindows(ids: Int32Array, context: number, ws: Int32Array): Int32Array {
  const out = new Int32Array(ws.length * context);
  ws.forEach((w, i) => out.set(ids.subarray(w * context, (w + 1) * context), i * context));
  return out;
}

/** Bit-for-bit equality of two top-k label sets; the first difference as text, or null. */
export function firstDifference(a: TopKLabels, b: TopKLabels): string | null {
  if (a.rows !== b.rows || a.k !== b.k) return `shape ${a.rows}×${a.k} vs ${b.rows}×${b.k}`;
  const bits = (f: Float32Array) => new Uint32Array(f.buffer, f.byteOffset, f.length);
  const [al, bl, at, bt] = [bits(a.logprobs), bits(b.logprobs), bits(a.logTail), bits(b.logTail)];
  for (let i = 0; i < a.ids.length; i++) {
    if (a.ids[i] !== b.ids[i]) return `row ${Math.floor(i / a.k)} entry ${i % a.k}: id ${a.ids[i]} vs ${b.ids[i]}`;
    if (al[i] !== bl[i]) return `row ${Math.floor(i / a.k)} entry ${i % a.k}: log-probability ${a.logprobs[i]} vs ${b.logprobs[i]}`;
  }
  for (let r = 0; r < a.rows; r++) if (at[r] !== bt[r]) return `row ${r}: log tail ${a.logTail[r]} vs ${b.logTail[r]}`;
  return null;
}

/** The cache the resume test builds, in a child process and in the test (same options). */
export const RESUME_CACHE = (() => {
  const V = 64;
  const C = 16;
  const rng = new Rng(21);
  const train = Int32Array.from({ length: 64 * 14 * C }, () => rng.int(V)); // 14 chunks
  const heldout = Int32Array.from({ length: (64 + 17) * C }, () => rng.int(V)); // 2 chunks
  const options = (dir: string, delayMs = 0) => ({
    dir,
    identity: { teacher: "fake", tokenizer: "tok", corpus: "resume-test" },
    k: 8,
    vocab: V,
    context: C,
    train,
    heldout,
    batchWindows: 32,
    concurrency: 2,
    score: fakeScore(V, { give: 12, delayMs }),
  });
  return { C, options };
})();
