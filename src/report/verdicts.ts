// Verdicts: each distilled student against the best scratch student, with the noise around the
// difference, what each run was given (labels, examples, epochs), the share of the
// teacher–scratch gap recovered and the size ratio. Everything here is computed from the runs
// of results.json alone, so `distill report` (and a merge of runs) recomputes the same lines.
//
// The rule, at α = 0.05:
// - several seeds in common: the 95 % t-interval of the per-seed paired difference. Pairing by
//   seed is the honest noise for "does this recipe help": it includes initialisation and data
//   order, which a test on one seed's test set cannot see. (Pooling the seeds' per-example
//   data would only measure test-set noise, so it is not done.)
// - one seed: a paired test on that seed's test set: exact McNemar on the per-example
//   correctness for classifiers, a paired bootstrap over held-out windows for language models.
// - "helped" / "hurt" when the interval excludes 0 (or p < α) on the better / worse side;
//   "no measurable difference" otherwise; "not tested" when results.json lacks the data.
import { ALPHA, discordant, mcnemarExact, mean, pairedBootstrap, pairedTInterval, type Interval } from "../eval/stats.js";
import type { RunRecord } from "./results.js";


/** Per-example test correctness of one classifier run: a bitset, bit i = example i right. */
export interface PerExample {
  n: number;
  /** base64 of ⌈n/8⌉ bytes, least significant bit first. */
  correct: string;
}

/** Mean NLL (nats/token) of each held-out window, in window order; same windows for a context. */
export interface HeldOutWindows {
  context: number;
  nll: number[];
}

/** Generation quality of a language model: its own samples from held-out prompts. */
export interface Generation {
  prompts: number;
  promptLength: number;
  tokens: number;
  /** The teacher's mean NLL (nats/token) of the sampled continuations. */
  teacherNLL: number;
  /** The same, per prompt (paired across runs: every run gets the same prompts). */
  perPrompt: number[];
  distinct1: number;
  distinct2: number;
  distinct3: number;
}

export function encodeCorrect(predicted: ArrayLike<number>, labels: ArrayLike<number>): PerExample {
  const n = labels.length;
  const bits = new Uint8Array(Math.ceil(n / 8));
  for (let i = 0; i < n; i++) if (predicted[i] === labels[i]) bits[i >> 3] |= 1 << (i & 7);
  return { n, correct: Buffer.from(bits).toString("base64") };
}

/** The bitset back as 0/1 per example; null when it does not hold n bits. */
export function decodeCorrect(p: PerExample): Uint8Array | null {
  const bits = Buffer.from(p.correct, "base64");
  if (!Number.isInteger(p.n) || p.n < 0 || bits.length !== Math.ceil(p.n / 8)) return null;
  const out = new Uint8Array(p.n);
  for (let i = 0; i < p.n; i++) out[i] = (bits[i >> 3] >> (i & 7)) & 1;
  return out;
}

export type VerdictWord = "helped" | "hurt" | "no measurable difference" | "not tested";

export interface Verdict {
  name: string;
  against: string;
  /** Distilled minus scratch, in display units (points of accuracy, or nats/token). */
  diff: number;
  /** Whether a larger value is better (accuracy) or a smaller one (loss). */
  higherIsBetter: boolean;
  unit: string;
  word: VerdictWord;
  /** 95 % interval of the difference, in display units (several seeds, or the LM bootstrap). */
  interval?: Interval;
  /** Two-sided p-value of "no difference". */
  p?: number;
  /** Seeds both runs have. */
  seeds: number;
  /** "A vs B: difference (noise): word." */
  head: string;
  /** What each run was given; "" when results.json does not say. */
  budget: string;
  /** Share of the teacher–scratch gap recovered and the size ratio; "" when unknown. */
  gap: string;
  /** The whole line: head, budget and gap. */
  line: string;
  /** Language models: the same comparison on generation quality, when both runs have it. */
  generation?: { word: VerdictWord; line: string };
}

const thousands = (x: number) => Math.round(x).toLocaleString("en-US");

function signed(x: number, digits: number, minus = "-"): string {
  return `${x >= 0 ? "+" : minus}${Math.abs(x).toFixed(digits)}`;
}

export function formatP(p: number): string {
  return p < 0.001 ? "p < 0.001" : `p = ${p < 0.01 ? p.toFixed(4) : p.toFixed(3)}`;
}

/** A measure on which runs are compared. */
interface Measure {
  value(r: RunRecord): number | undefined;
  higherIsBetter: boolean;
  /** Display units per measure unit (100 for points). */
  scale: number;
  digits: number;
  unit: string;
  /** "−" for LM losses (typographic minus, as the page has always shown them). */
  minus: string;
  /** The one-seed paired test on per-item data; null when the runs lack it. */
  oneSeed(a: RunRecord, b: RunRecord): { interval?: Interval; p: number; what: string } | { missing: string };
}

