// The ONNX exporter against an independent runtime: onnxruntime-node runs the exported file and
// must give distill's own forward (model.apply) to 1e-4 for every family, with optimum's names
// and symbolic batch/sequence dimensions.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { initDevice } from "../src/engine/index.js";
import { saveCheckpoint } from "../src/checkpoint/checkpoint.js";
import { exportOnnx } from "../src/export/onnx.js";
import { loadExportable, type ClassifierExportable, type Exportable, type LMExportable } from "../src/export/exportable.js";
import { UserError } from "../src/util/errors.js";
import { tempDir } from "./helpers/tmp.js";
import {
  classifierExportable,
  distillClassifierLogits,
  distillLMLogits,
  int64,
  lmExportable,
  lmFeeds,
  maxAbsDiff,
  randomIds,
  randomPixels,
  toNCHW,
} from "./helpers/onnx-models.js";

before(async () => {
  await initDevice("wasm");
});

const session = (bytes: Uint8Array) => ort.InferenceSession.create(bytes);

type Meta = { name: string; type: string; shape: (number | string)[] };
const meta = (ms: readonly ort.InferenceSession.ValueMetadata[]): Meta[] =>
  ms.map((m) => {
    assert.ok(m.isTensor, `${m.name} is a tensor`);
    return { name: m.name, type: m.type, shape: [...m.shape] };
  });

async function checkClassifier(m: ClassifierExportable, seed: number): Promise<number> {
  const s = await session(exportOnnx(m));
  const { height: H, width: W, channels: C, classes } = m.input;
  assert.deepEqual(meta(s.inputMetadata), [{ name: "pixel_values", type: "float32", shape: ["batch_size", C, H, W] }]);
  assert.deepEqual(meta(s.outputMetadata), [{ name: "logits", type: "float32", shape: ["batch_size", classes] }]);
  const n = 64;
  const x = randomPixels(n, m.input, seed);
  const want = await distillClassifierLogits(m, x, n);
  // Two batch sizes through one session: the batch dimension is symbolic.
  const a = await s.run({ pixel_values: new ort.Tensor("float32", toNCHW(x.subarray(0, 40 * H * W * C), 40, m.input), [40, C, H, W]) });
  const b = await s.run({ pixel_values: new ort.Tensor("float32", toNCHW(x.subarray(40 * H * W * C), 24, m.input), [24, C, H, W]) });
  const got = new Float32Array(n * classes);
  got.set(a.logits.data as Float32Array);
  got.set(b.logits.data as Float32Array, 40 * classes);
  await s.release();
  // Not trivially equal: the logits vary across examples and classes.
  assert.ok(Math.max(...want) - Math.min(...want) > 0.1, `logits spread ${Math.max(...want) - Math.min(...want)}`);
  return maxAbsDiff(got, want);
}

test("MLP: onnxruntime equals distill's forward on 64 inputs, 3 channels flattened in distill's (h, w, c) order", async () => {
  const input = { height: 6, width: 5, channels: 3, classes: 7 };
  const d = await checkClassifier(classifierExportable({ type: "mlp", hidden: [24, 16], dropout: 0.3 }, input, 11), 1);
  assert.ok(d <= 1e-4, `max abs diff ${d}`);
});

test("CNN: same padding, pooling and the fc columns permuted to NCHW order (3 channels; kernels 3 and 5)", async () => {
  const d3 = await checkClassifier(classifierExportable({ type: "cnn", channels: [4, 6], dense: 12, dropout: 0.25 }, { height: 8, width: 12, channels: 3, classes: 5 }, 12), 2);
  assert.ok(d3 <= 1e-4, `kernel 3: max abs diff ${d3}`);
  const d5 = await checkClassifier(classifierExportable({ type: "cnn", channels: [5], dense: 8, kernel: 5 }, { height: 6, width: 6, channels: 1, classes: 4 }, 13), 3);
  assert.ok(d5 <= 1e-4, `kernel 5: max abs diff ${d5}`);
});

const SPEC = { type: "llama" as const, layers: 2, width: 16, heads: 2, context: 12, hidden: 24 };
const VOCAB = 13;

