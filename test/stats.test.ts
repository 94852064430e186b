// The statistics behind the verdicts, against independent references: values from scipy 1.17
// (scipy.stats.binomtest, t.ppf, t.cdf, beta.cdf, ttest_rel; math.lgamma; numpy.percentile),
// copied here as literals, and hand-computed cases.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  discordant,
  distinctN,
  incompleteBeta,
  logGamma,
  mcnemarExact,
  pairedBootstrap,
  pairedTInterval,
  quantileSorted,
  sampleStd,
  tCdf,
  tQuantile,
} from "../src/eval/stats.js";

const close = (a: number, b: number, tol: number, what: string) => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);
const rel = (a: number, b: number, tol: number, what: string) => assert.ok(Math.abs(a - b) <= tol * Math.abs(b), `${what}: ${a} vs ${b}`);

test("exact McNemar equals scipy's two-sided binomial test on the discordant pairs", () => {
  // scipy.stats.binomtest(min(b, c), b + c, 0.5).pvalue
  const cases: [number, number, number][] = [
    [3, 20, 0.00048828125],
    [10, 10, 1],
    [0, 0, 1],
    [0, 5, 0.0625],
    [5, 0, 0.0625],
    [1, 6, 0.125],
    [40, 60, 0.05688793364098089],
    [1000, 1100, 0.03072070786424249],
    // Thousands of discordant pairs: C(n, k) and 2ⁿ overflow a double; the log-space sum does not.
    [4000, 4200, 0.027972423571324654],
    [4990, 5010, 0.849310326637318],
    [0, 40, 1.8189894035458565e-12],
  ];
  for (const [b, c, p] of cases) rel(mcnemarExact(b, c), p, 1e-9, `McNemar(${b}, ${c})`);
  // Hand: b = 0, c = 2 → 2·P[X = 0] = 2/4.
  assert.equal(mcnemarExact(0, 2), 0.5);
  assert.throws(() => mcnemarExact(-1, 2));
});

test("discordant pairs count only the examples where the runs disagree, in the stated direction", () => {
  const a = [1, 1, 0, 0, 1, 0, 1];
  const b = [1, 0, 1, 0, 0, 0, 1];
  assert.deepEqual(discordant(a, b), { b: 2, c: 1 });
  assert.deepEqual(discordant(b, a), { b: 1, c: 2 });
});

test("log Γ, the incomplete beta and Student t match scipy", () => {
  close(logGamma(0.5), 0.5723649429247004, 1e-12, "lgamma(0.5)");
  rel(logGamma(10.3), 13.48203678613836, 1e-13, "lgamma(10.3)");
  rel(logGamma(1000.5), 5908.674175848678, 1e-13, "lgamma(1000.5)");
  close(incompleteBeta(0.3, 2.5, 4), 0.3521975859067672, 1e-12, "I_0.3(2.5, 4)");
  close(tCdf(1.5, 3), 0.8847080673775886, 1e-12, "t.cdf(1.5, 3)");
  close(tCdf(-0.4, 7), 0.3505408335852025, 1e-12, "t.cdf(-0.4, 7)");
  // t.ppf(0.975, df): the two-sided 95 % factor.
  const t975: [number, number][] = [
    [1, 12.706204736174694],
    [2, 4.302652729749462],
    [3, 3.1824463052837078],
    [4, 2.7764451051977934],
    [5, 2.5705818356363146],
    [9, 2.262157162798205],
    [29, 2.045229642132703],
    [100, 1.9839715185235518],
    [1000, 1.9623390808264083],
  ];
  for (const [df, t] of t975) close(tQuantile(0.975, df), t, 1e-9, `t_0.975,${df}`);
  close(tQuantile(0.9, 3), 1.637744353696209, 1e-9, "t_0.9,3");
  close(tQuantile(0.995, 7), 3.4994832973504924, 1e-9, "t_0.995,7");
  close(tQuantile(0.6, 2), 0.2886751345948128, 1e-9, "t_0.6,2");
  close(tQuantile(0.025, 4), -2.7764451051977934, 1e-9, "t_0.025,4");
});

