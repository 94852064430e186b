// Row encoding of the soft-label cache: one position's top-k ids and log-probabilities as two
// byte strings (the Parquet columns `ids` and `logprobs`).
//
// Hand-written because no Parquet encoding knows that a row is a sorted distribution: the k
// log-probabilities only go down, so after quantizing the cumulative value (1/32 nat) the deltas
// are small non-negative integers (a byte or less each as varints, then Brotli squeezes them
// further), and rounding the cumulative value, not each delta, keeps every entry within half a
// step of the truth however long the row. Ids are byte-aligned with the bytes of each id split
// into planes (all high bytes, then all low bytes): the planes let Brotli see the skew of the
// high bytes (frequent tokens have small ids in BPE vocabularies). Measured on Zipf-like top 128
// after Brotli q5, ids in bytes per token: V = 32,000: planes 153, interleaved bytes 170,
// bit-packed at 15 bits 185; V = 150,000: planes 157, interleaved 185, bit-packed at 18 bits 200.
import { UserError } from "../util/errors.js";
import { logTailOf, topKOfLogits } from "../teachers/teacher.js";
import type { SoftLabels } from "../teachers/types.js";
import type { CachePrecision, TopKLabels } from "./types.js";

/** Quantization steps per nat ("quantized" precision). */
export const STEPS_PER_NAT = 32;
/** A quantized value at or above this is −∞ (a class the teacher gave probability 0). */
const Q_INF = 2 ** 30;
/** exp(−q / STEPS_PER_NAT) for the quantized values of the first 64 nats (decoding's hot loop). */
const EXP_Q = Float64Array.from({ length: 64 * STEPS_PER_NAT }, (_, q) => Math.exp(-q / STEPS_PER_NAT));

/** Bytes per id: the fewest whole bytes that hold vocab − 1. */
export function idBytes(vocab: number): number {
  return vocab <= 2 ** 8 ? 1 : vocab <= 2 ** 16 ? 2 : vocab <= 2 ** 24 ? 3 : 4;
}

/**
 * A teacher's soft labels for `rows` positions as exactly the cache's k per row, sorted by
 * descending probability, with the log tail: dense logits are cut with topKOfLogits (exact
 * tail); a larger top-k keeps its first k and folds the rest into the tail; a top-k without a
 * tail gets logTailOf's. `where(r)` names row r in errors.
 */
export function toTopK(s: SoftLabels, rows: number, k: number, vocab: number, where: (r: number) => string): TopKLabels {
  if (s.rows !== rows) throw new Error(`teacher gave soft labels for ${s.rows} rows, expected ${rows}`);
  if (s.classes !== vocab) throw new UserError(`the teacher's vocabulary has ${s.classes} tokens, the cache's ${vocab}`);
  if (s.kind === "dense") {
    const t = topKOfLogits(s.logits, rows, vocab, k);
    for (let i = 0; i < t.logprobs.length; i++) if (Number.isNaN(t.logprobs[i])) throw new UserError(`the teacher gave a NaN logit at ${where(Math.floor(i / k))}`);
    return t;
  }
  if (s.k < k) throw new UserError(`the teacher gave its top ${s.k} log-probabilities, the cache needs k = ${k}`);
  const K = s.k;
  const ids = new Int32Array(rows * k);
  const logprobs = new Float32Array(rows * k);
  const logTail = new Float32Array(rows);
  const order = new Int32Array(K);
  for (let r = 0; r < rows; r++) {
    const base = r * K;
    let sorted = true;
    for (let j = 0; j < K; j++) {
      const lp = s.logprobs[base + j];
      const id = s.ids[base + j];
      if (Number.isNaN(lp) || lp > 1e-3) throw new UserError(`the teacher gave a log-probability of ${lp} at ${where(r)}`);
      if (!(id >= 0 && id < vocab)) throw new UserError(`the teacher gave token id ${id} at ${where(r)}, outside the vocabulary of ${vocab}`);
      if (j > 0 && lp > s.logprobs[base + j - 1]) sorted = false;
      order[j] = j;
    }
    // Servers may list their top-k in any order: sort (ties by the smaller id, as topKOfLogits).
    if (!sorted) {
      const o = Array.from(order).sort((a, b) => s.logprobs[base + b] - s.logprobs[base + a] || s.ids[base + a] - s.ids[base + b]);
      order.set(o);
    }
    for (let j = 0; j < k; j++) {
      ids[r * k + j] = s.ids[base + order[j]];
      logprobs[r * k + j] = s.logprobs[base + order[j]];
    }
    if (s.logTail && K > k) {
      // log(tail + Σ dropped p) in float64, by log-sum-exp from the largest term.
      let m = s.logTail[r];
      for (let j = k; j < K; j++) m = Math.max(m, s.logprobs[base + order[j]]);
      let sum = m === -Infinity ? 0 : Math.exp(s.logTail[r] - m);
      for (let j = k; j < K; j++) sum += m === -Infinity ? 0 : Math.exp(s.logprobs[base + order[j]] - m);
      logTail[r] = m === -Infinity ? -Infinity : m + Math.log(sum);
    } else if (s.logTail) {
      logTail[r] = s.logTail[r];
    }
  }
  if (!s.logTail) logTail.set(logTailOf(logprobs, rows, k));
  return { kind: "topk", rows, classes: vocab, k, ids, logprobs, logTail };
}

/** One chunk's rows encoded: `ids[r]` and `logprobs[r]` are views into two shared buffers. */
export interface EncodedRows {
  ids: Uint8Array[];
  logprobs: Uint8Array[];
}

