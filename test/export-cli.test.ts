// `distill export` end to end: the real CLI in a child process on tiny checkpoints (a random
// MLP classifier and a random Llama LM, saved as distill saves them), each output read back by
// another reader: onnxruntime-node for ONNX, distill's HF loader for the folder, the GGUF magic
// and tensor count for GGUF, the folder's page for web.
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { initDevice, random, tree } from "../src/engine/index.js";
import { saveCheckpoint } from "../src/checkpoint/checkpoint.js";
import { paramsToHost } from "../src/checkpoint/params.js";
import { buildModel } from "../src/nn/models.js";
import { llama } from "../src/nn/llama.js";
import { charTokenizer } from "../src/text/tokenizer.js";
import { loadHfTeacher } from "../src/teachers/hf.js";
import { REPO_ROOT, runCli, snapshot, type CliResult } from "./helpers/fixtures.js";
import { tempDir } from "./helpers/tmp.js";

const FAULT = join(REPO_ROOT, "test/helpers/fs-fault.mjs");
const INPUT = { height: 28, width: 28, channels: 1, classes: 10 };
const CORPUS = "the cat sat on the mat; the dog ate the hat.\n";

let tmp = "";
let lmCkpt = "";
let clsCkpt = "";

before(async () => {
  await initDevice("wasm");
  tmp = tempDir("distill-export-cli-");
  const cls = buildModel({ type: "mlp", hidden: [8] }, INPUT);
  const cp = cls.init(random.key(0));
  clsCkpt = join(tmp, "ckpt", "student-mlp.safetensors");
  mkdirSync(join(tmp, "ckpt"));
  saveCheckpoint(clsCkpt, { tensors: await paramsToHost(cp), config: { role: "scratch", model: { type: "mlp", hidden: [8] }, input: INPUT, data: { dataset: "fashion-mnist" } }, state: { done: true } });
  tree.dispose(cp);
  const tok = charTokenizer(CORPUS);
  const spec = { type: "llama" as const, layers: 1, width: 16, heads: 2, context: 32 };
  const lm = llama(spec, tok.vocabSize);
  const lp = lm.init(random.key(1));
  lmCkpt = join(tmp, "ckpt", "student-lm.safetensors");
  saveCheckpoint(lmCkpt, { tensors: await paramsToHost(lp), config: { role: "scratch", model: spec, tokenizer: tok.toJSON() }, state: { done: true } });
  tree.dispose(lp);
});

const ok = (r: CliResult) => assert.equal(r.code, 0, `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);

/** Exit 2, nothing on stdout, one stderr line `distill: error: ...` containing each part. */
function userError(r: CliResult, ...parts: (string | RegExp)[]): void {
  const detail = `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
  assert.equal(r.code, 2, detail);
  assert.equal(r.stdout, "", detail);
  const lines = r.stderr.replace(/\n$/, "").split("\n");
  assert.equal(lines.length, 1, detail);
  assert.match(lines[0], /^distill: error: /);
  for (const p of parts) assert.ok(typeof p === "string" ? lines[0].includes(p) : p.test(lines[0]), `${lines[0]} should mention ${p}`);
}

/** "wrote PATH (SIZE)" and PATH's size in bytes matches what was printed (when under 1 MiB, exactly). */
function wrote(r: CliResult, path: string): void {
  ok(r);
  assert.match(r.stdout, new RegExp(`^wrote ${path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} \\(\\d`, "m"));
}

let n = 0;
const fresh = (name: string) => join(tmp, `${name}-${n++}`);

describe("each format writes what it should", () => {
  test("onnx, default path beside the checkpoint: onnxruntime-node opens it with optimum's names", async () => {
    for (const [ckpt, inputs] of [
      [clsCkpt, ["pixel_values"]],
      [lmCkpt, ["input_ids", "attention_mask"]],
    ] as const) {
      const r = runCli(["export", ckpt, "--format", "onnx"]);
      const out = ckpt.replace(/\.safetensors$/, ".onnx");
      wrote(r, out);
      const s = await ort.InferenceSession.create(out);
      for (const i of inputs) assert.ok(s.inputNames.includes(i), `${out}: inputs ${s.inputNames}`);
      assert.ok(s.outputNames.includes("logits"));
      await s.release();
    }
  });

  test("hf: an LM folder that distill's loader reads back; a classifier folder with its label names", () => {
    const out = fresh("lm-hf");
    wrote(runCli(["export", lmCkpt, "--format", "hf", "--out", out]), out);
    assert.deepEqual(readdirSync(out).sort(), ["config.json", "generation_config.json", "model.safetensors", "onnx", "tokenizer.json", "tokenizer_config.json"]);
    const t = loadHfTeacher(out);
    assert.equal(t.model.spec.layers, 1);
    assert.equal(t.tokenizer.kind, "char");
    tree.dispose(t.params);
    const cout = fresh("cls-hf");
    wrote(runCli(["export", clsCkpt, "--format", "hf", "--out", cout]), cout);
    assert.deepEqual(readdirSync(cout).sort(), ["config.json", "model.safetensors", "onnx", "preprocessor_config.json"]);
    const cfg = JSON.parse(readFileSync(join(cout, "config.json"), "utf8"));
    assert.equal(cfg.num_labels, 10);
    assert.equal(cfg.id2label["9"], "Ankle boot");
    assert.deepEqual(cfg.distill.model, { type: "mlp", hidden: [8] });
    assert.ok(existsSync(join(cout, "onnx", "model.onnx")));
  });

  test("gguf f32 and f16 (default names), and a classifier refused", () => {
    const r32 = runCli(["export", lmCkpt, "--format", "gguf"]);
    const f32 = lmCkpt.replace(/\.safetensors$/, ".gguf");
    wrote(r32, f32);
    const r16 = runCli(["export", lmCkpt, "--format", "gguf", "--dtype", "f16"]);
    const f16 = lmCkpt.replace(/\.safetensors$/, "-f16.gguf");
    wrote(r16, f16);
    const a = readFileSync(f32);
    const b = readFileSync(f16);
    assert.equal(a.subarray(0, 4).toString("latin1"), "GGUF");
    assert.equal(b.subarray(0, 4).toString("latin1"), "GGUF");
    assert.ok(b.length < a.length * 0.75, `f16 ${b.length} bytes vs f32 ${a.length}`);

    const before = snapshot(join(tmp, "ckpt"));
    userError(runCli(["export", clsCkpt, "--format", "gguf"]), clsCkpt, "classifier", "GGUF", "onnx or hf");
    assert.deepEqual(snapshot(join(tmp, "ckpt")), before, "nothing written");
  });

  test("web: a folder with its page", () => {
    const out = fresh("cls-web");
    wrote(runCli(["export", clsCkpt, "--format", "web", "--out", out]), out);
    assert.ok(existsSync(join(out, "index.html")));
    assert.deepEqual(readdirSync(tmp).filter((f) => f.startsWith(".")), [], "no temporary folder left");
  });
});