function lmMeta(m: LMExportable): { inputs: Meta[]; outputs: Meta[] } {
  const { layers, heads, width } = m.model.spec;
  const hd = width / heads;
  const cache = (prefix: string, len: string) =>
    Array.from({ length: layers }, (_, i) =>
      ["key", "value"].map((kv) => ({ name: `${prefix}.${i}.${kv}`, type: "float32", shape: ["batch_size", heads, len, hd] })),
    ).flat();
  return {
    inputs: [
      { name: "input_ids", type: "int64", shape: ["batch_size", "sequence_length"] },
      { name: "attention_mask", type: "int64", shape: ["batch_size", "past_sequence_length + sequence_length"] },
      ...cache("past_key_values", "past_sequence_length"),
    ],
    outputs: [{ name: "logits", type: "float32", shape: ["batch_size", "sequence_length", m.model.vocab] }, ...cache("present", "past_sequence_length + sequence_length")],
  };
}

for (const tied of [false, true]) {
  test(`Llama (${tied ? "tied" : "untied"} head): onnxruntime equals distill's forward at two sequence lengths, 64 sequences`, async () => {
    const m = lmExportable({ ...SPEC, tied }, VOCAB, tied ? 21 : 22);
    const s = await session(exportOnnx(m));
    assert.deepEqual({ inputs: meta(s.inputMetadata), outputs: meta(s.outputMetadata) }, lmMeta(m));
    let worst = 0;
    // 32 sequences of 5 tokens and 32 of the whole context: the sequence dimension is symbolic,
    // and the rotary tables are sliced to the length.
    for (const [b, t, seed] of [[32, 5, 1], [32, SPEC.context, 2]]) {
      const ids = randomIds(b * t, VOCAB, seed);
      const want = await distillLMLogits(m, ids, b, t);
      const out = await s.run(lmFeeds(m, ids, b, t));
      assert.deepEqual(out.logits.dims, [b, t, VOCAB]);
      assert.deepEqual(out["present.1.key"].dims, [b, SPEC.heads, t, SPEC.width / SPEC.heads]);
      assert.ok(Math.max(...want) - Math.min(...want) > 1, "logits are not near-uniform");
      worst = Math.max(worst, maxAbsDiff(out.logits.data as Float32Array, want));
    }
    await s.release();
    assert.ok(worst <= 1e-4, `max abs diff ${worst}`);
  });
}

test("Llama: the KV cache (present → past_key_values), as transformers.js generates, equals the full pass", async () => {
  const m = lmExportable(SPEC, VOCAB, 23);
  const s = await session(exportOnnx(m));
  const b = 3;
  const t = 9;
  const ids = randomIds(b * t, VOCAB, 4);
  const full = (await s.run(lmFeeds(m, ids, b, t))).logits.data as Float32Array;
  // First 6 tokens with empty caches, then one token at a time with the caches fed back.
  const prefix = 6;
  const pick = (from: number, to: number) => Array.from({ length: b }, (_, r) => Array.from(ids.subarray(r * t + from, r * t + to))).flat();
  let out = await s.run(lmFeeds(m, pick(0, prefix), b, prefix));
  let worst = 0;
  for (let pos = prefix; pos < t; pos++) {
    const feeds: Record<string, ort.Tensor> = { input_ids: int64(pick(pos, pos + 1), [b, 1]), attention_mask: int64(new Array(b * (pos + 1)).fill(1), [b, pos + 1]) };
    for (let i = 0; i < SPEC.layers; i++) for (const kv of ["key", "value"]) feeds[`past_key_values.${i}.${kv}`] = out[`present.${i}.${kv}`] as ort.Tensor;
    out = await s.run(feeds);
    const step = out.logits.data as Float32Array;
    for (let r = 0; r < b; r++) worst = Math.max(worst, maxAbsDiff(step.subarray(r * VOCAB, (r + 1) * VOCAB), full.subarray((r * t + pos) * VOCAB, (r * t + pos + 1) * VOCAB)));
  }
  await s.release();
  assert.ok(worst <= 1e-4, `cached step vs full pass: max abs diff ${worst}`);
});

