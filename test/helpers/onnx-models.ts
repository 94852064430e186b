// Tiny exportable models with random, asymmetric parameters, distill's own forward on them, and
// the layout changes a client of the ONNX file makes (NCHW pixels, int64 ids), for the ONNX
// exporter's and the ONNX teacher's tests.
import * as ort from "onnxruntime-node";
import { np } from "../../src/engine/index.js";
import { paramsFromHost } from "../../src/checkpoint/params.js";
import type { ClassifierExportable, LMExportable, Params32, TextExportable } from "../../src/export/exportable.js";
import { bert, type BertSpec } from "../../src/nn/bert.js";
import { buildModel, type InputShape, type ModelSpec } from "../../src/nn/models.js";
import { llama, type LlamaSpec } from "../../src/nn/llama.js";
import type { TokenizerJSON } from "../../src/text/tokenizer.js";
import { Rng } from "../../src/util/rng.js";
import { numel } from "../../src/util/shape.js";

const uniform = (rng: Rng, n: number, lo: number, hi: number) => Float32Array.from({ length: n }, () => lo + ((hi - lo) * rng.nextU32()) / 4294967296);

/**
 * Every tensor uniform in ±scale/√fan_in (norm weights in [0.5, 1.5], biases nonzero), so that
 * no weight is trivially symmetric and LM logits are O(1), not the near-uniform ones of HF's
 * 0.02 init, where a wrong rotary convention would hide under the tolerance.
 */
function randomParams(shapes: [string, number[]][], seed: number, scale: number): Params32 {
  const rng = new Rng(seed);
  const out: Params32 = {};
  for (const [name, shape] of shapes) {
    const n = numel(shape);
    const fanIn = shape.length > 1 ? numel(shape.slice(1)) : 16;
    out[name] = /norm\.weight$/i.test(name)
      ? { shape, data: uniform(rng, n, 0.5, 1.5) }
      : { shape, data: uniform(rng, n, -scale / Math.sqrt(fanIn), scale / Math.sqrt(fanIn)) };
  }
  return out;
}

export function classifierExportable(spec: ModelSpec, input: InputShape, seed = 1): ClassifierExportable {
  const model = buildModel(spec, input);
  return { family: "classifier", model, params: randomParams(model.shapes, seed, 1.5), input, source: `test ${model.name}` };
}

/** A character tokenizer whose vocabulary is `vocab` ids (id 0 is the unknown character). */
export function charTokenizer(vocab: number): TokenizerJSON {
  return { kind: "char", chars: Array.from({ length: vocab - 1 }, (_, i) => String.fromCharCode(97 + i)) };
}

export function lmExportable(spec: LlamaSpec, vocab: number, seed = 2): LMExportable {
  const model = llama(spec, vocab);
  // Projections ±2/√fan_in; embeddings ×4 of that, so the residual stream is O(1).
  const params = randomParams(model.shapes, seed, 2);
  const emb = params["model.embed_tokens.weight"];
  emb.data = emb.data.map((v) => v * 4);
  return { family: "lm", model, params, tokenizer: charTokenizer(vocab), source: `test ${model.name}` };
}

/** Pixels byte/255, channels-last rows [n, H·W·C] (distill's own layout). */
export function randomPixels(n: number, input: InputShape, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n * input.height * input.width * input.channels }, () => rng.int(256) / 255);
}

/** [n, H·W·C] channels-last → [n, C, H, W], written out index by index. */
export function toNCHW(x: Float32Array, n: number, { height: H, width: W, channels: C }: InputShape): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < n; i++) {
    for (let y = 0; y < H; y++) for (let xx = 0; xx < W; xx++) for (let c = 0; c < C; c++) out[((i * C + c) * H + y) * W + xx] = x[((i * H + y) * W + xx) * C + c];
  }
  return out;
}

export async function distillClassifierLogits(m: ClassifierExportable, x: Float32Array, n: number): Promise<Float32Array> {
  const host = Object.fromEntries(Object.entries(m.params).map(([k, v]) => [k, { dtype: "F32" as const, ...v }]));
  const p = paramsFromHost(host, m.model.shapes, m.source);
  const y = m.model.apply(p, np.array(x).reshape([n, x.length / n]), { train: false });
  return Float32Array.from((await y.data()) as Float32Array);
}

export async function distillLMLogits(m: LMExportable, ids: Int32Array, b: number, t: number): Promise<Float32Array> {
  const host = Object.fromEntries(Object.entries(m.params).map(([k, v]) => [k, { dtype: "F32" as const, ...v }]));
  const p = paramsFromHost(host, m.model.shapes, m.source);
  const y = m.model.apply(p, np.array(ids, { dtype: np.int32 }).reshape([b, t]));
  return Float32Array.from((await y.data()) as Float32Array);
}

export function randomIds(n: number, vocab: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  return Int32Array.from({ length: n }, () => rng.int(vocab));
}

export const int64 = (ids: ArrayLike<number>, dims: number[]) => new ort.Tensor("int64", BigInt64Array.from(Array.from(ids, BigInt)), dims);

/** Feeds for the exported LM: ids, a mask (all ones unless given), empty caches. */
export function lmFeeds(m: LMExportable, ids: ArrayLike<number>, b: number, t: number, mask?: ArrayLike<number>): Record<string, ort.Tensor> {
  const { layers, heads, width } = m.model.spec;
  const feeds: Record<string, ort.Tensor> = { input_ids: int64(ids, [b, t]), attention_mask: int64(mask ?? new Array(b * t).fill(1), [b, t]) };
  for (let i = 0; i < layers; i++) {
    for (const kv of ["key", "value"]) feeds[`past_key_values.${i}.${kv}`] = new ort.Tensor("float32", new Float32Array(0), [b, heads, 0, width / heads]);
  }
  return feeds;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** A bert text classifier with random parameters (LayerNorm weights in [0.5, 1.5], everything else ±1.5/√fan_in). */
export function textExportable(spec: BertSpec, text: { vocab: number; length: number; padId: number }, classes: string[], tokenizer: TextExportable["tokenizer"], seed = 3): TextExportable {
  const input = { height: 1, width: text.length, channels: 1, classes: classes.length, text };
  const model = bert(spec, input);
  return { family: "text", model, params: randomParams(model.shapes, seed, 1.5), input, classes, tokenizer, source: `test ${model.name}` };
}

/** distill's own forward on token rows [n, T] (float ids, T ≤ the model's length). */
export async function distillTextLogits(m: { model: TextExportable["model"]; params: Params32; source: string }, rows: Float32Array, n: number): Promise<Float32Array> {
  const host = Object.fromEntries(Object.entries(m.params).map(([k, v]) => [k, { dtype: "F32" as const, ...v }]));
  const p = paramsFromHost(host, m.model.shapes, m.source);
  const y = m.model.apply(p, np.array(rows).reshape([n, rows.length / n]), { train: false });
  return Float32Array.from((await y.data()) as Float32Array);
}