const ACCURACY: Measure = {
  value: (r) => r.metrics.accuracy,
  higherIsBetter: true,
  scale: 100,
  digits: 2,
  unit: "points of test accuracy",
  minus: "-",
  oneSeed(a, b) {
    const ca = a.perExample && decodeCorrect(a.perExample);
    const cb = b.perExample && decodeCorrect(b.perExample);
    if (!ca || !cb) return { missing: "results.json has no per-example predictions to test it" };
    if (ca.length !== cb.length) return { missing: `the runs were tested on ${ca.length} and ${cb.length} examples` };
    const { b: only, c } = discordant(ca, cb);
    const p = mcnemarExact(only, c);
    return { p, what: `exact McNemar ${formatP(p)} on ${thousands(ca.length)} test examples (${only} right only by ${a.name}, ${c} only by ${b.name})` };
  },
};

const BOOTSTRAP_RESAMPLES = 2000;

const HELD_OUT: Measure = {
  value: (r) => r.metrics.loss,
  higherIsBetter: false,
  scale: 1,
  digits: 4,
  unit: "nats/token",
  minus: "−",
  oneSeed(a, b) {
    const wa = a.heldOutWindows;
    const wb = b.heldOutWindows;
    if (!wa || !wb) return { missing: "results.json has no per-window losses to test it" };
    if (wa.context !== wb.context || wa.nll.length !== wb.nll.length) return { missing: "the runs were evaluated on different held-out windows" };
    const iv = pairedBootstrap(wa.nll.map((x, i) => x - wb.nll[i]), { resamples: BOOTSTRAP_RESAMPLES, seed: a.seed });
    return { interval: iv, p: iv.p!, what: `paired bootstrap over ${thousands(wa.nll.length)} windows, ${formatP(iv.p!)}` };
  },
};

const GENERATION: Measure = {
  value: (r) => r.generation?.teacherNLL,
  higherIsBetter: false,
  scale: 1,
  digits: 4,
  unit: "nats/token",
  minus: "−",
  oneSeed(a, b) {
    const pa = a.generation?.perPrompt;
    const pb = b.generation?.perPrompt;
    if (!pa || !pb || pa.length !== pb.length || pa.length === 0) return { missing: "the runs were not scored on the same prompts" };
    const iv = pairedBootstrap(pa.map((x, i) => x - pb[i]), { resamples: BOOTSTRAP_RESAMPLES, seed: a.seed });
    return { interval: iv, p: iv.p!, what: `paired bootstrap over ${pa.length} prompts, ${formatP(iv.p!)}` };
  },
};

const bySeed = (runs: RunRecord[], name: string) => new Map(runs.filter((r) => r.name === name).map((r) => [r.seed, r]));

function meanOf(runs: RunRecord[], name: string, m: Measure): number {
  return mean(runs.filter((r) => r.name === name).map((r) => m.value(r)).filter((v): v is number => typeof v === "number" && Number.isFinite(v)));
}

/** Difference, noise and word of run `d` against run `s` on measure `m`. */
function compare(runs: RunRecord[], d: string, s: string, m: Measure): { diff: number; word: VerdictWord; interval?: Interval; p?: number; seeds: number; noise: string } {
  const dr = bySeed(runs, d);
  const sr = bySeed(runs, s);
  const seeds = [...dr.keys()].filter((k) => sr.has(k) && m.value(dr.get(k)!) !== undefined && m.value(sr.get(k)!) !== undefined);
  const seedText = (k: number) => `${k} seed${k === 1 ? "" : "s"}`;
  const fmt = (x: number) => signed(x * m.scale, m.digits, m.minus);
  const judge = (lo: number, hi: number): VerdictWord => {
    const better = m.higherIsBetter ? lo > 0 : hi < 0;
    const worse = m.higherIsBetter ? hi < 0 : lo > 0;
    return better ? "helped" : worse ? "hurt" : "no measurable difference";
  };
  if (seeds.length === 0) {
    return { diff: (meanOf(runs, d, m) - meanOf(runs, s, m)) * m.scale, word: "not tested", seeds: 0, noise: "no seed in common" };
  }
  const a = seeds.map((k) => m.value(dr.get(k)!)!);
  const b = seeds.map((k) => m.value(sr.get(k)!)!);
  if (seeds.length >= 2) {
    const iv = pairedTInterval(a, b);
    const scaled = { ...iv, mean: iv.mean * m.scale, low: iv.low * m.scale, high: iv.high * m.scale };
    return { diff: scaled.mean, word: judge(iv.low, iv.high), interval: scaled, p: iv.p, seeds: seeds.length, noise: `95 % CI ${fmt(iv.low)} to ${fmt(iv.high)}, ${seedText(seeds.length)}` };
  }
  const diff = (a[0] - b[0]) * m.scale;
  const t = m.oneSeed(dr.get(seeds[0])!, sr.get(seeds[0])!);
  if ("missing" in t) return { diff, word: "not tested", seeds: 1, noise: `1 seed; ${t.missing}` };
  const sig = t.p < ALPHA;
  const word: VerdictWord = !sig || diff === 0 ? "no measurable difference" : (diff > 0) === m.higherIsBetter ? "helped" : "hurt";
  const ci = t.interval ? `95 % CI ${fmt(t.interval.low)} to ${fmt(t.interval.high)}, ` : "";
  const scaled = t.interval && { ...t.interval, mean: diff, low: t.interval.low * m.scale, high: t.interval.high * m.scale };
  return { diff, word, interval: scaled, p: t.p, seeds: 1, noise: `${ci}${t.what}, 1 seed` };
}

