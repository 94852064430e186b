// distill's own model as an ONNX teacher (`--inference onnxruntime`): exported by distill's ONNX
// exporter, held in memory, and run in onnxruntime-node wherever a pass only reads the model (a
// classifier's validation, test logits and soft labels; a language model's held-out logits, the
// frozen teacher's soft labels at every training step, `distill cache`'s scoring). Training stays
// in the engine (onnxruntime-node does not train). onnxruntime's CPU kernels use the machine's
// full vector width where Wasm SIMD has 4 lanes (docs/BENCHMARKS.md measures it). The ONNX
// teacher adapter (./onnx.ts) does the running, so our own model reaches the trainer as an ONNX
// file does. Its logits differ from the engine's by about 1e-7, so runs whose training reads them
// get their own checkpoint hash (inferenceKey in pipeline.ts).
import { exportableFrom } from "../export/exportable.js";
import { exportOnnx } from "../export/onnx.js";
import type { LanguageModel } from "../nn/llama.js";
import type { Model, Params } from "../nn/models.js";
import { predictLogits } from "../eval/predict.js";
import { openOnnxBytes } from "./onnx.js";
import type { ExternalTeacher } from "./types.js";
import { UserError } from "../util/errors.js";

export const INFERENCE_ENGINES = ["distill", "onnxruntime"] as const;
export type InferenceEngine = (typeof INFERENCE_ENGINES)[number];

const isLM = (m: Model | LanguageModel): m is LanguageModel => m.spec.type === "llama";

/** Refuses a model type this path does not run (text classifiers), in one line. */
export function checkOnnxInference(type: string | undefined): void {
  if (type === "bert") throw new UserError("--inference onnxruntime: text classifiers (model.type bert) are not run in onnxruntime here; use --inference distill");
}

/**
 * distill's own classifier (MLP, CNN) or Llama as an ONNX teacher in onnxruntime, with
 * `threads` intra-op threads. Its parameters are copied to the host and exported now: later
 * changes to `params` do not reach it. Close it when done.
 */
export async function ownModelOnOnnx(model: Model | LanguageModel, params: Params, threads: number): Promise<ExternalTeacher> {
  const source = `distill ${model.name}`;
  if (isLM(model)) {
    // The ONNX graph takes token ids; the tokenizer travels only with deployment exports.
    const m = await exportableFrom(model, params, { tokenizer: { kind: "byte" } }, source);
    return openOnnxBytes(exportOnnx(m), source, { family: "lm", vocab: model.vocab, context: model.spec.context }, threads);
  }
  checkOnnxInference(model.spec.type);
  const m = await exportableFrom(model, params, { input: model.input }, source);
  return openOnnxBytes(exportOnnx(m), source, { family: "classifier", ...model.input }, threads);
}

/** Dense logits of our own model over `x` (shape as the ONNX teacher takes it), in onnxruntime. */
async function onnxLogits(model: Model | LanguageModel, params: Params, x: Float32Array | Int32Array, shape: number[], threads: number): Promise<Float32Array> {
  const t = await ownModelOnOnnx(model, params, threads);
  try {
    const s = await t.softLabels(x, shape);
    if (s.kind !== "dense") throw new Error(`onnxruntime ${model.name}: expected dense logits`);
    return s.logits;
  } finally {
    await t.close();
  }
}

/** A language model's logits [windows·context, vocab] over windows `x` [windows, context], in onnxruntime. */
export function onnxLMLogits(model: LanguageModel, params: Params, x: Int32Array, context: number, threads: number): Promise<Float32Array> {
  return onnxLogits(model, params, x, [x.length / context, context], threads);
}

/** A classifier's logits [N, classes] on N rows of `x`, computed in onnxruntime. */
export function onnxClassifierLogits(model: Model, params: Params, x: Float32Array, dim: number, threads: number): Promise<Float32Array> {
  return onnxLogits(model, params, x, [x.length / dim, dim], threads);
}

/**
 * A classifier's logits [N, classes] on N rows of `x` from the chosen engine: distill's
 * (predictLogits, on `workers` pool threads) or onnxruntime (its ONNX export, `workers` threads).
 */
export async function classifierLogits(model: Model, params: Params, x: Float32Array, dim: number, workers: number, engine: InferenceEngine): Promise<Float32Array> {
  return engine === "onnxruntime" ? onnxClassifierLogits(model, params, x, dim, workers) : predictLogits(model, params, x, dim, workers);
}
