// Verdicts from results.json alone: the test each case uses, the word it ends in, the budgets,
// the share of the teacher–scratch gap recovered and the size ratio.
import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeCorrect, encodeCorrect, lmVerdicts, verdicts } from "../src/report/verdicts.js";
import { classifierRunSettings } from "../src/pipeline.js";
import { lmSettings } from "../src/report/run-info.js";
import { trainingView } from "../src/data/datasets.js";
import { lossInfo } from "../src/losses/index.js";
import { formatLMTable, formatTable, type RunRecord } from "../src/report/results.js";
import { mcnemarExact } from "../src/eval/stats.js";
import type { Examples } from "../src/data/batches.js";

function run(name: string, role: RunRecord["role"], seed: number, accuracy: number, extra: Partial<RunRecord> = {}): RunRecord {
  return { name, role, model: "mlp", params: role === "teacher" ? 50890 : 12730, seed, metrics: { accuracy, agreement: 0.9, ece: 0.02, loss: 1 - accuracy }, seconds: 1, ...extra };
}

/** Per-example correctness of two runs on n examples: `both` right by both, then b only by A, c only by B. */
function pair(n: number, both: number, b: number, c: number): [Uint8Array, Uint8Array] {
  const a = new Uint8Array(n);
  const s = new Uint8Array(n);
  for (let i = 0; i < both; i++) a[i] = s[i] = 1;
  for (let i = both; i < both + b; i++) a[i] = 1;
  for (let i = both + b; i < both + b + c; i++) s[i] = 1;
  return [a, s];
}

const labelsOf = (n: number) => new Int32Array(n).fill(1);
const perExample = (correct: Uint8Array) => encodeCorrect(Array.from(correct, (r) => (r ? 1 : 0)), labelsOf(correct.length));

test("per-example correctness survives the base64 bitset, for any n", () => {
  for (const n of [0, 1, 7, 8, 9, 200, 10_000]) {
    const pred = Int32Array.from({ length: n }, (_, i) => (i * 7919) % 3);
    const labels = Int32Array.from({ length: n }, (_, i) => (i * 104729) % 3);
    const pe = encodeCorrect(pred, labels);
    assert.deepEqual(Array.from(decodeCorrect(pe)!), Array.from(pred, (p, i) => (p === labels[i] ? 1 : 0)), `n = ${n}`);
  }
  assert.equal(decodeCorrect({ n: 20, correct: "AA==" }), null, "too few bytes for n");
});

test("one seed: exact McNemar decides; a gain that is noise is 'no measurable difference', not 'helped'", () => {
  const n = 1000;
  // 30 examples right only by kd, 10 only by scratch: p = 0.0022.
  const [d, s] = pair(n, 800, 30, 10);
  const runs = [run("scratch", "scratch", 0, 0.81, { perExample: perExample(s) }), run("kd", "distilled", 0, 0.83, { perExample: perExample(d) })];
  const [v] = verdicts(runs);
  assert.equal(v.word, "helped");
  assert.equal(v.p, mcnemarExact(30, 10));
  assert.ok(v.p! < 0.05);
  assert.equal(v.line, "kd vs scratch: +2.00 points of test accuracy (exact McNemar p = 0.0022 on 1,000 test examples (30 right only by kd, 10 only by scratch), 1 seed): helped.");
  // The same +0.6 points from 14 against 8 discordant examples: p = 0.29.
  const [d2, s2] = pair(n, 800, 14, 8);
  const [w] = verdicts([run("scratch", "scratch", 0, 0.808, { perExample: perExample(s2) }), run("kd", "distilled", 0, 0.814, { perExample: perExample(d2) })]);
  assert.equal(w.word, "no measurable difference");
  assert.match(w.line, /\+0\.60 points .*p = 0\.286 .*: no measurable difference\.$/);
  // Swapped roles of the discordant pairs: the distilled run is worse.
  const [x] = verdicts([run("scratch", "scratch", 0, 0.83, { perExample: perExample(d) }), run("kd", "distilled", 0, 0.81, { perExample: perExample(s) })]);
  assert.equal(x.word, "hurt");
  assert.match(x.line, /-2\.00 points .*\(10 right only by kd, 30 only by scratch\).*: hurt\.$/);
});