/** "fkl-seqkd's batches: 50 % corpus windows, 50 % teacher samples"; "" for corpus only. */
function modesText(r: RunRecord): string {
  const m = r.settings?.modes;
  if (!m || m.corpus === 1) return "";
  const parts = [
    m.corpus > 0 ? `${Math.round(m.corpus * 100)} % corpus windows` : "",
    m.teacher > 0 ? `${Math.round(m.teacher * 100)} % teacher samples` : "",
    m.student > 0 ? `${Math.round(m.student * 100)} % its own samples` : "",
  ].filter(Boolean);
  return `${r.name}'s batches: ${parts.join(", ")}`;
}

/** What run `r` was given, in words; "" when results.json does not say. */
function given(r: RunRecord | undefined, teacher: RunRecord | undefined): string {
  const b = r?.settings;
  if (!b) return "";
  if (b.context !== undefined) return `${thousands(b.steps)} steps × ${thousands(b.batchSize)} windows of ${b.context} tokens (${thousands(b.examples * b.context)} tokens)`;
  const tl = r!.role === "distilled" && teacher?.settings?.labels !== undefined ? ` (its teacher ${thousands(teacher.settings.labels)})` : "";
  const labels = b.labels !== undefined ? `${thousands(b.labels)} label${b.labels === 1 ? "" : "s"}${tl}, ` : "";
  const epochs = b.epochs !== undefined ? ` (${thousands(b.epochs)} epoch${b.epochs === 1 ? "" : "s"})` : "";
  return `${labels}${thousands(b.examples)} examples${epochs}`;
}

/**
 * What each run was given, said plainly when it differs (the scarce-labels recipes compare
 * unequal budgets on purpose). For language models, where the batches came from is stated
 * beside the budget: a generated batch costs the same steps but is other data.
 */
function budgetSentence(d: RunRecord | undefined, s: RunRecord | undefined, teacher: RunRecord | undefined, lm: boolean): string {
  const gd = given(d, teacher);
  const gs = given(s, teacher);
  if (!gd || !gs) return "";
  const verb = lm ? "trained" : "read";
  const sources = [modesText(d!), modesText(s!)].filter(Boolean).join("; ");
  const tail = sources ? `; ${sources}.` : ".";
  if (given(d, undefined) === given(s, undefined)) return `Same budget: each ${verb} ${gs}${tail}`;
  return `Budgets differ: ${d!.name} ${verb} ${gd}; ${s!.name} ${verb} ${gs}${tail}`;
}

/** "Recovers 84 % of the teacher–scratch gap at 1/5.3 of the teacher's size." */
function gapSentence(runs: RunRecord[], d: string, s: string, m: Measure): string {
  const teacher = runs.find((r) => r.role === "teacher");
  const dr = runs.find((r) => r.name === d)!;
  const tParams = teacher?.params ?? dr.teacherParams;
  const size = tParams && dr.params ? ` at 1/${(tParams / dr.params).toFixed(1)} of the teacher's size` : "";
  if (!teacher) return size ? ` Student${size}.` : "";
  const t = meanOf(runs, teacher.name, m);
  const sv = meanOf(runs, s, m);
  const dv = meanOf(runs, d, m);
  const gap = t - sv;
  if (!(m.higherIsBetter ? gap > 0 : gap < 0)) return ` The teacher is no better than ${s} here: no gap to recover${size ? `; student${size}` : ""}.`;
  return ` Recovers ${Math.round(((dv - sv) / gap) * 100)} % of the teacher–scratch gap${size}.`;
}

