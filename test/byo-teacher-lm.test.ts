// Language-model teachers from files, through the CLI: a char-LM teacher trained by distill,
// exported to ONNX, as a Hugging Face folder and as GGUF, and distilled from as a file, gives
// the students the native teacher gives (ONNX and HF within 0.005 nats, GGUF within 0.02 at the
// same k); what an external teacher cannot do is refused with one line before training.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { loadExportable } from "../src/export/exportable.js";
import { exportOnnx } from "../src/export/onnx.js";
import { exportCheckpoint } from "../src/export/index.js";
import { runCli } from "./helpers/fixtures.js";
import { checkpointOf, results, run, sha256 } from "./helpers/byo.js";
import { tempDir } from "./helpers/tmp.js";

function corpusDir(dir: string): string {
  const d = join(dir, "corpus");
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, "a.txt"), "the quick brown fox jumps over the lazy dog. pack my box with five dozen liquor jugs! ".repeat(60));
  return d;
}

/** A tiny char-LM recipe: teacher trained here, a token-level and an on-policy student, both top-4 + tail. */
function lmCliRecipe(dir: string, name: string, corpus: string, teacher?: unknown, edit?: (r: Record<string, any>) => void): string {
  const opt = { name: "adamw", lr: 0.01 };
  const student = { type: "llama", layers: 1, width: 8, heads: 2, context: 16 };
  const r: Record<string, any> = {
    kind: "lm",
    name: "byo-lm",
    data: { corpus, tokenizer: "char", evalWindows: 8 },
    teacher: teacher ?? { model: { type: "llama", layers: 1, width: 16, heads: 2, context: 16 }, train: { steps: 30, batchSize: 8, optimizer: opt, loss: { name: "ce" } } },
    students: [
      { name: "fkl", role: "distilled", model: student, train: { steps: 6, batchSize: 4, optimizer: opt, loss: { name: "hinton", lambda: 1, topK: 4 } } },
      { name: "onpolicy", role: "distilled", model: student, train: { steps: 4, batchSize: 4, optimizer: opt, loss: { name: "hinton", lambda: 0.5, topK: 4 }, modes: { corpus: 0.5, student: 0.5 } } },
    ],
    samples: { prompts: 0, promptLength: 4, tokens: 6, scoredPrompts: 0 },
  };
  edit?.(r);
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringify(r));
  return path;
}

// One native run (teacher trained here, both students) that the file teachers are compared with.
const lmDir = tempDir("distill-byo-lm-");
const lmCorpus = corpusDir(lmDir);
let lmNative: { out: string; teacher: string } | null = null;
function nativeLM(): { out: string; teacher: string; res: ReturnType<typeof results> } {
  if (!lmNative) {
    const out = join(lmDir, "native");
    const a = runCli(["run", lmCliRecipe(lmDir, "native", lmCorpus), "--out", out, "-q"]);
    assert.equal(a.code, 0, a.stderr);
    lmNative = { out, teacher: checkpointOf(out, "teacher") };
  }
  return { ...lmNative, res: results(lmNative.out) };
}

/** Runs the recipe with this file teacher and checks its students against the native ones. */
function compareStudents(t: TestContext, name: string, teacher: unknown, tol: number): ReturnType<typeof results> {
  const n = nativeLM().res;
  const out = join(lmDir, `${name}-out`);
  const r = runCli(["run", lmCliRecipe(lmDir, name, lmCorpus, teacher), "--out", out]);
  assert.equal(r.code, 0, r.stderr);
  const f = results(out);
  assert.equal(run(f, "teacher").metrics.agreement, 1);
  for (const s of ["fkl", "onpolicy"]) {
    const [x, y] = [run(n, s).metrics.loss, run(f, s).metrics.loss];
    t.diagnostic(`${s}: held-out ${x} native, ${y} from ${name} nats/token`);
    assert.ok(Math.abs(x - y) <= tol, `${s}: held-out ${x} (native) vs ${y} (${name}) nats/token`);
  }
  (f as { log?: string }).log = r.stderr + r.stdout;
  return f;
}