test("one seed without per-example data (an older results.json): not tested, never 'helped'", () => {
  const [v] = verdicts([run("scratch", "scratch", 0, 0.8), run("kd", "distilled", 0, 0.9)]);
  assert.equal(v.word, "not tested");
  assert.match(v.line, /\+10\.00 points of test accuracy \(1 seed; results\.json has no per-example predictions to test it\): not tested\./);
});

test("several seeds: a t-interval of the differences paired by seed, not by position", () => {
  // scipy: t.ppf(0.975, 2) and ttest_rel on these: CI 0.048302836550431646 to 0.09569716344956826.
  const d = [0.861, 0.872, 0.868];
  const s = [0.8, 0.795, 0.79];
  // Seeds listed in different orders for the two runs.
  const runs = [
    ...[2, 0, 1].map((k) => run("scratch", "scratch", k, s[k])),
    ...[0, 1, 2].map((k) => run("kd", "distilled", k, d[k])),
  ];
  const [v] = verdicts(runs);
  assert.equal(v.word, "helped");
  assert.equal(v.seeds, 3);
  assert.ok(Math.abs(v.interval!.low - 4.8302836550431646) < 1e-7 && Math.abs(v.interval!.high - 9.569716344956826) < 1e-7, JSON.stringify(v.interval));
  assert.equal(v.line, "kd vs scratch: +7.20 points of test accuracy (95 % CI +4.83 to +9.57, 3 seeds): helped.");
  // Large seed-to-seed swings shared by both runs, a steady +1 point between them: pairing by
  // seed sees the steady gain; comparing the two means' spreads would not.
  const swing = [0.7, 0.9, 0.8];
  const paired = [...[0, 1, 2].map((k) => run("scratch", "scratch", k, swing[k])), ...[2, 1, 0].map((k) => run("kd", "distilled", k, swing[k] + 0.01 + k * 1e-4))];
  const [p] = verdicts(paired);
  assert.equal(p.word, "helped");
  assert.ok(p.interval!.low > 0.5, JSON.stringify(p.interval));
  // Two seeds that disagree: the interval spans 0.
  const [q] = verdicts([run("scratch", "scratch", 0, 0.8), run("scratch", "scratch", 1, 0.8), run("kd", "distilled", 0, 0.82), run("kd", "distilled", 1, 0.79)]);
  assert.equal(q.word, "no measurable difference");
  assert.match(q.line, /\(95 % CI -\d+\.\d\d to \+\d+\.\d\d, 2 seeds\)/);
  // The best scratch student is the one compared with.
  const [r] = verdicts([...runs, ...[0, 1, 2].map((k) => run("scratch-big", "scratch", k, 0.9))]);
  assert.equal(r.against, "scratch-big");
  assert.equal(r.word, "hurt");
});

function examples(n: number): Examples {
  return { x: new Float32Array(n), dim: 1, n, labels: Int32Array.from({ length: n }, (_, i) => i % 10), height: 1, width: 1 };
}

