import { before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { initDevice, random, tree } from "../src/engine/index.js";
import { llama } from "../src/nn/llama.js";
import { modeOf, textSource } from "../src/data/text-source.js";
import { modelTextSource } from "../src/teachers/generated.js";
import { train } from "../src/train/trainer.js";
import { lmLogits, lmMetrics } from "../src/eval/lm-metrics.js";
import { evalWindows } from "../src/text/corpus.js";
import { runCli } from "./helpers/fixtures.js";
import { paramsToHost } from "../src/checkpoint/params.js";
import { tempDir } from "./helpers/tmp.js";

before(async () => {
  await initDevice("wasm");
});

const V = 7;
const ids = Int32Array.from({ length: 3000 }, (_, i) => (i * 3 + Math.floor(i / 5)) % V);
const tinyLM = (layers = 1, width = 16) => llama({ type: "llama", layers, width, heads: 2, context: 12 }, V);

test("corpus batches: fixed shapes, next-token labels, deterministic per (seed, step)", async () => {
  const m = tinyLM();
  const src = textSource({ ids, context: 12, batchSize: 4, steps: 10, seed: 1 });
  const p = m.init(random.key(0));
  const a = await src.batch(0, 3, p);
  assert.deepEqual(a.xShape, [4, 12]);
  for (let b = 0; b < 4; b++) for (let t = 0; t < 11; t++) assert.equal(a.labels![b * 12 + t], a.x[b * 12 + t + 1]);
  assert.ok(a.mask!.every((v) => v === 1));
  assert.deepEqual((await src.batch(0, 3, p)).x, a.x);
  assert.notDeepEqual((await src.batch(0, 4, p)).x, a.x);
  tree.dispose(p);
});

test("generated batches: sequence-level KD trains on the teacher's tokens; on-policy only through the divergence", async () => {
  const teacher = tinyLM(1, 16);
  const student = tinyLM(1, 8);
  const tp = teacher.init(random.key(1));
  const sp = student.init(random.key(2));
  const counts = { corpus: 0, teacher: 0, student: 0 };
  const P = 5;
  const mk = (modes: Record<string, number>) =>
    modelTextSource({ ids, context: 12, batchSize: 3, steps: 10, seed: 2, modes, promptLength: P, teacher: { model: teacher, params: tp }, student, counts });
  const t = await mk({ teacher: 1 }).batch(0, 0, sp);
  const s = await mk({ student: 1 }).batch(0, 0, sp);
  for (let b = 0; b < 3; b++) {
    for (let i = 0; i < 12; i++) {
      const trained = i >= P - 1 && i < 11;
      assert.equal(t.mask![b * 12 + i], trained ? 1 : 0);
      assert.equal(s.mask![b * 12 + i], trained ? 1 : 0);
      assert.equal(t.labels![b * 12 + i], trained ? t.x[b * 12 + i + 1] : -1);
      assert.equal(s.labels![b * 12 + i], -1);
    }
  }
  assert.deepEqual(counts, { corpus: 0, teacher: 1, student: 1 });
  // Mixing by fraction: about half corpus, a quarter each of the others.
  const n = { corpus: 0, teacher: 0, student: 0 };
  for (let i = 0; i < 2000; i++) n[modeOf({ corpus: 2, teacher: 1, student: 1 }, 0, i)]++;
  assert.ok(Math.abs(n.corpus - 1000) < 100 && Math.abs(n.teacher - 500) < 80 && Math.abs(n.student - 500) < 80, JSON.stringify(n));
  tree.dispose(tp);
  tree.dispose(sp);
});

/** A 1-layer, width-16 teacher trained for 80 steps on the corpus. */
async function tinyTeacher(workers = 1) {
  const teacher = tinyLM(1, 16);
  const tr = await train({
    name: "teacher",
    model: teacher,
    spec: { epochs: 1, batchSize: 8, optimizer: { name: "adamw", lr: 1e-2 }, loss: { name: "ce" } },
    data: textSource({ ids, context: 12, batchSize: 8, steps: 80, seed: 0 }),
    seed: 0,
    workers,
  });
  return { teacher, tr };
}

test("an LM student distils from its teacher with all three modes mixed, and learns", async () => {
  const { teacher, tr } = await tinyTeacher();
  const student = tinyLM(1, 8);
  const counts = { corpus: 0, teacher: 0, student: 0 };
  const r = await train({
    name: "student",
    model: student,
    spec: { epochs: 1, batchSize: 8, optimizer: { name: "adamw", lr: 1e-2 }, loss: { name: "hinton", divergence: "jsd", beta: 0.5, lambda: 0.5, temperature: 1 } },
    data: modelTextSource({ ids, context: 12, batchSize: 8, steps: 30, seed: 0, modes: { corpus: 1, teacher: 1, student: 1 }, teacher: { model: teacher, params: tr.params }, student, counts }),
    seed: 0,
    teacher: { model: teacher, params: tr.params },
    logEvery: 10,
  });
  assert.equal(r.status, "done");
  assert.ok(counts.corpus > 0 && counts.teacher > 0 && counts.student > 0, JSON.stringify(counts));
  const ev = evalWindows(ids, 12, 20);
  const tm = lmMetrics(await lmLogits(teacher, tr.params, ev.x, 12), ev.y, V, null, true);
  const sm = lmMetrics(await lmLogits(student, r.params, ev.x, 12), ev.y, V, null, true);
  assert.ok(tm.loss < Math.log(V) * 0.6, `teacher ${tm.loss} nats/token vs uniform ${Math.log(V)}`);
  assert.ok(sm.loss < Math.log(V) * 0.9, `student ${sm.loss}`);
  assert.ok(Math.abs(tm.perplexity - Math.exp(tm.loss)) < 1e-9);
  assert.ok(Math.abs(tm.bitsPerChar! - tm.loss / Math.LN2) < 1e-9);
  tree.dispose(tr.params);
  tree.dispose(r.params);
});

test("lmMetrics on a hand example: loss, perplexity, accuracy, agreement", () => {
  // Two positions, vocabulary 2: uniform logits then confident-right logits.
  const logits = Float32Array.from([0, 0, 0, Math.log(3)]);
  const m = lmMetrics(logits, Int32Array.from([0, 1]), 2, Int32Array.from([1, 1]), false);
  const loss = (Math.log(2) + Math.log(4 / 3)) / 2;
  assert.ok(Math.abs(m.loss - loss) < 1e-6);
  assert.ok(Math.abs(m.perplexity - Math.exp(loss)) < 1e-6);
  assert.equal(m.accuracy, 1); // argmax of a tie is the first class
  assert.equal(m.agreement, 0.5);
  assert.equal(m.bitsPerChar, undefined);
});

// --- CLI: the language-model path and its bad inputs -------------------------------------

function lmRecipe(dir: string, corpus: string, edit?: (r: Record<string, any>) => void): string {
  const opt = { name: "adamw", lr: 0.01 };
  const r: Record<string, any> = {
    kind: "lm",
    name: "tiny-lm",
    data: { corpus, tokenizer: "char", evalWindows: 8 },
    teacher: { model: { type: "llama", layers: 1, width: 16, heads: 2, context: 16 }, train: { steps: 6, batchSize: 4, optimizer: opt, loss: { name: "ce" } } },
    students: [
      { name: "scratch", role: "scratch", model: { type: "llama", layers: 1, width: 8, heads: 2, context: 16 }, train: { steps: 4, batchSize: 4, optimizer: opt, loss: { name: "ce" } } },
      { name: "fkl", role: "distilled", model: { type: "llama", layers: 1, width: 8, heads: 2, context: 16 }, train: { steps: 4, batchSize: 4, optimizer: opt, loss: { name: "hinton", lambda: 1, topK: 4 } } },
    ],
    samples: { prompts: 1, promptLength: 4, tokens: 6 },
  };
  edit?.(r);
  const path = join(dir, `recipe-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(path, stringify(r));
  return path;
}

function textDir(dir: string): string {
  const d = join(dir, "corpus");
  mkdirSync(join(d, "sub"), { recursive: true });
  writeFileSync(join(d, "a.txt"), "the quick brown fox jumps over the lazy dog. ".repeat(40));
  writeFileSync(join(d, "sub", "b.txt"), "pack my box with five dozen liquor jugs! ".repeat(40));
  return d;
}

test("distill run on a language-model recipe: table, samples, results with perplexity; teacher reused by a second recipe via its checkpoint", () => {
  const dir = tempDir("distill-lm-");
  const corpus = textDir(dir);
  const out = join(dir, "out");
  const r = runCli(["run", lmRecipe(dir, corpus), "--out", out, "-q"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /loss nats\/tok/);
  assert.match(r.stdout, /^fkl vs scratch: held-out loss [−+]\d/m);
  assert.match(r.stdout, /^sample teacher seed 0: /m);
  const res = JSON.parse(readFileSync(join(out, "results.json"), "utf8"));
  assert.deepEqual(res.runs.map((x: { name: string }) => x.name), ["teacher", "scratch", "fkl"]);
  for (const run of res.runs) {
    assert.ok(run.metrics.loss > 0 && Math.abs(run.metrics.perplexity - Math.exp(run.metrics.loss)) < 1e-9);
    assert.ok(run.metrics.agreement >= 0 && run.metrics.agreement <= 1);
  }
  assert.equal(res.samples.length, 3);

  // A teacher checkpoint from this run, used by another recipe with another tokenizer: refused.
  const teacherCkpt = join(out, "seed-0", readdirSync(join(out, "seed-0")).find((f) => /^teacher-.*\.safetensors$/.test(f))!);
  const bytes = runCli(["run", lmRecipe(dir, corpus, (x) => {
    x.teacher = { checkpoint: teacherCkpt };
    x.data.tokenizer = "byte";
  }), "--out", join(dir, "out2"), "-q"]);
  assert.equal(bytes.code, 2, bytes.stderr);
  assert.match(bytes.stderr, /^distill: error: .*teacher .*vocabulary has \d+ tokens, student 256: they must match\n$/);
  // Same tokenizer: the checkpoint serves as the teacher.
  const same = runCli(["run", lmRecipe(dir, corpus, (x) => (x.teacher = { checkpoint: teacherCkpt })), "--out", join(dir, "out3"), "-q"]);
  assert.equal(same.code, 0, same.stderr);
});

test("LM bad input: empty corpus, context longer than the teacher's, top-k above the vocabulary", () => {
  const dir = tempDir("distill-lmbad-");
  const empty = join(dir, "empty");
  mkdirSync(empty);
  writeFileSync(join(empty, "x.dat"), Buffer.from([0, 1, 2, 0]));
  const e1 = runCli(["run", lmRecipe(dir, empty), "--out", join(dir, "o1"), "-q"]);
  assert.equal(e1.code, 2);
  assert.match(e1.stderr, /^distill: error: .*empty: no readable text\n$/);

  const corpus = textDir(dir);
  const e2 = runCli(["run", lmRecipe(dir, corpus, (x) => (x.students[0].model.context = 32)), "--out", join(dir, "o2"), "-q"]);
  assert.equal(e2.code, 2);
  assert.match(e2.stderr, /students\[0\]\.model\.context: 32 is longer than the teacher's context of 16/);

  const e3 = runCli(["run", lmRecipe(dir, corpus, (x) => (x.students[1].train.loss.topK = 500)), "--out", join(dir, "o3"), "-q"]);
  assert.equal(e3.code, 2);
  assert.match(e3.stderr, /topK: 500 is larger than the vocabulary of \d+ tokens/);
});

test("an LM student on two replicas: on-policy batches read the shared parameters; deterministic and learns", async () => {
  const { teacher, tr } = await tinyTeacher(2);
  const student = tinyLM(1, 8);
  const run = async () => {
    const counts = { corpus: 0, teacher: 0, student: 0 };
    const r = await train({
      name: "student",
      model: student,
      spec: { epochs: 1, batchSize: 8, optimizer: { name: "adamw", lr: 1e-2 }, loss: { name: "hinton", divergence: "forward-kl", lambda: 0.5, temperature: 1 } },
      data: modelTextSource({ ids, context: 12, batchSize: 8, steps: 30, seed: 0, modes: { corpus: 1, student: 1 }, teacher: { model: teacher, params: tr.params }, student, counts }),
      seed: 0,
      teacher: { model: teacher, params: tr.params },
      workers: 2,
    });
    assert.ok(counts.student > 0 && counts.corpus > 0, JSON.stringify(counts));
    return r;
  };
  const a = await run();
  const b = await run();
  const flat = async (p: typeof a.params) => Object.values(await paramsToHost(p)).flatMap((t) => Array.from(t.data as Float32Array));
  assert.deepEqual(await flat(a.params), await flat(b.params));
  const ev = evalWindows(ids, 12, 20);
  const sm = lmMetrics(await lmLogits(student, a.params, ev.x, 12), ev.y, V, null, true);
  assert.ok(sm.loss < Math.log(V) * 0.9, `student ${sm.loss}`);
  for (const p of [tr.params, a.params, b.params]) tree.dispose(p);
});