test("language model: students distilled from the teacher exported to ONNX equal the native teacher's (token-level and on-policy)", (t) => {
  const onnx = join(lmDir, "lm.onnx");
  writeFileSync(onnx, exportOnnx(loadExportable(nativeLM().teacher)));
  const f = compareStudents(t, "onnx", { onnx }, 0.005);
  assert.ok(Math.abs(run(f, "teacher").metrics.loss - run(nativeLM().res, "teacher").metrics.loss) < 1e-4, "the file's held-out NLL is not the native teacher's");
  assert.equal(run(f, "teacher").topKCoverage, undefined);

  // Sequence-level KD needs a teacher that generates: refused with one line before training.
  const seq = lmCliRecipe(lmDir, "seq", lmCorpus, { onnx }, (r) => (r.students[1].train.modes = { corpus: 0.5, teacher: 0.5 }));
  const c = runCli(["run", seq, "--out", join(lmDir, "seq"), "-q"]);
  assert.equal(c.code, 2, c.stderr);
  assert.match(c.stderr, /(^|\n)distill: error: students\[1\]\.train\.modes\.teacher: teacher-generated batches need a teacher that generates; teacher\.onnx [^\n]*\n$/);
  assert.ok(!existsSync(join(lmDir, "seq", "seed-0")) || readdirSync(join(lmDir, "seq", "seed-0")).length === 0, "something trained");
});

test("language model: a Hugging Face folder is distill's own Llama again: the students are the native teacher's", async (t) => {
  const hf = join(lmDir, "teacher-hf");
  await exportCheckpoint(nativeLM().teacher, "hf", { out: hf });
  const f = compareStudents(t, "hf", { hf }, 0.005);
  assert.ok(Math.abs(run(f, "teacher").metrics.loss - run(nativeLM().res, "teacher").metrics.loss) < 1e-6, "the folder's teacher is not the native one");
  const cfg = JSON.parse(readFileSync(checkpointOf(join(lmDir, "hf-out"), "fkl").replace(/\.safetensors$/, ".json"), "utf8")).config;
  assert.equal(cfg.teacher, `hf:${sha256(join(hf, "model.safetensors"))}`);
});

test("language model: from GGUF in llama.cpp (top-k only), the students match the native teacher's at the same k, and the run says top-k + tail", async (t) => {
  const gguf = join(lmDir, "teacher.gguf");
  await exportCheckpoint(nativeLM().teacher, "gguf", { out: gguf });
  const f = compareStudents(t, "gguf", { gguf, topK: 4 }, 0.02);
  assert.match((f as { log?: string }).log!, /teacher: gguf .*teacher\.gguf .*gives only its top 4 probabilities per token, so the loss runs in top-k \+ tail mode/);
  for (const s of ["fkl", "onpolicy"]) assert.equal(run(f, s).settings?.topK, 4);
  // Its own row: top-1 is exact from a top-k teacher; the NLL is an estimate where the true token
  // is not among the k, and the row says how often that is.
  const [ft, nt] = [run(f, "teacher"), run(nativeLM().res, "teacher")];
  t.diagnostic(`GGUF teacher: held-out ${ft.metrics.loss} (estimate; true token in its top 4 at ${ft.topKCoverage}) vs native ${nt.metrics.loss}; accuracy ${ft.metrics.accuracy} vs ${nt.metrics.accuracy}`);
  assert.ok(Math.abs(ft.metrics.accuracy - nt.metrics.accuracy) < 0.01);
  assert.ok(ft.topKCoverage! > 0 && ft.topKCoverage! <= 1);
  // A top-k teacher's log-probabilities are at T = 1: another temperature is refused.
  const hot = lmCliRecipe(lmDir, "hot", lmCorpus, { gguf, topK: 4 }, (r) => (r.students[0].train.loss.temperature = 2));
  const h = runCli(["run", hot, "--out", join(lmDir, "hot"), "-q"]);
  assert.equal(h.code, 2, h.stderr);
  assert.match(h.stderr, /(^|\n)distill: error: students\[0\]\.train\.loss\.temperature: 2 with a top-k teacher \(teacher\.gguf\)[^\n]*\n$/);
});