test("budgets as the pipeline records them: labels read, examples seen (steps × batch), epochs", () => {
  const train = examples(60_000);
  const settings = (loss: { name: string; lambda?: number }, labels: number | undefined, epochs: number) => {
    const info = lossInfo(loss);
    return classifierRunSettings(trainingView(train, labels, info.needsLabels && !info.needsTeacher), { epochs, batchSize: 128, optimizer: { name: "adam", lr: 1e-3 }, loss }, info.needsLabels, 1);
  };
  const budget = (loss: { name: string; lambda?: number }, labels: number | undefined, epochs: number) => {
    const st = settings(loss, labels, epochs);
    return { labels: st.labels, examples: st.examples, steps: st.steps, batchSize: st.batchSize, epochs: st.epochs };
  };
  // scratch on 1,000 labels for 150 epochs: 7 full batches an epoch.
  assert.deepEqual(budget({ name: "ce" }, 1000, 150), { labels: 1000, examples: 7 * 150 * 128, steps: 1050, batchSize: 128, epochs: 150 });
  // soft-kd reads no label, whatever `labels` says; it sees all 60,000 images.
  assert.deepEqual(budget({ name: "soft-kd" }, 1000, 10), { labels: 0, examples: 468 * 10 * 128, steps: 4680, batchSize: 128, epochs: 10 });
  // hinton (λ < 1) with 1,000 labels reads those 1,000 and sees every image; at λ = 1 it reads none.
  assert.equal(budget({ name: "hinton", lambda: 0.5 }, 1000, 10).labels, 1000);
  assert.equal(budget({ name: "hinton", lambda: 0.5 }, 1000, 10).examples, 468 * 10 * 128);
  assert.equal(budget({ name: "hinton", lambda: 1 }, undefined, 10).labels, 0);
  assert.equal(budget({ name: "ce" }, undefined, 10).labels, 60_000);

  const teacher = (k: number) => run("teacher", "teacher", k, 0.9, { settings: settings({ name: "ce" }, undefined, 20) });
  const runs = [0, 1, 2].flatMap((k) => [
    teacher(k),
    run("scratch-1k", "scratch", k, 0.75 + k * 0.001, { settings: settings({ name: "ce" }, 1000, 150) }),
    run("soft-kd-60k", "distilled", k, 0.85 + k * 0.002, { settings: settings({ name: "soft-kd" }, 1000, 10) }),
  ]);
  const [v] = verdicts(runs);
  assert.equal(v.budget, "Budgets differ: soft-kd-60k read 0 labels (its teacher 60,000), 599,040 examples (10 epochs); scratch-1k read 1,000 labels, 134,400 examples (150 epochs).");
  // Gap: (0.852 − 0.751) / (0.9 − 0.751) = 68 %; size 50,890 / 12,730 = 4.0.
  assert.equal(v.gap, "Recovers 68 % of the teacher–scratch gap at 1/4.0 of the teacher's size.");
  assert.ok(v.line.startsWith("soft-kd-60k vs scratch-1k: +10.10 points of test accuracy (95 % CI "), v.line);
  assert.ok(v.line.endsWith(`helped. ${v.budget} ${v.gap}`), v.line);
  // The printed table carries the same line.
  assert.ok(formatTable({ recipe: "r", device: "wasm", runs }).split("\n").includes(v.line));

  // Same budgets: said once.
  const same = [teacher(0), run("scratch", "scratch", 0, 0.8, { settings: settings({ name: "ce" }, undefined, 10) }), run("kd", "distilled", 0, 0.8, { settings: settings({ name: "hinton" }, undefined, 10) })];
  assert.equal(verdicts(same)[0].budget, "Same budget: each read 60,000 labels, 599,040 examples (10 epochs).");
});

test("gap recovered: direction-safe for losses, and a teacher no better than scratch has no gap", () => {
  const lm = (name: string, role: RunRecord["role"], loss: number, params: number): RunRecord => ({
    name, role, model: "llama", params, seed: 0, seconds: 1,
    metrics: { accuracy: 0.5, agreement: 0.5, ece: 0, loss, perplexity: Math.exp(loss) } as RunRecord["metrics"],
  });
  // Teacher 1.5, scratch 2.0, distilled 1.9: recovers 20 % (not −20 %, not 80 %).
  const [v] = lmVerdicts([lm("teacher", "teacher", 1.5, 1_000_000), lm("scratch", "scratch", 2.0, 150_000), lm("kd", "distilled", 1.9, 150_000)]);
  assert.equal(v.gap, "Recovers 20 % of the teacher–scratch gap at 1/6.7 of the teacher's size.");
  const [w] = verdicts([run("teacher", "teacher", 0, 0.8), run("scratch", "scratch", 0, 0.85), run("kd", "distilled", 0, 0.86)]);
  assert.equal(w.gap, "The teacher is no better than scratch here: no gap to recover; student at 1/4.0 of the teacher's size.");
});

