// The ONNX exporter at the recipes' model sizes (the tests use tiny ones): for each model, random
// weights, the exported file's size, onnxruntime-node's logits against distill's own forward
// (max abs difference over 64 inputs). Latency is measured by `distill bench --workload deploy`.
//
//   npx tsx bench/onnx-parity.ts
import * as ort from "onnxruntime-node";
import { initDevice } from "../src/engine/index.js";
import type { ClassifierExportable, LMExportable } from "../src/export/exportable.js";
import { exportOnnx } from "../src/export/onnx.js";
import { paramCount } from "../src/nn/models.js";
import {
  classifierExportable,
  distillClassifierLogits,
  distillLMLogits,
  lmExportable,
  lmFeeds,
  maxAbsDiff,
  randomIds,
  randomPixels,
  toNCHW,
} from "../test/helpers/onnx-models.js";

await initDevice("wasm");
const FMNIST = { height: 28, width: 28, channels: 1, classes: 10 };

const row = (name: string, params: number, bytes: number, diff: number) =>
  console.log(`${name.padEnd(34)} ${String(params).padStart(9)} ${(bytes / 1024).toFixed(0).padStart(8)} KiB  ${diff.toExponential(1).padStart(8)}`);

console.log(`${"model".padEnd(34)} ${"params".padStart(9)} ${"file".padStart(12)}  ${"max|Δ|".padStart(8)}`);

async function classifier(m: ClassifierExportable): Promise<void> {
  const bytes = exportOnnx(m);
  const s = await ort.InferenceSession.create(bytes);
  const { height: H, width: W, channels: C } = m.input;
  const x = randomPixels(64, m.input, 1);
  const feed = (n: number) => ({ pixel_values: new ort.Tensor("float32", toNCHW(x.subarray(0, n * H * W * C), n, m.input), [n, C, H, W]) });
  const got = (await s.run(feed(64))).logits.data as Float32Array;
  const diff = maxAbsDiff(got, await distillClassifierLogits(m, x, 64));
  row(m.model.name, paramCount(m.model), bytes.length, diff);
  await s.release();
}

async function lm(m: LMExportable): Promise<void> {
  const bytes = exportOnnx(m);
  const s = await ort.InferenceSession.create(bytes);
  const T = m.model.spec.context;
  const ids = randomIds(64 * T, m.model.vocab, 2);
  const got = (await s.run(lmFeeds(m, ids, 64, T))).logits.data as Float32Array;
  const diff = maxAbsDiff(got, await distillLMLogits(m, ids, 64, T));
  const params = m.model.shapes.reduce((a, [, sh]) => a + sh.reduce((x, y) => x * y, 1), 0);
  row(`${m.model.name} (${T} tokens)`, params, bytes.length, diff);
  await s.release();
}

await classifier(classifierExportable({ type: "mlp", hidden: [512, 256] }, FMNIST));
await classifier(classifierExportable({ type: "mlp", hidden: [128] }, FMNIST));
await classifier(classifierExportable({ type: "cnn", channels: [32, 64], dense: 128 }, FMNIST));
await classifier(classifierExportable({ type: "cnn", channels: [8, 16], dense: 32 }, FMNIST));
await lm(lmExportable({ type: "llama", layers: 4, width: 128, heads: 4, context: 64 }, 96));
await lm(lmExportable({ type: "llama", layers: 2, width: 64, heads: 2, context: 64, tied: true }, 96));
