// Language-model measures behind the verdicts: per-window held-out NLL, and generation quality
// (the teacher's NLL of a run's own samples, distinct-n), on tiny models; and the CLI path that
// records them in results.json and prints them.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { initDevice, random, tree } from "../src/engine/index.js";
import { llama } from "../src/nn/llama.js";
import { textSource } from "../src/data/text-source.js";
import { train } from "../src/train/trainer.js";
import { lmLogits, lmMetrics } from "../src/eval/lm-metrics.js";
import { generationQuality, scoreContinuations, windowNLL } from "../src/eval/lm-quality.js";
import { generate } from "../src/nn/generate.js";
import { evalWindows } from "../src/text/corpus.js";
import { Rng } from "../src/util/rng.js";
import { runCli } from "./helpers/fixtures.js";
import { tempDir } from "./helpers/tmp.js";

before(async () => {
  await initDevice("wasm");
});

const V = 7;
const C = 12;
const ids = Int32Array.from({ length: 3000 }, (_, i) => (i * 3 + Math.floor(i / 5)) % V);
const tinyLM = (width = 16) => llama({ type: "llama", layers: 1, width, heads: 2, context: C }, V);

async function tinyTeacher() {
  const teacher = tinyLM();
  const tr = await train({
    name: "teacher",
    model: teacher,
    spec: { epochs: 1, batchSize: 8, optimizer: { name: "adamw", lr: 1e-2 }, loss: { name: "ce" } },
    data: textSource({ ids, context: C, batchSize: 8, steps: 80, seed: 0 }),
    seed: 0,
  });
  return { teacher, params: tr.params };
}

test("per-window NLL: hand example, and its mean is the held-out loss", async () => {
  // Two windows of two positions, vocabulary 2.
  const logits = Float32Array.from([0, 0, 0, Math.log(3), Math.log(3), 0, 0, 0]);
  const nll = windowNLL(logits, Int32Array.from([0, 1, 1, 0]), 2, 2);
  const r = (x: number) => Math.round(x * 1e6) / 1e6;
  assert.deepEqual(nll, [r((Math.log(2) + Math.log(4 / 3)) / 2), r((Math.log(4) + Math.log(2)) / 2)]);

  const m = tinyLM();
  const p = m.init(random.key(3));
  const ev = evalWindows(ids, C, 20);
  const lg = await lmLogits(m, p, ev.x, C);
  const w = windowNLL(lg, ev.y, V, C);
  assert.equal(w.length, 20);
  const loss = lmMetrics(lg, ev.y, V, null, false).loss;
  assert.ok(Math.abs(w.reduce((a, b) => a + b, 0) / w.length - loss) < 1e-6, `${w} vs ${loss}`);
  tree.dispose(p);
});

test("the teacher gives its own greedy continuations a lower NLL than uniform-random tokens", async () => {
  const { teacher, params } = await tinyTeacher();
  const P = 4;
  const n = 8;
  const prompts = Array.from({ length: 6 }, (_, i) => ids.slice(i * 400, i * 400 + P));
  const greedy = await generate(teacher, params, prompts, n, { temperature: 0, seed: 0 });
  const rng = new Rng(5);
  const random_ = prompts.map((p) => {
    const s = new Int32Array(P + n);
    s.set(p);
    for (let j = P; j < P + n; j++) s[j] = rng.int(V);
    return s;
  });
  const own = await scoreContinuations(teacher, params, greedy, P);
  const rand = await scoreContinuations(teacher, params, random_, P);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  assert.ok(mean(own) < 0.5 * mean(rand), `own ${mean(own)} vs random ${mean(rand)} nats/token`);
  assert.ok(mean(own) < Math.log(V) && mean(rand) > 0.5 * Math.log(V), `uniform is ${Math.log(V)}`);

  // The score is the teacher's NLL of exactly the continuation, each token given what precedes
  // it: recompute one sequence from a full forward pass over it.
  const x = new Int32Array(C);
  x.set(random_[0]);
  const lg = await lmLogits(teacher, params, x, C);
  let total = 0;
  for (let j = P; j < P + n; j++) {
    const row = Array.from(lg.subarray((j - 1) * V, j * V));
    const max = Math.max(...row);
    total += Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0)) + max - row[random_[0][j]];
  }
  assert.ok(Math.abs(total / n - rand[0]) < 1e-5, `${total / n} vs ${rand[0]}`);

  // generationQuality end to end: the teacher's own samples score lower than a fresh model's,
  // deterministic for a seed.
  const spec = { prompts: 8, promptLength: P, tokens: n, sampling: { temperature: 0.8 }, seed: 1 };
  const heldIds = ids.slice(2000);
  const self = await generationQuality(teacher, params, { model: teacher, params }, heldIds, spec);
  const fresh = tinyLM(8);
  const fp = fresh.init(random.key(9));
  const other = await generationQuality(fresh, fp, { model: teacher, params }, heldIds, spec);
  assert.equal(self.perPrompt.length, 8);
  assert.ok(self.teacherNLL < other.teacherNLL, `teacher's samples ${self.teacherNLL} vs untrained ${other.teacherNLL}`);
  assert.deepEqual(await generationQuality(teacher, params, { model: teacher, params }, heldIds, spec), self);
  for (const k of ["distinct1", "distinct2", "distinct3"] as const) assert.ok(self[k] > 0 && self[k] <= 1, `${k} ${self[k]}`);
  tree.dispose(params);
  tree.dispose(fp);
});