/** An LM run with per-window NLLs (and optionally generation quality). */
function lmRun(name: string, role: RunRecord["role"], seed: number, nll: number[], extra: Partial<RunRecord> = {}): RunRecord {
  const loss = nll.reduce((a, b) => a + b, 0) / nll.length;
  return {
    name, role, model: "llama", params: 1000, seed, seconds: 1,
    metrics: { accuracy: 0.5, agreement: 0.5, ece: 0, loss, perplexity: Math.exp(loss) } as RunRecord["metrics"],
    heldOutWindows: { context: 64, nll },
    ...extra,
  };
}

test("LMs, one seed: paired bootstrap over held-out windows", () => {
  // Windows vary a lot (shared difficulty); the distilled run is 0.02 nats better on each, ± a little.
  const base = Array.from({ length: 200 }, (_, i) => 1.5 + Math.sin(i) * 0.5);
  const jitter = (i: number) => ((i * 37) % 11) / 1000 - 0.005;
  const scratch = lmRun("scratch", "scratch", 0, base);
  const kd = lmRun("kd", "distilled", 0, base.map((x, i) => x - 0.02 + jitter(i)));
  const [v] = lmVerdicts([scratch, kd]);
  assert.equal(v.word, "helped");
  assert.ok(v.interval!.high < 0 && v.interval!.low > -0.03, JSON.stringify(v.interval));
  assert.match(v.line, /^kd vs scratch: held-out loss −0\.02\d\d nats\/token \(95 % CI −0\.0\d+ to −0\.0\d+, paired bootstrap over 200 windows, p < 0\.001, 1 seed\): helped\.$/);
  // Differences that are pure noise around 0.
  const noisy = lmRun("kd", "distilled", 0, base.map((x, i) => x + (i % 2 ? 0.05 : -0.05)));
  assert.equal(lmVerdicts([scratch, noisy])[0].word, "no measurable difference");
  // Other windows (another context): no paired test.
  const other = lmRun("kd", "distilled", 0, base.slice(0, 100), { heldOutWindows: { context: 32, nll: base.slice(0, 100) } });
  const [o] = lmVerdicts([scratch, other]);
  assert.equal(o.word, "not tested");
  assert.match(o.line, /the runs were evaluated on different held-out windows/);
  // Deterministic: same results, same line.
  assert.equal(lmVerdicts([scratch, kd])[0].line, v.line);
});

