// Shipping the text classifier (bert): the ONNX file (optimum's input_ids / attention_mask /
// token_type_ids → logits) against distill's own forward in onnxruntime-node, the Hugging Face
// folder in transformers.js (model and tokenizer from raw text), and both coming back as
// teachers: the ONNX file as an external teacher, the folder as distill's own bert.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { AutoModelForSequenceClassification, AutoTokenizer, Tensor, env } from "@huggingface/transformers";
import { initDevice, np, tree } from "../src/engine/index.js";
import { saveCheckpoint } from "../src/checkpoint/checkpoint.js";
import { exportCheckpoint } from "../src/export/index.js";
import { loadExportable, type TextExportable } from "../src/export/exportable.js";
import { exportAndMeasure, exportableFrom } from "../src/export/deploy.js";
import { paramsFromHost } from "../src/checkpoint/params.js";
import { exportOnnx } from "../src/export/onnx.js";
import { writeHfFolder } from "../src/export/hf.js";
import { openOnnxTeacher } from "../src/teachers/onnx.js";
import { loadHfBertTeacher } from "../src/teachers/hf.js";
import { paramsToHost } from "../src/checkpoint/params.js";
import { encoderTokenizerFromJSON } from "../src/text/encoder-tokenizer.js";
import { UserError } from "../src/util/errors.js";
import { Rng } from "../src/util/rng.js";
import { tempDir } from "./helpers/tmp.js";
import { classifierExportable, distillTextLogits, maxAbsDiff, textExportable } from "./helpers/onnx-models.js";

before(async () => {
  await initDevice("wasm");
});

const SPEC = { type: "bert" as const, layers: 2, hidden: 16, heads: 2, intermediate: 24, dropout: 0.1 };
const CLASSES = ["ham", "spam", "hard ham"];
const LENGTH = 12;

