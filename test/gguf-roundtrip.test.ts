// The GGUF round trip through the real pipeline: a teacher trained by distill, exported to GGUF,
// and distilled from as a file (llama.cpp in the adapter's child process, top-k + tail) gives the
// students the native teacher gives when the loss cuts it to the same k.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { exportGguf } from "../src/export/gguf.js";
import { loadExportable, type LMExportable } from "../src/export/exportable.js";
import { runCli } from "./helpers/fixtures.js";
import { tempDir } from "./helpers/tmp.js";

/** A tiny char-LM recipe whose students learn from the teacher's top k (+ tail). */
function roundTripRecipe(dir: string, name: string, corpus: string, k: number, teacher?: unknown): string {
  const opt = { name: "adamw", lr: 0.01 };
  const student = { type: "llama", layers: 1, width: 8, heads: 2, context: 16 };
  const loss = { name: "hinton", lambda: 1, topK: k };
  const r = {
    kind: "lm",
    name: "gguf-round-trip",
    data: { corpus, tokenizer: "char", evalWindows: 16 },
    teacher: teacher ?? { model: { type: "llama", layers: 1, width: 16, heads: 2, context: 16 }, train: { steps: 30, batchSize: 8, optimizer: opt, loss: { name: "ce" } } },
    students: [
      { name: "fkl", role: "distilled", model: student, train: { steps: 8, batchSize: 4, optimizer: opt, loss } },
      { name: "onpolicy", role: "distilled", model: student, train: { steps: 6, batchSize: 4, optimizer: opt, loss: { ...loss, lambda: 0.5 }, modes: { corpus: 0.5, student: 0.5 } } },
    ],
    samples: { prompts: 0, promptLength: 4, tokens: 6, scoredPrompts: 2 },
  };
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringify(r));
  return path;
}

test("round trip: students distilled from the teacher exported to GGUF (top-k from llama.cpp) equal those from the native teacher cut to the same k", async (t) => {
  const root = tempDir("distill-gguf-rt-");
  const corpus = join(root, "corpus");
  mkdirSync(corpus);
  writeFileSync(join(corpus, "a.txt"), "the quick brown fox jumps over the lazy dog. pack my box with five dozen liquor jugs! ".repeat(60));
  const k = 4;
  const native = join(root, "native");
  const a = runCli(["run", roundTripRecipe(root, "native", corpus, k), "--out", native, "-q"]);
  assert.equal(a.code, 0, a.stderr);
  const teacherCk = readdirSync(join(native, "seed-0")).find((f) => f.startsWith("teacher-") && f.endsWith(".safetensors"))!;
  const gguf = join(root, "teacher.gguf");
  const ex = loadExportable(join(native, "seed-0", teacherCk));
  assert.equal(ex.family, "lm");
  writeFileSync(gguf, exportGguf(ex as LMExportable, "f32"));
  const byo = join(root, "byo");
  const b = runCli(["run", roundTripRecipe(root, "byo", corpus, k, { gguf, topK: k }), "--out", byo, "-q"]);
  assert.equal(b.code, 0, b.stderr);
  const res = (out: string) => JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as { runs: { name: string; metrics: Record<string, number>; settings?: Record<string, unknown> }[] };
  const [n, f] = [res(native), res(byo)];
  for (const name of ["fkl", "onpolicy"]) {
    const x = n.runs.find((r) => r.name === name)!.metrics.loss;
    const y = f.runs.find((r) => r.name === name)!.metrics.loss;
    t.diagnostic(`${name}: held-out NLL ${x.toFixed(5)} (native, top-${k}) vs ${y.toFixed(5)} (GGUF, top-${k}): |Δ| = ${Math.abs(x - y).toExponential(2)} nats/token`);
    assert.ok(Math.abs(x - y) <= 0.02, `${name}: held-out ${x} (native) vs ${y} (GGUF) nats/token (the issue's bound)`);
    // Measured |Δ| ≤ 1e-5 (llama.cpp's log-probs are within 1e-5 of distill's): a teacher that is
    // slightly wrong (a rounding, a shifted position) would pass 0.02 after so few steps, not this.
    assert.ok(Math.abs(x - y) <= 1e-3, `${name}: held-out ${x} (native) vs ${y} (GGUF) nats/token`);
  }
  assert.equal(f.runs.find((r) => r.name === "fkl")!.settings?.topK, k, "the run records the teacher's k");
});