test("LMs: budgets in windows and tokens, mixed modes named, and a generation line", () => {
  const opt = { name: "adamw" as const, lr: 0.002 };
  const plain = lmSettings({ steps: 1000, batchSize: 32, optimizer: opt, loss: { name: "ce" } }, 64, 1);
  const mixed = lmSettings({ steps: 1000, batchSize: 32, optimizer: opt, loss: { name: "hinton" }, modes: { corpus: 1, student: 1 } }, 64, 1);
  assert.deepEqual(plain.modes, { corpus: 1, teacher: 0, student: 0 });
  assert.deepEqual(mixed.modes, { corpus: 0.5, teacher: 0, student: 0.5 });
  const gen = (teacherNLL: number, perPrompt: number[], d2: number) => ({ prompts: perPrompt.length, promptLength: 24, tokens: 40, teacherNLL, perPrompt, distinct1: 0.1, distinct2: d2, distinct3: 0.7 });
  const p = Array.from({ length: 32 }, (_, i) => 2 + (i % 5) * 0.1);
  const nll = Array.from({ length: 50 }, (_, i) => 1.8 + (i % 3) * 0.1);
  const runs = [
    lmRun("teacher", "teacher", 0, nll.map((x) => x - 0.3), { generation: gen(1.2, p.map((x) => x - 0.8), 0.5) }),
    lmRun("scratch", "scratch", 0, nll, { settings: plain, generation: gen(2.2, p, 0.45) }),
    lmRun("fkl-onpolicy", "distilled", 0, nll.map((x) => x + 0.01), { settings: mixed, generation: gen(1.9, p.map((x) => x - 0.3), 0.4) }),
  ];
  const [v] = lmVerdicts(runs);
  assert.equal(v.word, "hurt");
  assert.equal(
    v.budget,
    "Same budget: each trained 1,000 steps × 32 windows of 64 tokens (2,048,000 tokens); fkl-onpolicy's batches: 50 % corpus windows, 50 % its own samples.",
  );
  // Worse on held-out loss, better on what on-policy distillation aims at.
  assert.equal(v.generation!.word, "helped");
  assert.match(v.generation!.line, /^fkl-onpolicy vs scratch on generation \(32 held-out prompts, 40 tokens each\): the teacher's NLL of the samples −0\.3000 nats\/token \(\d\.\d{4} against \d\.\d{4}; 95 % CI −0\.3000 to −0\.3000, paired bootstrap over 32 prompts, p < 0\.001, 1 seed\): helped\. Distinct-2 0\.400 against 0\.450\.$/);
  const table = formatLMTable({ recipe: "r", device: "wasm", runs });
  assert.ok(table.includes(v.line) && table.includes(v.generation!.line), table);
  assert.match(table, /sample NLL\s+distinct-1\/2\/3/);
  assert.match(table, /^fkl-onpolicy .* 1\.9000\s+0\.10\/0\.40\/0\.70 /m);
});

test("intermediate-layer terms are judged against the same model distilled from logits alone, and a null result is said", () => {
  const settings = (intermediate?: string[]) => ({ loss: "hinton", optimizer: "adamw", lr: 0.001, batchSize: 32, steps: 100, examples: 3200, epochs: 4, labels: 100, workers: 1, ...(intermediate ? { intermediate } : {}) });
  const runs: RunRecord[] = [];
  // Three seeds; kd-inter equals kd-logits up to noise, both above scratch.
  [0, 1, 2].forEach((seed, i) => {
    runs.push(run("teacher", "teacher", seed, 0.95));
    runs.push(run("scratch", "scratch", seed, 0.8 + i * 0.001, { settings: settings() }));
    runs.push(run("kd-logits", "distilled", seed, 0.9 + [0.001, -0.002, 0.001][i], { settings: settings() }));
    runs.push(run("kd-inter", "distilled", seed, 0.9 + [0.002, 0.0, -0.001][i], { settings: settings(["hidden-mse×1", "attention-kl×1"]) }));
    // Another model: never the comparison for kd-inter.
    runs.push(run("kd-big", "distilled", seed, 0.99, { model: "other", settings: settings() }));
  });
  const vs = verdicts(runs);
  const inter = vs.filter((v) => v.line.includes("intermediate-layer terms"));
  assert.equal(inter.length, 1);
  assert.equal(inter[0].name, "kd-inter");
  assert.equal(inter[0].against, "kd-logits");
  assert.equal(inter[0].word, "no measurable difference");
  assert.match(inter[0].line, /hidden-mse×1, attention-kl×1/);
  // The scratch comparisons are still there, one per distilled student.
  assert.deepEqual(vs.filter((v) => v.against === "scratch").map((v) => v.name), ["kd-logits", "kd-inter", "kd-big"]);
  // A clear gain is "helped".
  const better = runs.map((r) => (r.name === "kd-inter" ? { ...r, metrics: { ...r.metrics, accuracy: r.metrics.accuracy + 0.05 } } : r));
  assert.equal(verdicts(better).find((v) => v.line.includes("intermediate-layer"))!.word, "helped");
});
