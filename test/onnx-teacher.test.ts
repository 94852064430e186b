// The ONNX teacher: soft labels from onnxruntime-node on files the exporter wrote equal distill's
// own logits; a file that does not fit the recipe is refused with one line before any training;
// and distilling from the exported teacher gives the student the native teacher gives it.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { initDevice, tree } from "../src/engine/index.js";
import { paramsToHost } from "../src/checkpoint/params.js";
import { classificationMetrics } from "../src/eval/metrics.js";
import { predictLogits } from "../src/eval/predict.js";
import type { Exportable, Params32 } from "../src/export/exportable.js";
import { exportOnnx, onnxModelType } from "../src/export/onnx.js";
import { buildModel, paramCount, type Params } from "../src/nn/models.js";
import { openOnnxTeacher, type OnnxExpectation } from "../src/teachers/onnx.js";
import { cacheTeacherLogits } from "../src/teachers/teacher.js";
import { train } from "../src/train/trainer.js";
import { UserError } from "../src/util/errors.js";
import { syntheticExamples } from "./helpers/synthetic.js";
import { tempDir } from "./helpers/tmp.js";
import { classifierExportable, distillClassifierLogits, distillLMLogits, lmExportable, maxAbsDiff, randomIds, randomPixels } from "./helpers/onnx-models.js";

before(async () => {
  await initDevice("wasm");
});

const dir = tempDir("distill-onnx-teacher-");
function write(name: string, m: Exportable | Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, m instanceof Uint8Array ? m : exportOnnx(m));
  return p;
}

const INPUT = { height: 8, width: 6, channels: 3, classes: 5 };
const CNN = classifierExportable({ type: "cnn", channels: [4], dense: 10 }, INPUT, 31);
const cnnPath = write("cnn.onnx", CNN);
const LM = lmExportable({ type: "llama", layers: 2, width: 16, heads: 2, context: 12, hidden: 24 }, 13, 32);
const lmPath = write("lm.onnx", LM);
const asClassifier: OnnxExpectation = { family: "classifier", ...INPUT };
const asLM: OnnxExpectation = { family: "lm", vocab: 13, context: 12 };

