// The statistics behind a verdict: is a difference between two runs larger than the noise?
// Pure host functions, no engine. Written here rather than taken from a package because the
// few needed (an exact binomial tail, a seeded bootstrap, a Student t quantile) are short, and
// the JavaScript statistics packages either lack an exact test or the t quantile, or are
// large and unmaintained; each function is tested against scipy's values.
import { Rng, deriveSeed } from "../util/rng.js";

/** Significance level of every verdict. */
export const ALPHA = 0.05;

/** log Γ(x) for x > 0 (Lanczos, g = 7, 9 terms: about 15 significant digits). */
export function logGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  x -= 1;
  let a = c[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** log(e^a + e^b) without overflow. */
function logAddExp(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  const m = Math.max(a, b);
  return m + Math.log(Math.exp(a - m) + Math.exp(b - m));
}

/**
 * Exact McNemar test on paired correctness: b = examples only run A gets right, c = only run B.
 * Under "no difference" the b + c discordant examples split as X ~ Bin(b + c, ½), and the
 * two-sided p = min(1, 2·P[X ≤ min(b, c)]). Summed in log space: C(n, k)/2ⁿ underflows for
 * the thousands of discordant pairs a 10,000-example test set can have.
 */
export function mcnemarExact(b: number, c: number): number {
  if (!Number.isInteger(b) || !Number.isInteger(c) || b < 0 || c < 0) throw new Error(`mcnemarExact: counts must be non-negative integers, got ${b}, ${c}`);
  const n = b + c;
  if (n === 0) return 1;
  const k = Math.min(b, c);
  let logC = 0; // log C(n, 0)
  let logTail = 0;
  for (let i = 1; i <= k; i++) {
    logC += Math.log(n - i + 1) - Math.log(i);
    logTail = logAddExp(logTail, logC);
  }
  return Math.min(1, 2 * Math.exp(logTail - n * Math.LN2));
}

/** Discordant pairs of two runs' per-example correctness: b = only A right, c = only B right. */
export function discordant(a: ArrayLike<boolean | number>, bRight: ArrayLike<boolean | number>): { b: number; c: number } {
  if (a.length !== bRight.length) throw new Error(`discordant: ${a.length} against ${bRight.length} examples`);
  let b = 0;
  let c = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] && !bRight[i]) b++;
    else if (!a[i] && bRight[i]) c++;
  }
  return { b, c };
}

/** The q-quantile (0 ≤ q ≤ 1) of sorted values, interpolated linearly (numpy's default). */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const h = (n - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

export function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  return xs.length ? s / xs.length : NaN;
}

/** Sample standard deviation (n − 1); 0 for a single value. */
export function sampleStd(xs: ArrayLike<number>): number {
  const n = xs.length;
  if (n < 2) return 0;
  const m = mean(xs);
  let s = 0;
  for (let i = 0; i < n; i++) s += (xs[i] - m) ** 2;
  return Math.sqrt(s / (n - 1));
}

export interface Interval {
  /** Mean difference (A − B). */
  mean: number;
  low: number;
  high: number;
  /** Two-sided p-value of "mean difference = 0", when the method gives one. */
  p?: number;
}

/**
 * Paired bootstrap of the mean of per-item differences (e.g. run A's minus run B's NLL on each
 * held-out window): `resamples` seeded resamples of the items with replacement. The 95 %
 * interval is the percentile interval of the resampled means. The p-value comes from the same
 * resamples shifted to mean 0 (the null hypothesis): the share of them at least as far from 0
 * as the observed mean, counted as (1 + hits)/(1 + resamples) so it is never exactly 0.
 */
export function pairedBootstrap(diffs: ArrayLike<number>, opts: { resamples?: number; seed?: number } = {}): Interval {
  const n = diffs.length;
  if (n === 0) throw new Error("pairedBootstrap: no items");
  const B = opts.resamples ?? 2000;
  const rng = new Rng(deriveSeed(opts.seed ?? 0, "bootstrap", n));
  const m = mean(diffs);
  const means = new Float64Array(B);
  let hits = 0;
  for (let r = 0; r < B; r++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += diffs[rng.int(n)];
    means[r] = s / n;
    if (Math.abs(means[r] - m) >= Math.abs(m)) hits++;
  }
  means.sort();
  return { mean: m, low: quantileSorted(means, ALPHA / 2), high: quantileSorted(means, 1 - ALPHA / 2), p: (1 + hits) / (1 + B) };
}

/**
 * Regularised incomplete beta I_x(a, b), by the continued fraction (Lentz's method) on the side
 * where it converges fast.
 */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  if (x > (a + 1) / (a + b + 2)) return 1 - (front * betaFraction(1 - x, b, a)) / b;
  return (front * betaFraction(x, a, b)) / a;
}

function betaFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 500; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return h;
}

/** Student t CDF with `df` degrees of freedom. */
export function tCdf(t: number, df: number): number {
  const tail = 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/** The p-quantile of Student's t with `df` degrees of freedom (bisection on the CDF). */
export function tQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1) || !(df > 0)) throw new Error(`tQuantile: need 0 < p < 1 and df > 0, got p = ${p}, df = ${df}`);
  if (p === 0.5) return 0;
  if (p < 0.5) return -tQuantile(1 - p, df);
  let lo = 0;
  let hi = 1;
  while (tCdf(hi, df) < p) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-13 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (tCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/**
 * Several seeds: the 95 % t-interval of the mean paired (same seed) difference A − B, and its
 * two-sided p-value. Pairing by seed removes what the two runs share (the teacher, the data).
 * Needs at least two pairs; with identical differences the interval has zero width.
 */
export function pairedTInterval(a: number[], b: number[]): Interval {
  if (a.length !== b.length) throw new Error(`pairedTInterval: ${a.length} against ${b.length} values`);
  const n = a.length;
  if (n < 2) throw new Error("pairedTInterval: needs at least two pairs");
  const d = a.map((x, i) => x - b[i]);
  const m = mean(d);
  const se = sampleStd(d) / Math.sqrt(n);
  const half = tQuantile(1 - ALPHA / 2, n - 1) * se;
  const p = se === 0 ? (m === 0 ? 1 : 0) : 2 * (1 - tCdf(Math.abs(m / se), n - 1));
  return { mean: m, low: m - half, high: m + half, p };
}

/** Unique n-grams / total n-grams over the sequences (none crosses from one sequence to the next). */
export function distinctN(seqs: ArrayLike<number>[], n: number): number {
  const seen = new Set<string>();
  let total = 0;
  for (const s of seqs) {
    for (let i = 0; i + n <= s.length; i++) {
      seen.add(Array.prototype.slice.call(s, i, i + n).join(","));
      total++;
    }
  }
  return total ? seen.size / total : NaN;
}