test("Llama: transformers.js' AutoModelForCausalLM greedy-generates with the file as distill does, token for token", async () => {
  const { AutoModelForCausalLM, Tensor, env } = await import("@huggingface/transformers");
  env.allowRemoteModels = false;
  const m = lmExportable(SPEC, VOCAB, 25);
  const dir = tempDir("distill-onnx-tjs-");
  mkdirSync(join(dir, "onnx"));
  writeFileSync(join(dir, "onnx", "model.onnx"), exportOnnx(m));
  // Only what transformers.js reads to run a Llama decoder (the HF folder writes the full config).
  const { layers, heads, width, hidden, context } = SPEC;
  const config = { model_type: "llama", architectures: ["LlamaForCausalLM"], num_hidden_layers: layers, num_attention_heads: heads, num_key_value_heads: heads, hidden_size: width, intermediate_size: hidden, vocab_size: VOCAB, max_position_embeddings: context };
  writeFileSync(join(dir, "config.json"), JSON.stringify(config));
  const model = await AutoModelForCausalLM.from_pretrained(dir, { local_files_only: true, dtype: "fp32" });
  const prompt = [3, 1, 4, 1];
  const newTokens = context - prompt.length;
  const out = (await model.generate({
    input_ids: new Tensor("int64", BigInt64Array.from(prompt.map(BigInt)), [1, prompt.length]),
    attention_mask: new Tensor("int64", new BigInt64Array(prompt.length).fill(1n), [1, prompt.length]),
    max_new_tokens: newTokens,
    do_sample: false,
  } as never)) as InstanceType<typeof Tensor>;
  await model.dispose();
  // distill: greedy by full recompute, argmax of the last position's logits.
  const seq = prompt.slice();
  while (seq.length < context) {
    const logits = await distillLMLogits(m, Int32Array.from(seq), 1, seq.length);
    const last = logits.subarray((seq.length - 1) * VOCAB);
    seq.push(last.indexOf(Math.max(...last)));
  }
  assert.deepEqual(Array.from(out.data as BigInt64Array, Number), seq);
  assert.ok(new Set(seq.slice(prompt.length)).size > 1, "the continuation is not one repeated token");
});

test("Llama: attention_mask zeros hide those keys from every query", async () => {
  const m = lmExportable(SPEC, VOCAB, 24);
  const s = await session(exportOnnx(m));
  const t = 10;
  const pad = 3;
  const real = randomIds(t - pad, VOCAB, 5);
  // Left padding, masked: rotary attention depends only on relative positions, so the real
  // tokens' logits equal distill's forward on the unpadded sequence, whatever the pad tokens.
  const want = await distillLMLogits(m, real, 1, t - pad);
  const mask = [...new Array(pad).fill(0), ...new Array(t - pad).fill(1)];
  for (const padToken of [0, 7]) {
    const ids = [...new Array(pad).fill(padToken), ...real];
    const got = (await s.run(lmFeeds(m, ids, 1, t, mask))).logits.data as Float32Array;
    const d = maxAbsDiff(got.subarray(pad * VOCAB), want);
    assert.ok(d <= 1e-4, `pad token ${padToken}: masked left padding vs unpadded, max abs diff ${d}`);
  }
  // The mask has an effect: with the same pads unmasked, the real positions' logits move.
  const unmasked = (await s.run(lmFeeds(m, [...new Array(pad).fill(7), ...real], 1, t))).logits.data as Float32Array;
  assert.ok(maxAbsDiff(unmasked.subarray(pad * VOCAB), want) > 1e-2, "unmasked pads change the logits");
  // A zero in the middle: changing that token changes no other position's logits.
  const ids = Array.from(randomIds(t, VOCAB, 6));
  const mid = [1, 1, 1, 1, 0, 1, 1, 1, 1, 1];
  const a = (await s.run(lmFeeds(m, ids, 1, t, mid))).logits.data as Float32Array;
  const changed = ids.slice();
  changed[4] = (changed[4] + 5) % VOCAB;
  const b = (await s.run(lmFeeds(m, changed, 1, t, mid))).logits.data as Float32Array;
  for (let p = 0; p < t; p++) {
    const d = maxAbsDiff(a.subarray(p * VOCAB, (p + 1) * VOCAB), b.subarray(p * VOCAB, (p + 1) * VOCAB));
    if (p === 4) assert.ok(d > 1e-3, "the masked position's own logits still read its token");
    else assert.ok(d < 1e-5, `position ${p} sees the masked key (diff ${d})`);
  }
  await s.release();
});