/** The scratch run with the best mean on `m`, or null. */
function bestScratch(runs: RunRecord[], m: Measure): string | null {
  const names = [...new Set(runs.filter((r) => r.role === "scratch").map((r) => r.name))];
  if (names.length === 0) return null;
  const better = (a: number, b: number) => (m.higherIsBetter ? a > b : a < b);
  return names.reduce((a, b) => (better(meanOf(runs, b, m), meanOf(runs, a, m)) ? b : a));
}

function judgeAll(runs: RunRecord[], m: Measure, what: string, lm: boolean): Verdict[] {
  const best = bestScratch(runs, m);
  if (!best) return [];
  const teacher = runs.find((r) => r.role === "teacher");
  const distilled = [...new Set(runs.filter((r) => r.role === "distilled").map((r) => r.name))];
  return distilled.map((name) => {
    const c = compare(runs, name, best, m);
    const dr = runs.find((r) => r.name === name);
    const sr = runs.find((r) => r.name === best);
    const diffText = `${signed(c.diff, m.digits, m.minus)} ${m.unit}`;
    const head = `${name} vs ${best}: ${what}${diffText} (${c.noise}): ${c.word}.`;
    const budget = budgetSentence(dr, sr, teacher, lm);
    const gap = gapSentence(runs, name, best, m).trim();
    const line = [head, budget, gap].filter(Boolean).join(" ");
    let generation: Verdict["generation"];
    if (lm && runs.some((r) => r.name === name && r.generation) && runs.some((r) => r.name === best && r.generation)) {
      const g = compare(runs, name, best, GENERATION);
      const dist = (n: string, k: 1 | 2 | 3) => mean(runs.filter((r) => r.name === n && r.generation).map((r) => r.generation![`distinct${k}`]));
      const gen = dr?.generation;
      const what2 = gen ? `${gen.prompts} held-out prompts, ${gen.tokens} tokens each` : "";
      generation = {
        word: g.word,
        line:
          `${name} vs ${best} on generation (${what2}): the teacher's NLL of the samples ${signed(g.diff, 4, "−")} nats/token ` +
          `(${meanOf(runs, name, GENERATION).toFixed(4)} against ${meanOf(runs, best, GENERATION).toFixed(4)}; ${g.noise}): ${g.word}. ` +
          `Distinct-2 ${dist(name, 2).toFixed(3)} against ${dist(best, 2).toFixed(3)}.`,
      };
    }
    return { name, against: best, diff: c.diff, higherIsBetter: m.higherIsBetter, unit: m.unit, word: c.word, interval: c.interval, p: c.p, seeds: c.seeds, head, budget, gap, line, generation };
  });
}

/**
 * Classifiers: each distilled student against the scratch student with the best mean accuracy;
 * then each student trained with intermediate-layer terms against the best student of the same
 * model distilled from the logits alone, which is what those terms added (or did not).
 */
export function verdicts(runs: RunRecord[]): Verdict[] {
  return [...judgeAll(runs, ACCURACY, "", false), ...intermediateVerdicts(runs)];
}

function intermediateVerdicts(runs: RunRecord[]): Verdict[] {
  const m = ACCURACY;
  const distilled = runs.filter((r) => r.role === "distilled");
  const names = (f: (r: RunRecord) => boolean) => [...new Set(distilled.filter(f).map((r) => r.name))];
  return names((r) => (r.settings?.intermediate?.length ?? 0) > 0).flatMap((name) => {
    const dr = runs.find((r) => r.name === name)!;
    const plain = names((r) => !r.settings?.intermediate?.length && r.settings !== undefined && r.model === dr.model);
    if (plain.length === 0) return [];
    const against = plain.reduce((a, b) => (meanOf(runs, b, m) > meanOf(runs, a, m) ? b : a));
    const c = compare(runs, name, against, m);
    const head = `${name} vs ${against}, what the intermediate-layer terms (${dr.settings!.intermediate!.join(", ")}) added: ${signed(c.diff, m.digits, m.minus)} ${m.unit} (${c.noise}): ${c.word}.`;
    const budget = budgetSentence(dr, runs.find((r) => r.name === against), undefined, false);
    const line = [head, budget].filter(Boolean).join(" ");
    return [{ name, against, diff: c.diff, higherIsBetter: m.higherIsBetter, unit: m.unit, word: c.word, interval: c.interval, p: c.p, seeds: c.seeds, head, budget, gap: "", line }];
  });
}

/** Language models: by held-out loss (lower is better), and by generation quality when recorded. */
export function lmVerdicts(runs: RunRecord[]): Verdict[] {
  return judgeAll(runs, HELD_OUT, "held-out loss ", true);
}