// A hand-written uncased WordPiece tokenizer.json (BERT's layout: [PAD] 0, [UNK] 1, [CLS] 2,
// [SEP] 3, [MASK] 4), independent of distill's tokenizer training.
const WORDS = ["the", "cat", "sat", "on", "mat", "free", "money", "now", "meeting", "at", "noon", "win", "##s", "##ning", "a", "!", ",", "."];
const SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
function tokenizerJSON(): TextExportable["tokenizer"] {
  const vocab: Record<string, number> = {};
  [...SPECIAL, ...WORDS].forEach((w, i) => (vocab[w] = i));
  const special = (t: string) => ({ id: t, ids: [vocab[t]], tokens: [t] });
  return {
    kind: "hf",
    json: {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: SPECIAL.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
      normalizer: { type: "BertNormalizer", clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
      pre_tokenizer: { type: "BertPreTokenizer" },
      post_processor: {
        type: "TemplateProcessing",
        single: [{ SpecialToken: { id: "[CLS]", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "[SEP]", type_id: 0 } }],
        pair: [
          { SpecialToken: { id: "[CLS]", type_id: 0 } },
          { Sequence: { id: "A", type_id: 0 } },
          { SpecialToken: { id: "[SEP]", type_id: 0 } },
          { Sequence: { id: "B", type_id: 1 } },
          { SpecialToken: { id: "[SEP]", type_id: 1 } },
        ],
        special_tokens: { "[CLS]": special("[CLS]"), "[SEP]": special("[SEP]") },
      },
      decoder: { type: "WordPiece", prefix: "##", cleanup: true },
      model: { type: "WordPiece", unk_token: "[UNK]", continuing_subword_prefix: "##", max_input_chars_per_word: 100, vocab },
    },
    config: {
      tokenizer_class: "BertTokenizer",
      do_lower_case: true,
      unk_token: "[UNK]",
      sep_token: "[SEP]",
      pad_token: "[PAD]",
      cls_token: "[CLS]",
      mask_token: "[MASK]",
      clean_up_tokenization_spaces: true,
    },
  };
}
const VOCAB = SPECIAL.length + WORDS.length;
const PAD = 0;

/** n rows of `lengths[i]` tokens ([CLS] … [SEP]) padded to `width` with PAD. */
function paddedRows(lengths: number[], width: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const x = new Float32Array(lengths.length * width).fill(PAD);
  lengths.forEach((len, r) => {
    for (let t = 0; t < len; t++) x[r * width + t] = t === 0 ? 2 : t === len - 1 ? 3 : SPECIAL.length + rng.int(WORDS.length);
  });
  return x;
}

/** The first `width` columns of rows [n, T]. */
function cut(x: Float32Array, n: number, T: number, width: number): Float32Array {
  return Float32Array.from({ length: n * width }, (_, i) => x[Math.floor(i / width) * T + (i % width)]);
}

function feeds(x: Float32Array, n: number, T: number): Record<string, ort.Tensor> {
  const ids = BigInt64Array.from(x, (v) => BigInt(v));
  return {
    input_ids: new ort.Tensor("int64", ids, [n, T]),
    attention_mask: new ort.Tensor("int64", BigInt64Array.from(x, (v) => (v === PAD ? 0n : 1n)), [n, T]),
    token_type_ids: new ort.Tensor("int64", new BigInt64Array(n * T), [n, T]),
  };
}

/** A tiny bert checkpoint as training leaves it: the model's tensors plus an intermediate-layer projection. */
function checkpoint(dir: string, seed = 5): { path: string; m: TextExportable } {
  const m = textExportable(SPEC, { vocab: VOCAB, length: LENGTH, padId: PAD }, CLASSES, tokenizerJSON(), seed);
  const path = join(dir, "student.safetensors");
  const tensors = Object.fromEntries(Object.entries(m.params).map(([k, v]) => [k, { dtype: "F32" as const, ...v }]));
  tensors["distill.proj.0.weight"] = { dtype: "F32", shape: [24, 16], data: new Float32Array(24 * 16).fill(0.5) };
  saveCheckpoint(path, { tensors, config: { model: SPEC, input: m.input, classes: CLASSES, tokenizer: m.tokenizer } });
  return { path, m };
}

const LENGTHS = [LENGTH, 2, 5, 7, 3, LENGTH - 1, 4, 6];

test("ONNX: onnxruntime equals distill's forward on padded rows of several lengths, at the full row length and cut shorter; `distill export` reads the checkpoint", async () => {
  const dir = tempDir("distill-bert-onnx-");
  const { path, m } = checkpoint(dir);
  const loaded = loadExportable(path);
  assert.equal(loaded.family, "text");
  assert.deepEqual(Object.keys(loaded.params).sort(), m.model.shapes.map(([n]) => n).sort(), "the projection is not part of the model");

  const { path: onnxPath } = await exportCheckpoint(path, "onnx");
  const s = await ort.InferenceSession.create(onnxPath);
  const io = (ms: readonly ort.InferenceSession.ValueMetadata[]) => ms.map((x) => (x.isTensor ? { name: x.name, type: x.type, shape: [...x.shape] } : null));
  const dims = ["batch_size", "sequence_length"];
  assert.deepEqual(io(s.inputMetadata), [
    { name: "input_ids", type: "int64", shape: dims },
    { name: "attention_mask", type: "int64", shape: dims },
    { name: "token_type_ids", type: "int64", shape: dims },
  ]);
  assert.deepEqual(io(s.outputMetadata), [{ name: "logits", type: "float32", shape: ["batch_size", CLASSES.length] }]);

  const n = LENGTHS.length;
  const x = paddedRows(LENGTHS, LENGTH, 1);
  const want = await distillTextLogits(m, x, n);
  assert.ok(Math.max(...want) - Math.min(...want) > 0.1, "the logits vary");
  const full = (await s.run(feeds(x, n, LENGTH))).logits.data as Float32Array;
  assert.ok(maxAbsDiff(full, want) < 1e-4, `full rows: max abs diff ${maxAbsDiff(full, want)}`);
  // The rows no longer than 7 tokens, as 7 columns: another sequence length through the same graph.
  const short = LENGTHS.map((l, i) => [l, i]).filter(([l]) => l <= 7).map(([, i]) => i);
  const xs = Float32Array.from(short.flatMap((i) => Array.from(x.subarray(i * LENGTH, i * LENGTH + 7))));
  const got = (await s.run(feeds(xs, short.length, 7))).logits.data as Float32Array;
  const wantShort = Float32Array.from(short.flatMap((i) => Array.from(want.subarray(i * 3, i * 3 + 3))));
  assert.ok(maxAbsDiff(got, wantShort) < 1e-4, `7 columns: max abs diff ${maxAbsDiff(got, wantShort)}`);
  // The mask is honoured: ids at padded positions (mask 0) do not change the logits.
  const noisy = feeds(x, n, LENGTH);
  const ids = noisy.input_ids.data as BigInt64Array;
  for (let i = 0; i < ids.length; i++) if (ids[i] === BigInt(PAD)) ids[i] = 7n;
  const masked = (await s.run(noisy)).logits.data as Float32Array;
  assert.ok(maxAbsDiff(masked, want) < 1e-4, `padded positions read: ${maxAbsDiff(masked, want)}`);
  await s.release();

  // The recipe's export stage: from the device parameters of a run (with a projection the
  // intermediate-layer losses trained, left out), files written and both runtimes timed.
  const host = Object.fromEntries(Object.entries(m.params).map(([k, v]) => [k, { dtype: "F32" as const, ...v }]));
  const params = { ...paramsFromHost(host, m.model.shapes, "test"), "distill.proj.0.weight": np.zeros([24, 16]) };
  const fromRun = await exportableFrom(m.model, params, { input: m.input, classes: CLASSES, tokenizer: m.tokenizer }, "run");
  tree.dispose(params);
  assert.equal(fromRun.family, "text");
  assert.ok(!Object.hasOwn(fromRun.params, "distill.proj.0.weight"), "the projection is not exported");
  const lines: string[] = [];
  const rec = await exportAndMeasure(fromRun, ["onnx", "hf", "web"], tempDir("distill-bert-deploy-"), (l) => lines.push(l), { warmup: 1, minReps: 1, minMs: 0, maxReps: 2 });
  // (Every assert.ok here has a message: without one, node parses the transpiled one-line source to make one, which takes minutes.)
  assert.ok(rec.bytes.onnx > 0 && rec.bytes.hf > rec.bytes.onnx && rec.latency.onnxruntime!.batch64 > 0 && rec.latency.distill.batch1 > 0, JSON.stringify(rec));
  // The browser folder too (its page is tested in test/web-export.test.ts).
  assert.equal(rec.skipped, undefined, JSON.stringify(rec.skipped));
  assert.ok(rec.bytes.web > rec.bytes.onnx, JSON.stringify(rec.bytes));
  assert.equal(lines.length, 0, lines.join("; "));
  const { path: web } = await exportCheckpoint(path, "web");
  assert.ok(existsSync(join(web, "tokenizer.json")) && existsSync(join(web, "model.onnx")), `${web} holds the page's files`);
});

test("HF folder: BertForSequenceClassification config and files; transformers.js gives distill's logits from token ids", async () => {
  const dir = tempDir("distill-bert-hf-");
  const { path, m } = checkpoint(dir, 6);
  const { path: folder } = await exportCheckpoint(path, "hf");
  for (const f of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "onnx/model.onnx"]) assert.ok(existsSync(join(folder, f)), f);
  const cfg = JSON.parse(readFileSync(join(folder, "config.json"), "utf8"));
  assert.deepEqual(cfg.architectures, ["BertForSequenceClassification"]);
  assert.deepEqual([cfg.model_type, cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size], ["bert", 16, 2, 2, 24]);
  assert.deepEqual([cfg.max_position_embeddings, cfg.type_vocab_size, cfg.vocab_size, cfg.hidden_act, cfg.layer_norm_eps], [LENGTH, 2, VOCAB, "gelu", 1e-12]);
  assert.deepEqual(cfg.id2label, { 0: "ham", 1: "spam", 2: "hard ham" });
  assert.deepEqual(cfg.label2id, { ham: 0, spam: 1, "hard ham": 2 });

  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = dir + "/";
  const name = folder.slice(dir.length + 1);
  const model = await AutoModelForSequenceClassification.from_pretrained(name, { dtype: "fp32", device: "cpu" });
  const n = LENGTHS.length;
  const x = paddedRows(LENGTHS, LENGTH, 2);
  // transformers.js' own Tensor class (it does not take onnxruntime's).
  const ours = Object.fromEntries(Object.entries(feeds(x, n, LENGTH)).map(([k, v]) => [k, new Tensor("int64", v.data as BigInt64Array, v.dims as number[])]));
  const out = (await model(ours)) as { logits: { data: Float32Array; dims: number[] } };
  assert.deepEqual(out.logits.dims, [n, CLASSES.length]);
  const want = await distillTextLogits(m, x, n);
  assert.ok(maxAbsDiff(out.logits.data, want) < 1e-4, `max abs diff ${maxAbsDiff(out.logits.data, want)}`);
  await model.dispose();
});