test("paired t-interval over seeds matches scipy (t.ppf and ttest_rel)", () => {
  let r = pairedTInterval([0.861, 0.872, 0.868], [0.8, 0.795, 0.79]);
  close(r.mean, 0.072, 1e-12, "mean");
  close(r.low, 0.048302836550431646, 1e-9, "low");
  close(r.high, 0.09569716344956826, 1e-9, "high");
  close(r.p!, 0.005800475995922065, 1e-9, "p");
  r = pairedTInterval([1, 2, 4, 3, 7], [0.5, 2.5, 3, 1, 6.5]);
  close(r.low, -0.4277973331495202, 1e-9, "low");
  close(r.high, 1.82779733314952, 1e-9, "high");
  close(r.p!, 0.15993479883742162, 1e-9, "p");
  // The same differences with A and B swapped: the interval flips sign.
  const s = pairedTInterval([0.5, 2.5, 3, 1, 6.5], [1, 2, 4, 3, 7]);
  close(s.low, -1.82779733314952, 1e-9, "swapped low");
  assert.throws(() => pairedTInterval([1], [2]));
  close(sampleStd([1, 2, 3, 4]), Math.sqrt(5 / 3), 1e-15, "sample std uses n − 1");
});

test("quantiles interpolate as numpy.percentile does", () => {
  const x = [0.3, -1.2, 2.5, 0.0, 1.1, 4.0, -0.7].sort((a, b) => a - b);
  close(quantileSorted(x, 0.025), -1.125, 1e-12, "2.5 %");
  close(quantileSorted(x, 0.975), 3.7749999999999995, 1e-12, "97.5 %");
  close(quantileSorted(x, 0.5), 0.3, 1e-12, "median");
});

/** n draws of N(mu, sd²), deterministic (Box–Muller on a fixed LCG). */
function normals(n: number, mu: number, sd: number, seed: number): number[] {
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 4294967296;
  return Array.from({ length: n }, () => mu + sd * Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()));
}

test("paired bootstrap: seeded, percentile interval and two-sided p agree with normal theory", () => {
  // A constant difference has no noise: the interval is that constant and p is the smallest possible.
  const c = pairedBootstrap([0.25, 0.25, 0.25, 0.25], { resamples: 999 });
  assert.deepEqual([c.mean, c.low, c.high], [0.25, 0.25, 0.25]);
  assert.equal(c.p, 1 / 1000);
  // Differences symmetric about 0: p = 1.
  assert.equal(pairedBootstrap([-1, 1, -2, 2], { resamples: 500 }).p, 1);

  const d = normals(400, 0.08, 1, 3);
  const m = d.reduce((a, b) => a + b, 0) / d.length;
  const se = sampleStd(d) / Math.sqrt(d.length);
  const r = pairedBootstrap(d, { resamples: 4000, seed: 1 });
  assert.equal(r.mean, m);
  // Percentile interval ≈ mean ± 1.96·se for a sample this size.
  rel(r.high - r.low, 2 * 1.959964 * se, 0.08, "interval width");
  close((r.low + r.high) / 2, m, 0.15 * se, "interval centre");
  // Two-sided normal p-value of the same mean: 2·(1 − Φ(|m|/se)), Φ via t with huge df.
  const z = Math.abs(m) / se;
  const pNormal = 2 * (1 - tCdf(z, 1e7));
  assert.ok(pNormal > 0.005 && pNormal < 0.2, `test data gives a p that is neither tiny nor large: ${pNormal}`);
  rel(r.p!, pNormal, 0.25, "bootstrap p vs normal p");
  // Seeded: the same seed gives the same interval; the sign of the differences flips it.
  assert.deepEqual(pairedBootstrap(d, { resamples: 4000, seed: 1 }), r);
  const neg = pairedBootstrap(d.map((x) => -x), { resamples: 4000, seed: 1 });
  close(neg.low, -r.high, 1e-12, "negated low");
  close(neg.p!, r.p!, 1e-12, "negated p");
});

test("distinct-n on a hand-made token list", () => {
  const seqs = [Int32Array.from([1, 2, 1, 2, 3]), Int32Array.from([1, 2, 4])];
  // unigrams: 1,2,1,2,3 | 1,2,4 → 8 total, unique {1,2,3,4} = 4
  assert.equal(distinctN(seqs, 1), 4 / 8);
  // bigrams: 12,21,12,23 | 12,24 → 6 total, unique {12,21,23,24} = 4 (no 3→1 across sequences)
  assert.equal(distinctN(seqs, 2), 4 / 6);
  // trigrams: 121,212,123 | 124 → 4 total, all unique
  assert.equal(distinctN(seqs, 3), 1);
  assert.ok(Number.isNaN(distinctN([Int32Array.from([1])], 2)));
  // A token repeated: one unique unigram of ten.
  assert.equal(distinctN([new Int32Array(10).fill(5)], 1), 0.1);
});