describe("bad input: exit 2, one line, nothing written", () => {
  test("an unknown format lists the formats; --dtype f16 outside gguf; a bad --dtype", () => {
    userError(runCli(["export", lmCkpt, "--format", "tflite"]), '"tflite"', "onnx, hf, gguf, web");
    userError(runCli(["export", lmCkpt, "--format", "onnx", "--dtype", "f16"]), "--dtype f16", "gguf");
    userError(runCli(["export", lmCkpt, "--format", "gguf", "--dtype", "q4"]), '"q4"', "f32 or f16");
  });

  test("a truncated checkpoint or a missing one names the file", () => {
    const dir = fresh("corrupt");
    mkdirSync(dir);
    const bytes = readFileSync(lmCkpt);
    writeFileSync(join(dir, "cut.safetensors"), bytes.subarray(0, bytes.length - 64));
    writeFileSync(join(dir, "cut.json"), readFileSync(lmCkpt.replace(/\.safetensors$/, ".json")));
    const before = snapshot(dir);
    // The checkpoint is loaded before any format's writer runs: a file format and a folder format.
    for (const format of ["onnx", "hf"]) {
      userError(runCli(["export", join(dir, "cut.safetensors"), "--format", format]), join(dir, "cut.safetensors"));
      assert.deepEqual(snapshot(dir), before, `${format}: nothing written`);
      assert.deepEqual(readdirSync(dir).sort(), ["cut.json", "cut.safetensors"]);
    }
    userError(runCli(["export", join(dir, "none.safetensors"), "--format", "onnx"]), join(dir, "none.safetensors"), "not found");
  });

  test("an existing output is refused without --force; with --force a failed write leaves it whole", () => {
    // A file (onnx) and a folder (hf).
    const file = fresh("exists") + ".onnx";
    writeFileSync(file, "the user's file");
    userError(runCli(["export", clsCkpt, "--format", "onnx", "--out", file]), file, "already exists", "--force");
    assert.equal(readFileSync(file, "utf8"), "the user's file");
    const injected = (match: string) => ({ env: { NODE_OPTIONS: `--import ${FAULT}`, DISTILL_TEST_FAULT: "ENOSPC", DISTILL_TEST_FAULT_PATH: match } });
    userError(runCli(["export", clsCkpt, "--format", "onnx", "--out", file, "--force"], injected(".onnx.")), file, "no space left", "unchanged");
    assert.equal(readFileSync(file, "utf8"), "the user's file");

    const dir = fresh("exists-hf");
    wrote(runCli(["export", lmCkpt, "--format", "hf", "--out", dir]), dir);
    writeFileSync(join(dir, "notes.txt"), "mine");
    const before = snapshot(dir);
    userError(runCli(["export", lmCkpt, "--format", "hf", "--out", dir]), dir, "already exists");
    // The fault hits a file inside the temporary folder, after other files were written there.
    userError(runCli(["export", lmCkpt, "--format", "hf", "--out", dir, "--force"], injected("tokenizer.json")), dir, "no space left", "unchanged");
    assert.deepEqual(snapshot(dir), before, "the old folder is untouched");
    assert.deepEqual(readdirSync(join(dir, "..")).filter((f) => f.startsWith(".")), [], "no temporary folder left");
    wrote(runCli(["export", lmCkpt, "--format", "hf", "--out", dir, "--force"]), dir);
    assert.ok(!existsSync(join(dir, "notes.txt")), "--force replaces the folder whole");
    assert.ok(existsSync(join(dir, "model.safetensors")));
  });
});