test("HF folder from raw text: transformers.js' AutoTokenizer and model give distill's tokenizer rows and logits", async () => {
  const tok = encoderTokenizerFromJSON(tokenizerJSON());
  const dir = tempDir("distill-bert-text-");
  const m = textExportable(SPEC, { vocab: tok.vocabSize, length: LENGTH, padId: tok.padId }, CLASSES, tok.toJSON(), 8);
  await writeHfFolder(m, join(dir, "hf"));
  const texts = ["Free money, now!", "the cat sat on the mat", "meeting at noon.", "Wins winning a xyzzy", "the cat sat on the mat at noon , free money now a mat"];
  const enc = tok.encodeBatch(texts, LENGTH);
  assert.equal(enc.truncated, 1, "the last text is longer than the rows");
  const want = await distillTextLogits(m, enc.ids, texts.length);

  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = dir + "/";
  const tjsTok = await AutoTokenizer.from_pretrained("hf");
  const model = await AutoModelForSequenceClassification.from_pretrained("hf", { dtype: "fp32", device: "cpu" });
  const inputs = tjsTok(texts, { padding: true, truncation: true });
  const [b, T] = inputs.input_ids.dims as number[];
  assert.equal(T, LENGTH, "padded to the longest row, cut to model_max_length");
  const theirIds = Array.from(inputs.input_ids.data as BigInt64Array, Number);
  const out = (await model(inputs)) as { logits: { data: Float32Array } };
  for (let r = 0; r < b; r++) {
    const ours = Array.from(enc.ids.subarray(r * LENGTH, (r + 1) * LENGTH));
    const theirs = theirIds.slice(r * T, (r + 1) * T);
    if (enc.lengths[r] === LENGTH && r === texts.length - 1) {
      // transformers.js cuts the whole [CLS] … [SEP] row at model_max_length, dropping [SEP]
      // (its truncateHelper; Python transformers and distill keep [SEP] and cut the text):
      // the same tokens up to the last, where distill has [SEP].
      assert.deepEqual(theirs.slice(0, -1), ours.slice(0, -1), `truncated row ${r}`);
      assert.equal(ours[LENGTH - 1], tok.sepId);
      assert.notEqual(theirs[LENGTH - 1], tok.sepId);
      continue;
    }
    assert.deepEqual(theirs, ours, `row ${r}: ${JSON.stringify(texts[r])}`);
    const d = maxAbsDiff(out.logits.data.subarray(r * 3, r * 3 + 3), want.subarray(r * 3, r * 3 + 3));
    assert.ok(d < 1e-4, `row ${r}: max abs diff ${d}`);
  }
  await model.dispose();
});