test("from a saved checkpoint: loadExportable → exportOnnx gives the checkpoint's numbers (CNN and Llama)", async () => {
  const dir = tempDir("distill-onnx-ckpt-");
  const save = (name: string, m: Exportable, config: object) => {
    const path = join(dir, `${name}.safetensors`);
    saveCheckpoint(path, { tensors: Object.fromEntries(Object.entries(m.params).map(([k, v]) => [k, { dtype: "F32" as const, ...v }])), config });
    return loadExportable(path);
  };
  const cnn = classifierExportable({ type: "cnn", channels: [3], dense: 6 }, { height: 4, width: 4, channels: 2, classes: 3 }, 41);
  const loaded = save("cnn", cnn, { model: cnn.model.spec, input: cnn.input });
  assert.equal(loaded.family, "classifier");
  const d = await checkClassifier(loaded as ClassifierExportable, 9);
  assert.ok(d <= 1e-4, `classifier from a checkpoint: max abs diff ${d}`);
  const lm = lmExportable({ ...SPEC, tied: true }, VOCAB, 42);
  const back = save("lm", lm, { model: lm.model.spec, tokenizer: lm.tokenizer });
  assert.equal(back.family, "lm");
  const s = await session(exportOnnx(back));
  const ids = randomIds(4 * 7, VOCAB, 3);
  const got = (await s.run(lmFeeds(lm, ids, 4, 7))).logits.data as Float32Array;
  await s.release();
  const dl = maxAbsDiff(got, await distillLMLogits(lm, ids, 4, 7));
  assert.ok(dl <= 1e-4, `LM from a checkpoint: max abs diff ${dl}`);
});

test("a model type with no ONNX form, or a NaN weight, is a one-line UserError naming it", () => {
  const m = classifierExportable({ type: "mlp", hidden: [4] }, { height: 2, width: 2, channels: 1, classes: 2 });
  const odd = { ...m, model: { ...m.model, spec: { type: "transformer" } as never } };
  assert.throws(() => exportOnnx(odd), (e: unknown) => e instanceof UserError && /cannot export .*: model type "transformer" has no ONNX form/.test(e.message) && !e.message.includes("\n"));
  // A diverged checkpoint's NaN is refused, not exported.
  const bad = classifierExportable({ type: "mlp", hidden: [4] }, { height: 2, width: 2, channels: 1, classes: 2 });
  bad.params["layers.1.bias"].data[1] = NaN;
  assert.throws(() => exportOnnx(bad), (e: unknown) => e instanceof UserError && /tensor "layers\.1\.bias" holds NaN at index 1$/.test(e.message));
});

test("the official ONNX checker accepts the files (when Debian's python3-onnx is installed)", async (t) => {
  if (spawnSync("/usr/bin/python3", ["-c", "import onnx"]).status !== 0) {
    t.skip("python3-onnx is not installed");
    return;
  }
  const dir = tempDir("distill-onnx-check-");
  const files = [
    ["mlp.onnx", exportOnnx(classifierExportable({ type: "mlp", hidden: [8] }, { height: 4, width: 4, channels: 3, classes: 3 }))],
    ["cnn.onnx", exportOnnx(classifierExportable({ type: "cnn", channels: [2], dense: 4 }, { height: 4, width: 4, channels: 3, classes: 3 }))],
    ["lm.onnx", exportOnnx(lmExportable({ ...SPEC, tied: true }, VOCAB))],
  ] as const;
  for (const [name, bytes] of files) writeFileSync(join(dir, name), bytes);
  const script = "import onnx, sys\nfor p in sys.argv[1:]:\n    onnx.checker.check_model(onnx.load(p), full_check=True)\n";
  const r = spawnSync("/usr/bin/python3", ["-c", script, ...files.map(([n]) => join(dir, n))], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
});