/** Encodes `rows` rows of k sorted entries (as toTopK gives them). */
export function encodeRows(t: TopKLabels, vocab: number, precision: CachePrecision): EncodedRows {
  const { rows, k } = t;
  const nb = idBytes(vocab);
  const idBuf = new Uint8Array(rows * k * nb);
  const ids: Uint8Array[] = new Array(rows);
  for (let r = 0; r < rows; r++) {
    const row = idBuf.subarray(r * k * nb, (r + 1) * k * nb);
    for (let p = 0; p < nb; p++) {
      const shift = 8 * (nb - 1 - p);
      const plane = p * k;
      for (let j = 0; j < k; j++) row[plane + j] = (t.ids[r * k + j] >>> shift) & 255;
    }
    ids[r] = row;
  }
  const logprobs: Uint8Array[] = new Array(rows);
  if (precision === "exact") {
    // Float32 bit for bit, its 4 bytes split into planes (sign and exponent bytes compress well).
    const bytes = new Uint8Array(t.logprobs.buffer, t.logprobs.byteOffset, rows * k * 4);
    const lpBuf = new Uint8Array(rows * k * 4);
    const little = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
    for (let r = 0; r < rows; r++) {
      const row = lpBuf.subarray(r * k * 4, (r + 1) * k * 4);
      for (let p = 0; p < 4; p++) {
        const src = little ? 3 - p : p;
        for (let j = 0; j < k; j++) row[p * k + j] = bytes[(r * k + j) * 4 + src];
      }
      logprobs[r] = row;
    }
    return { ids, logprobs };
  }
  // Quantized: varints of the first value and the non-negative deltas (at most 5 bytes each).
  const lpBuf = new Uint8Array(rows * k * 5);
  let at = 0;
  for (let r = 0; r < rows; r++) {
    const start = at;
    let prev = 0;
    for (let j = 0; j < k; j++) {
      const lp = t.logprobs[r * k + j];
      let q = lp === -Infinity ? Q_INF : Math.min(Q_INF - 1, Math.max(0, Math.round(-lp * STEPS_PER_NAT)));
      if (q < prev) q = prev; // only reachable through rows that are not sorted; toTopK sorts them
      let d = q - prev;
      prev = q;
      while (d >= 0x80) {
        lpBuf[at++] = (d & 0x7f) | 0x80;
        d >>>= 7;
      }
      lpBuf[at++] = d;
    }
    logprobs[r] = lpBuf.subarray(start, at);
  }
  return { ids, logprobs };
}

/**
 * Decodes rows into `out` at row offset `at` (k entries per row). Quantized rows are renormalized
 * over the k + 1 outcomes (the k kept and the tail), so the student sees a distribution: rounding
 * each probability by up to ±1/64 nat otherwise leaves the sum a little off 1.
 */
export function decodeRows(
  idCol: ArrayLike<Uint8Array>,
  lpCol: ArrayLike<Uint8Array>,
  tailCol: ArrayLike<number>,
  k: number,
  vocab: number,
  precision: CachePrecision,
  out: { ids: Int32Array; logprobs: Float32Array; logTail: Float32Array },
  at: number,
  what: string,
): void {
  const nb = idBytes(vocab);
  const rows = idCol.length;
  const f32 = new Float32Array(1);
  const f32b = new Uint8Array(f32.buffer);
  const little = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  for (let r = 0; r < rows; r++) {
    const o = (at + r) * k;
    const idRow = idCol[r];
    if (idRow.length !== k * nb) throw new UserError(`${what}: row ${r} has ${idRow.length} id bytes, expected ${k * nb} (corrupt chunk)`);
    for (let j = 0; j < k; j++) {
      let id = 0;
      for (let p = 0; p < nb; p++) id = id * 256 + idRow[p * k + j];
      out.ids[o + j] = id;
    }
    const lpRow = lpCol[r];
    const tail = tailCol[r];
    if (precision === "exact") {
      if (lpRow.length !== k * 4) throw new UserError(`${what}: row ${r} has ${lpRow.length} log-probability bytes, expected ${k * 4} (corrupt chunk)`);
      for (let j = 0; j < k; j++) {
        for (let p = 0; p < 4; p++) f32b[little ? 3 - p : p] = lpRow[p * k + j];
        out.logprobs[o + j] = f32[0];
      }
      out.logTail[at + r] = tail;
      continue;
    }
    let pos = 0;
    let q = 0;
    let sum = tail === -Infinity ? 0 : Math.exp(tail);
    for (let j = 0; j < k; j++) {
      let d = 0;
      let shift = 0;
      let b: number;
      do {
        if (pos >= lpRow.length) throw new UserError(`${what}: row ${r} ends after ${j} of ${k} log-probabilities (corrupt chunk)`);
        b = lpRow[pos++];
        d += (b & 0x7f) * 2 ** shift;
        shift += 7;
      } while (b & 0x80);
      q += d;
      if (q < EXP_Q.length) {
        out.logprobs[o + j] = -q / STEPS_PER_NAT;
        sum += EXP_Q[q];
      } else {
        const lp = q >= Q_INF ? -Infinity : -q / STEPS_PER_NAT;
        out.logprobs[o + j] = lp;
        sum += Math.exp(lp);
      }
    }
    if (pos !== lpRow.length) throw new UserError(`${what}: row ${r} has ${lpRow.length - pos} bytes after its log-probabilities (corrupt chunk)`);
    const logZ = Math.log(sum);
    for (let j = 0; j < k; j++) out.logprobs[o + j] -= logZ;
    out.logTail[at + r] = tail - logZ;
  }
}
