// Distributions and the divergence the soft-label cache is measured with (its bench and tests):
// no engine here, so child processes that only build or read a cache load little.
import type { TopKLabels } from "../cache/types.js";
import { deriveSeed, Rng } from "../util/rng.js";

/** A standard normal draw (Box–Muller). */
function gauss(rng: Rng): number {
  const u = (rng.nextU32() + 1) / 4294967297;
  const v = rng.nextU32() / 4294967296;
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/**
 * Synthetic next-token logits [rows, vocab] shaped like a large-vocabulary LM's: a unigram Zipf
 * background (small ids frequent, as in BPE vocabularies) with noise, plus a handful of
 * context-favoured candidates (themselves drawn Zipf-like) lifted well above it.
 */
export function zipfLogits(rows: number, vocab: number, seed: number): Float32Array {
  const out = new Float32Array(rows * vocab);
  for (let r = 0; r < rows; r++) {
    const rng = new Rng(deriveSeed("zipf", seed, r));
    const row = out.subarray(r * vocab, (r + 1) * vocab);
    for (let j = 0; j < vocab; j++) row[j] = -1.1 * Math.log(1 + j) + gauss(rng);
    const favoured = 1 + rng.int(12);
    for (let f = 0; f < favoured; f++) {
      const id = Math.min(vocab - 1, Math.floor(Math.exp((rng.nextU32() / 4294967296) * Math.log(vocab))) - 1);
      row[id] = 4 + 4 * (rng.nextU32() / 4294967296);
    }
  }
  return out;
}

/**
 * Mean KL(exact ‖ stored) in nats per position over the k + 1 outcomes (the k kept classes and
 * the tail bucket), in float64, matching entries by token id (a stored id that is wrong shows as
 * an infinite divergence). Both sides are renormalized in float64, so float32 rounding of a
 * distribution that sums to one does not count against the store.
 */
export function klPerToken(exact: TopKLabels, stored: TopKLabels): number {
  const { rows, k } = exact;
  const q = new Map<number, number>();
  let total = 0;
  for (let r = 0; r < rows; r++) {
    q.clear();
    let zq = Math.exp(stored.logTail[r]);
    for (let j = 0; j < stored.k; j++) zq += Math.exp(stored.logprobs[r * stored.k + j]);
    const logZq = Math.log(zq);
    for (let j = 0; j < stored.k; j++) q.set(stored.ids[r * stored.k + j], stored.logprobs[r * stored.k + j] - logZq);
    let z = Math.exp(exact.logTail[r]);
    for (let j = 0; j < k; j++) z += Math.exp(exact.logprobs[r * k + j]);
    const logZ = Math.log(z);
    let kl = 0;
    for (let j = 0; j < k; j++) {
      const lp = exact.logprobs[r * k + j] - logZ;
      const lq = q.get(exact.ids[r * k + j]);
      if (lp === -Infinity) continue;
      kl += lq === undefined ? Infinity : Math.exp(lp) * (lp - lq);
    }
    const lt = exact.logTail[r] - logZ;
    if (lt !== -Infinity) kl += Math.exp(lt) * (lt - (stored.logTail[r] - logZq));
    total += kl;
  }
  return total / rows;
}