test("distill run on an LM recipe records per-window NLL, budgets and generation quality, and prints them", () => {
  const dir = tempDir("distill-lmq-");
  const corpus = join(dir, "corpus.txt");
  writeFileSync(corpus, "the quick brown fox jumps over the lazy dog. pack my box with five dozen liquor jugs! ".repeat(40));
  const opt = { name: "adamw", lr: 0.01 };
  const student = { type: "llama", layers: 1, width: 8, heads: 2, context: 16 };
  const recipe = {
    kind: "lm",
    name: "tiny-lmq",
    data: { corpus, tokenizer: "char", evalWindows: 8 },
    teacher: { model: { type: "llama", layers: 1, width: 16, heads: 2, context: 16 }, train: { steps: 6, batchSize: 4, optimizer: opt, loss: { name: "ce" } } },
    students: [
      { name: "scratch", role: "scratch", model: student, train: { steps: 4, batchSize: 4, optimizer: opt, loss: { name: "ce" } } },
      { name: "seqkd", role: "distilled", model: student, train: { steps: 4, batchSize: 4, optimizer: opt, loss: { name: "hinton", lambda: 0.5 }, modes: { corpus: 0.5, teacher: 0.5 } } },
    ],
    samples: { prompts: 1, promptLength: 4, tokens: 6, scoredPrompts: 5 },
  };
  const path = join(dir, "r.yaml");
  writeFileSync(path, stringify(recipe));
  const out = join(dir, "out");
  const r = runCli(["run", path, "--out", out, "-q"]);
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(readFileSync(join(out, "results.json"), "utf8"));
  for (const run of res.runs) {
    assert.equal(run.heldOutWindows.context, 16);
    assert.equal(run.heldOutWindows.nll.length, 8);
    const m = run.heldOutWindows.nll.reduce((a: number, b: number) => a + b, 0) / 8;
    assert.ok(Math.abs(m - run.metrics.loss) < 1e-5, `${run.name}: windows ${m} vs loss ${run.metrics.loss}`);
    assert.equal(run.generation.prompts, 5);
    assert.equal(run.generation.perPrompt.length, 5);
    assert.equal(run.generation.tokens, 6);
    assert.ok(run.generation.teacherNLL > 0);
    const st = run.settings;
    assert.deepEqual({ examples: st.examples, steps: st.steps, batchSize: st.batchSize, context: st.context, modes: st.modes }, { examples: run.name === "teacher" ? 24 : 16, steps: run.name === "teacher" ? 6 : 4, batchSize: 4, context: 16, modes: run.name === "seqkd" ? { corpus: 0.5, teacher: 0.5, student: 0 } : { corpus: 1, teacher: 0, student: 0 } });
  }
  assert.equal(res.runs.find((x: { name: string }) => x.name === "seqkd").teacherParams, res.runs[0].params);
  assert.match(r.stdout, /^seqkd vs scratch: held-out loss [−+]\d\.\d{4} nats\/token \(95 % CI .*paired bootstrap over 8 windows, p [=<] .*, 1 seed\): (helped|hurt|no measurable difference)\. Same budget: each trained 4 steps × 4 windows of 16 tokens \(256 tokens\); seqkd's batches: 50 % corpus windows, 50 % teacher samples\. Recovers -?\d+ % of the teacher–scratch gap at 1\/\d\.\d of the teacher's size\.$/m);
  assert.match(r.stdout, /^seqkd vs scratch on generation \(5 held-out prompts, 6 tokens each\): the teacher's NLL of the samples [−+]\d\.\d{4} nats\/token .*\. Distinct-2 \d\.\d{3} against \d\.\d{3}\.$/m);
  const html = readFileSync(join(out, "report.html"), "utf8");
  assert.match(html, /<h2>Generation quality<\/h2>/);
  assert.ok(html.includes("seqkd vs scratch on generation"));
  // `distill report` recomputes the same verdicts from results.json alone.
  const again = runCli(["report", out]);
  assert.equal(again.code, 0, again.stderr);
  const strip = (s: string) => s.replace(/ · generated [^<]*/, "");
  assert.equal(strip(readFileSync(join(out, "report.html"), "utf8")), strip(html));
  // A damaged per-window record is one line naming the field.
  res.runs[1].heldOutWindows.nll = "x";
  writeFileSync(join(out, "results.json"), JSON.stringify(res));
  const bad = runCli(["report", out]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^distill: error: .*results\.json: not a distill results file: runs\[1\]\.heldOutWindows\.nll: .*\n$/);
});