/** One line, a UserError, matching `re`. */
async function refused(p: Promise<unknown>, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof UserError, `a UserError, got ${e}`);
    assert.ok(!e.message.includes("\n"), `one line: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

test("classifier: soft labels equal distill's logits (300 rows, across the 256-row chunks); parameters from the file", async () => {
  const t = await openOnnxTeacher(cnnPath, asClassifier);
  assert.equal(t.kind, "onnx");
  assert.equal(t.output, "dense");
  assert.equal(t.classes, 5);
  assert.equal(t.parameters, paramCount(CNN.model));
  const n = 300;
  const x = randomPixels(n, INPUT, 7);
  const s = await t.softLabels(x, [n, 8 * 6 * 3]);
  assert.equal(s.kind, "dense");
  assert.equal(s.rows, n);
  const d = maxAbsDiff(s.kind === "dense" ? s.logits : [], await distillClassifierLogits(CNN, x, n));
  assert.ok(d <= 1e-4, `max abs diff ${d}`);
  await t.close();
});

test("LM: soft labels for B·T positions equal distill's logits; parameters from the file", async () => {
  const t = await openOnnxTeacher(lmPath, asLM);
  assert.equal(t.classes, 13);
  assert.equal(t.parameters, LM.model.shapes.reduce((a, [, s]) => a + s.reduce((x, y) => x * y, 1), 0));
  const [B, T] = [6, 12];
  const ids = randomIds(B * T, 13, 8);
  const s = await t.softLabels(ids, [B, T]);
  assert.equal(s.rows, B * T);
  const d = maxAbsDiff(s.kind === "dense" ? s.logits : [], await distillLMLogits(LM, ids, B, T));
  assert.ok(d <= 1e-4, `max abs diff ${d}`);
  await t.close();
});

/** The exported file with one graph input renamed (and the nodes that read it). */
function renamedInput(bytes: Uint8Array, from: string, to: string): Uint8Array {
  const T = onnxModelType();
  const m = T.toObject(T.decode(bytes), { bytes: Array, longs: Number, arrays: true }) as { graph: { input: { name: string }[]; node: { input: string[] }[] } };
  for (const i of m.graph.input) if (i.name === from) i.name = to;
  for (const n of m.graph.node) n.input = n.input.map((x) => (x === from ? to : x));
  return T.encode(T.fromObject(m)).finish();
}

test("a file that does not fit the recipe is refused when opened, naming what it found and what was expected", async () => {
  const mlp = classifierExportable({ type: "mlp", hidden: [8] }, { height: 28, width: 28, channels: 1, classes: 10 }, 33);
  const renamed = write("renamed.onnx", renamedInput(exportOnnx(mlp), "pixel_values", "input"));
  await refused(
    openOnnxTeacher(renamed, { family: "classifier", height: 28, width: 28, channels: 1, classes: 10 }),
    /^teacher\.onnx .*renamed\.onnx: input "input" float32 \[\?, 1, 28, 28\] does not match the expected "pixel_values" float32 \[batch, 1, 28, 28\]$/,
  );
  await refused(openOnnxTeacher(cnnPath, { ...asClassifier, classes: 10 }), /cnn\.onnx: output "logits" float32 \[\?, 5\] does not match the expected "logits" float32 \[batch, 10\]/);
  await refused(openOnnxTeacher(cnnPath, { ...asClassifier, channels: 1 }), /input "pixel_values" float32 \[\?, 3, 8, 6\] does not match the expected "pixel_values" float32 \[batch, 1, 8, 6\]/);
  await refused(openOnnxTeacher(cnnPath, asLM), /input "pixel_values" .* does not match the expected "input_ids" int64/);
  await refused(openOnnxTeacher(lmPath, asClassifier), /does not match the expected "pixel_values"/);
  await refused(openOnnxTeacher(lmPath, { ...asLM, vocab: 20 }), /lm\.onnx: the teacher's vocabulary has 13 tokens, the student's tokenizer has 20$/);
  const lmRenamed = write("lm-renamed.onnx", renamedInput(exportOnnx(LM), "attention_mask", "token_type_ids"));
  await refused(openOnnxTeacher(lmRenamed, asLM), /input "token_type_ids" int64 \[\?, \?\] is not one a causal LM teacher is fed/);
});

test("a truncated, corrupt or missing file is a one-line UserError", async () => {
  const bytes = readFileSync(cnnPath);
  const truncated = write("truncated.onnx", bytes.subarray(0, Math.floor(bytes.length / 2)));
  await refused(openOnnxTeacher(truncated, asClassifier), /^teacher\.onnx .*truncated\.onnx: not a readable ONNX model \(.+\)$/);
  const corrupt = write("corrupt.onnx", new TextEncoder().encode("this is not a protobuf at all\n"));
  await refused(openOnnxTeacher(corrupt, asClassifier), /corrupt\.onnx: not a readable ONNX model/);
  await refused(openOnnxTeacher(join(dir, "absent.onnx"), asClassifier), /absent\.onnx: no such file$/);
});

async function host32(p: Params): Promise<Params32> {
  const h = await paramsToHost(p);
  return Object.fromEntries(Object.entries(h).map(([k, t]) => [k, { shape: t.shape, data: t.data as Float32Array }]));
}

test("round trip: a student distilled from the exported teacher's soft labels scores as one distilled from the native teacher", async (t) => {
  const input = { height: 8, width: 8, channels: 1, classes: 4 };
  const data = syntheticExamples(320);
  const testSet = syntheticExamples(200, { seed: 99 });
  const adam = { name: "adam" as const, lr: 3e-3 };
  const tModel = buildModel({ type: "mlp", hidden: [32] }, input);
  const teacher = await train({ name: "teacher", model: tModel, spec: { epochs: 2, batchSize: 32, optimizer: adam, loss: { name: "ce" } }, data, seed: 0 });
  const path = write("teacher.onnx", { family: "classifier", model: tModel, params: await host32(teacher.params), input, source: "teacher" });

  const native = await cacheTeacherLogits({ model: tModel, params: teacher.params }, data);
  const onnx = await openOnnxTeacher(path, { family: "classifier", ...input });
  const fromFile = await onnx.softLabels(data.x, [data.n, data.dim]);
  await onnx.close();
  assert.ok(fromFile.kind === "dense");
  assert.ok(maxAbsDiff(fromFile.logits, native) <= 1e-4, "the two caches agree");

  const student = buildModel({ type: "mlp", hidden: [8] }, input);
  const accuracy = async (cache: Float32Array) => {
    const r = await train({
      name: "student",
      model: student,
      spec: { epochs: 3, batchSize: 32, optimizer: adam, loss: { name: "hinton", temperature: 4, lambda: 0.5 } },
      data,
      seed: 0,
      cachedTeacherLogits: cache,
    });
    const acc = classificationMetrics(await predictLogits(student, r.params, testSet.x, testSet.dim), testSet.labels, 4, null).accuracy;
    tree.dispose(r.params);
    return acc;
  };
  const a = await accuracy(native);
  const b = await accuracy(fromFile.logits);
  tree.dispose(teacher.params);
  t.diagnostic(`student accuracy: ${a} from the native teacher, ${b} from the ONNX file`);
  assert.ok(a > 0.5, `the student learns (${a})`);
  assert.ok(Math.abs(a - b) * 100 <= 0.1, `accuracy from the native teacher ${a}, from the ONNX file ${b}`);
});