const TEXT_INPUT = { family: "classifier" as const, height: 1, width: LENGTH, channels: 1, classes: CLASSES.length, text: { vocab: VOCAB, length: LENGTH, padId: PAD } };

test("ONNX teacher: the exported file labels token rows with distill's logits; wrong inputs, class count or length give one line", async () => {
  const dir = tempDir("distill-bert-teacher-");
  const m = textExportable(SPEC, { vocab: VOCAB, length: LENGTH, padId: PAD }, CLASSES, tokenizerJSON(), 9);
  const file = join(dir, "teacher.onnx");
  writeFileSync(file, exportOnnx(m));
  const teacher = await openOnnxTeacher(file, TEXT_INPUT);
  assert.equal(teacher.classes, CLASSES.length);
  assert.ok(teacher.parameters! > 0, `parameters ${teacher.parameters}`);
  // Rows whose last columns are padding in every row (the teacher calls with fewer columns).
  const lengths = [3, 7, 2, 9, 5];
  const x = paddedRows(lengths, LENGTH, 3);
  const soft = await teacher.softLabels(x, [lengths.length, LENGTH]);
  assert.equal(soft.kind, "dense");
  const want = await distillTextLogits(m, x, lengths.length);
  const d = maxAbsDiff((soft as { logits: Float32Array }).logits, want);
  assert.ok(d < 1e-4, `max abs diff ${d}`);
  await teacher.close();

  const oneLine = (re: RegExp) => (e: unknown) => e instanceof UserError && re.test(e.message) && e.message.includes(file) && !e.message.includes("\n");
  await assert.rejects(openOnnxTeacher(file, { ...TEXT_INPUT, classes: 4 }), oneLine(/logits.*4 classes/));
  // A model whose position table is shorter than the recipe's rows.
  const short = textExportable(SPEC, { vocab: VOCAB, length: 6, padId: PAD }, CLASSES, tokenizerJSON(), 9);
  writeFileSync(file, exportOnnx(short));
  await assert.rejects(openOnnxTeacher(file, TEXT_INPUT), oneLine(/row of 12 tokens/));
  // An image classifier's file: pixel_values, not input_ids.
  writeFileSync(file, exportOnnx(classifierExportable({ type: "mlp", hidden: [8] }, { height: 2, width: 6, channels: 1, classes: 3 })));
  await assert.rejects(openOnnxTeacher(file, TEXT_INPUT), oneLine(/"pixel_values".*input_ids/));
});

test("HF folder as a native teacher: distill's bert with identical logits (also with shorter rows); bad config fields give one line", async () => {
  const tok = encoderTokenizerFromJSON(tokenizerJSON());
  const dir = tempDir("distill-bert-native-");
  const m = textExportable(SPEC, { vocab: tok.vocabSize, length: LENGTH, padId: tok.padId }, CLASSES, tok.toJSON(), 10);
  const folder = join(dir, "hf");
  await writeHfFolder(m, folder);
  const x = paddedRows([LENGTH, 4, 8], LENGTH, 4);
  const want = await distillTextLogits(m, x, 3);
  for (const length of [undefined, 8]) {
    const teacher = loadHfBertTeacher(folder, length === undefined ? {} : { length });
    assert.deepEqual(teacher.classes, CLASSES);
    assert.deepEqual(teacher.spec, SPEC);
    assert.equal(teacher.input.text.length, length ?? LENGTH);
    assert.equal(teacher.tokenizer.padId, tok.padId);
    const host = await paramsToHost(teacher.params);
    const params = Object.fromEntries(Object.entries(host).map(([k, v]) => [k, { shape: v.shape, data: v.data as Float32Array }]));
    const w = length ?? LENGTH;
    const rows = [0, 1, 2].filter((r) => [LENGTH, 4, 8][r] <= w);
    const got = await distillTextLogits({ model: teacher.model, params, source: folder }, Float32Array.from(rows.flatMap((r) => Array.from(x.subarray(r * LENGTH, r * LENGTH + w)))), rows.length);
    const expect = Float32Array.from(rows.flatMap((r) => Array.from(want.subarray(r * 3, r * 3 + 3))));
    assert.ok(maxAbsDiff(got, expect) < 1e-6, `length ${length}: ${maxAbsDiff(got, expect)}`);
  }
  const cfgPath = join(folder, "config.json");
  const cfg = JSON.parse(readFileSync(cfgPath, "utf8"));
  const refuse = (patch: Record<string, unknown>, re: RegExp, opts = {}) => {
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, ...patch }));
    assert.throws(() => loadHfBertTeacher(folder, opts), (e: unknown) => e instanceof UserError && re.test(e.message) && !e.message.includes("\n"));
  };
  refuse({ hidden_act: "relu" }, /hidden_act "relu"/);
  refuse({ architectures: ["LlamaForCausalLM"] }, /architectures/);
  refuse({ id2label: { 0: "a", 2: "b" } }, /id2label.*class 1/);
  refuse({}, /max_position_embeddings is 12.*16/, { length: 16 });
  refuse({ id2label: { 0: "a", 1: "b" } }, /num_labels 3: id2label names 2 classes/);
  refuse({ id2label: { 0: "a", 1: "b" }, num_labels: 2 }, /classifier\.weight.*\[3,16\].*\[2,16\]/);
});
