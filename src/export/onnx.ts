// ONNX export: the model as an ONNX graph (opset 17, IR 8) encoded with protobufjs from the
// official onnx.proto (vendored beside this file), with the input and output names Hugging
// Face's `optimum` gives the same kind of model, so the file drops into the runtimes and tools
// that expect optimum's exports (onnxruntime, transformers.js).
//
// Classifiers: `pixel_values` float32 [batch_size, C, H, W] (pixels byte/255, NCHW) → `logits`
// [batch_size, classes]. distill's own input is channels-last rows [N, H·W·C], so the weights
// that read a flattened image or feature map get their columns permuted from (h, w, c) to
// ONNX's (c, h, w) order here instead of transposing at run time.
//
// Language models: `input_ids` int64 [batch_size, sequence_length], `attention_mask` int64
// [batch_size, past_sequence_length + sequence_length], and per layer `past_key_values.{i}.key`
// / `.value` float32 [batch_size, heads, past_sequence_length, head_dim] → `logits` float32
// [batch_size, sequence_length, vocab] and `present.{i}.key` / `.value`, optimum's
// "text-generation-with-past" layout. The cache inputs are there because transformers.js'
// generate() feeds a decoder only the newly sampled token after the first step and expects the
// model to carry the past in `present.*`; with no cache inputs it would see one token at a time.
// Text classifiers (BERT encoders): `input_ids`, `attention_mask`, `token_type_ids` int64
// [batch_size, sequence_length] → `logits` float32 [batch_size, classes], optimum's
// "text-classification" layout for BertForSequenceClassification; any sequence length up to the
// model's position table.
//
// For a whole-sequence pass feed empty caches (past_sequence_length = 0), as transformers.js
// does on its first step. Positions are past_sequence_length + 0..sequence_length-1; no
// `position_ids` input (transformers.js sends it only to graphs that declare it).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import protobuf from "protobufjs";
import { ropeTables } from "../nn/llama.js";
import { UserError } from "../util/errors.js";
import type { ClassifierExportable, Exportable, LMExportable, Params32, TextExportable } from "./exportable.js";

export const ONNX_OPSET = 17;
export const ONNX_IR_VERSION = 8;

// onnx.proto's TensorProto.DataType and AttributeProto.AttributeType values.
const FLOAT = 1;
const INT64 = 7;
const BOOL = 9;
const ATTR = { FLOAT: 1, INT: 2, TENSOR: 4, INTS: 7 } as const;

let modelType: protobuf.Type | null = null;

/** onnx.ModelProto from the vendored schema; the .proto sits beside this module in src/ and dist/. */
export function onnxModelType(): protobuf.Type {
  if (!modelType) {
    const root = new protobuf.Root();
    // keepCase: the field names stay onnx.proto's own (ir_version, not irVersion).
    root.loadSync(fileURLToPath(new URL("./onnx.proto", import.meta.url)), { keepCase: true });
    modelType = root.lookupType("onnx.ModelProto");
  }
  return modelType;
}

type Dim = number | string;
type Attr = { name: string; type: number; i?: number; f?: number; ints?: number[]; t?: object };

interface TensorInit {
  name?: string;
  dims: number[];
  data_type: number;
  raw_data: Uint8Array;
}

function tensor(dims: number[], data: Float32Array | BigInt64Array | Uint8Array, dataType: number, name?: string): TensorInit {
  // raw_data is little-endian, as typed arrays are on every platform Node runs on.
  const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return { ...(name ? { name } : {}), dims, data_type: dataType, raw_data: raw };
}

function valueInfo(name: string, elemType: number, dims: Dim[]) {
  return {
    name,
    type: { tensor_type: { elem_type: elemType, shape: { dim: dims.map((d) => (typeof d === "number" ? { dim_value: d } : { dim_param: d })) } } },
  };
}

const ints = (name: string, v: number[]): Attr => ({ name, type: ATTR.INTS, ints: v });
const int = (name: string, v: number): Attr => ({ name, type: ATTR.INT, i: v });

/** A small graph builder: fresh value names, nodes in order, initializers. */
class Graph {
  nodes: object[] = [];
  initializers: TensorInit[] = [];
  inputs: object[] = [];
  outputs: object[] = [];
  private n = 0;

  fresh(hint: string): string {
    return `${hint}_${this.n++}`;
  }

  /** Appends a node; returns its outputs' names (`out` names them, else fresh ones). */
  op(type: string, inputs: string[], attrs: Attr[] = [], out?: string | string[]): string {
    return this.opN(type, inputs, attrs, out === undefined ? 1 : typeof out === "string" ? [out] : out)[0];
  }

  opN(type: string, inputs: string[], attrs: Attr[], out: number | string[]): string[] {
    const outputs = typeof out === "number" ? Array.from({ length: out }, () => this.fresh(type.toLowerCase())) : out;
    this.nodes.push({ name: this.fresh(`n_${type}`), op_type: type, input: inputs, output: outputs, attribute: attrs });
    return outputs;
  }

  init(name: string, shape: number[], data: Float32Array): string {
    this.initializers.push(tensor(shape, data, FLOAT, name));
    return name;
  }

  /** A Constant node (not an initializer, so the initializers are exactly the model's parameters). */
  constF(dims: number[], values: number[] | Float32Array, hint = "c"): string {
    return this.op("Constant", [], [{ name: "value", type: ATTR.TENSOR, t: tensor(dims, Float32Array.from(values), FLOAT) }], this.fresh(hint));
  }

  constI(dims: number[], values: number[], hint = "c"): string {
    return this.op("Constant", [], [{ name: "value", type: ATTR.TENSOR, t: tensor(dims, BigInt64Array.from(values.map(BigInt)), INT64) }], this.fresh(hint));
  }
}

function encode(g: Graph, graphName: string, doc: string): Uint8Array {
  const T = onnxModelType();
  const model = {
    ir_version: ONNX_IR_VERSION,
    producer_name: "distill",
    producer_version: "0.1.0",
    opset_import: [{ domain: "", version: ONNX_OPSET }],
    doc_string: doc,
    graph: { name: graphName, node: g.nodes, initializer: g.initializers, input: g.inputs, output: g.outputs },
  };
  const err = T.verify(model);
  if (err) throw new Error(`exportOnnx: ${err}`);
  return T.encode(T.fromObject(model)).finish();
}

/** A parameter by name, refused if it holds NaN or ±Inf (a diverged run would export silently). */
function param(p: Params32, name: string, source: string): { shape: number[]; data: Float32Array } {
  if (!Object.hasOwn(p, name)) throw new Error(`exportOnnx: parameter "${name}" is missing`);
  const t = p[name];
  // A plain loop: findIndex's callback costs ~10 ns per value, and --inference onnxruntime
  // exports at every evaluation. (v − v is NaN exactly for NaN and ±Inf.)
  const d = t.data;
  for (let i = 0; i < d.length; i++) {
    if (d[i] - d[i] !== 0) throw new UserError(`cannot export ${source}: tensor "${name}" holds ${d[i]} at index ${i}`);
  }
  return t;
}

/**
 * w [out, H·W·C] reading a channels-last flattening → the same weights reading ONNX's NCHW
 * Flatten (c, h, w).
 */
export function permuteHwcColumns(w: Float32Array, out: number, h: number, wd: number, c: number): Float32Array {
  if (c === 1) return w; // one channel: (h, w, c) and (c, h, w) are the same order
  const n = h * wd * c;
  const r = new Float32Array(out * n);
  for (let o = 0; o < out; o++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < wd; x++) {
        for (let ch = 0; ch < c; ch++) r[o * n + (ch * h + y) * wd + x] = w[o * n + (y * wd + x) * c + ch];
      }
    }
  }
  return r;
}

function exportClassifier(m: ClassifierExportable): Uint8Array {
  const { input, params } = m;
  const spec = m.model.spec;
  const { height: H, width: W, channels: C, classes } = input;
  const g = new Graph();
  g.inputs.push(valueInfo("pixel_values", FLOAT, ["batch_size", C, H, W]));
  g.outputs.push(valueInfo("logits", FLOAT, ["batch_size", classes]));
  // nn.Linear: y = x Wᵀ + b, W stored [out, in] (Gemm's transB).
  const gemm = (x: string, w: string, b: string, out?: string) => g.op("Gemm", [x, w, b], [int("transB", 1)], out);
  const addInit = (name: string, data?: Float32Array) => {
    const t = param(params, name, m.source);
    return g.init(name, t.shape, data ?? t.data);
  };

  if (spec.type === "mlp") {
    const n = m.model.shapes.length / 2;
    let h = g.op("Flatten", ["pixel_values"], [int("axis", 1)]);
    for (let i = 0; i < n; i++) {
      const wName = `layers.${i}.weight`;
      const w = param(params, wName, m.source);
      // The first layer reads the image: its columns follow distill's (h, w, c) flattening.
      addInit(wName, i === 0 ? permuteHwcColumns(w.data, w.shape[0], H, W, C) : undefined);
      addInit(`layers.${i}.bias`);
      h = gemm(h, wName, `layers.${i}.bias`, i === n - 1 ? "logits" : undefined);
      // Dropout is the identity at inference: nothing to emit.
      if (i < n - 1) h = g.op("Relu", [h]);
    }
  } else if (spec.type === "cnn") {
    const k = spec.kernel ?? 3;
    const p = (k - 1) / 2;
    let a = "pixel_values";
    let c = C;
    let h = H;
    let w = W;
    spec.channels.forEach((o, i) => {
      addInit(`convs.${i}.weight`);
      addInit(`convs.${i}.bias`);
      // conv2dSame is a cross-correlation with zero padding (k−1)/2 on each side, as ONNX Conv.
      a = g.op("Conv", [a, `convs.${i}.weight`, `convs.${i}.bias`], [ints("kernel_shape", [k, k]), ints("pads", [p, p, p, p]), ints("strides", [1, 1])]);
      a = g.op("Relu", [a]);
      a = g.op("MaxPool", [a], [ints("kernel_shape", [2, 2]), ints("strides", [2, 2])]);
      c = o;
      h /= 2;
      w /= 2;
    });
    const fc = param(params, "fc.weight", m.source);
    addInit("fc.weight", permuteHwcColumns(fc.data, fc.shape[0], h, w, c));
    addInit("fc.bias");
    addInit("head.weight");
    addInit("head.bias");
    const flat = g.op("Flatten", [a], [int("axis", 1)]);
    const z = g.op("Relu", [gemm(flat, "fc.weight", "fc.bias")]);
    gemm(z, "head.weight", "head.bias", "logits");
  } else {
    throw new UserError(`cannot export ${m.source}: model type "${(spec as { type: string }).type}" has no ONNX form`);
  }
  return encode(g, m.model.name, `distill ${m.model.name}`);
}

function exportLM(m: LMExportable): Uint8Array {
  const { spec, vocab } = m.model;
  const { params } = m;
  const { layers: L, width: D, heads: H, context: Ctx } = spec;
  const hd = D / H;
  const eps = spec.normEps ?? 1e-5;
  const g = new Graph();
  const B = "batch_size";
  const S = "sequence_length";
  const P = "past_sequence_length";
  const T = "past_sequence_length + sequence_length";
  g.inputs.push(valueInfo("input_ids", INT64, [B, S]), valueInfo("attention_mask", INT64, [B, T]));
  for (let i = 0; i < L; i++) {
    g.inputs.push(valueInfo(`past_key_values.${i}.key`, FLOAT, [B, H, P, hd]), valueInfo(`past_key_values.${i}.value`, FLOAT, [B, H, P, hd]));
  }
  g.outputs.push(valueInfo("logits", FLOAT, [B, S, vocab]));
  for (let i = 0; i < L; i++) {
    g.outputs.push(valueInfo(`present.${i}.key`, FLOAT, [B, H, T, hd]), valueInfo(`present.${i}.value`, FLOAT, [B, H, T, hd]));
  }
  for (const [name] of m.model.shapes) {
    const t = param(params, name, m.source);
    g.init(name, t.shape, t.data);
  }

  // Sizes at run time: past length p, new length s, total t = p + s (scalars and [1] vectors).
  const scalarDim = (x: string, axis: number) => g.op("Gather", [g.op("Shape", [x]), g.constI([], [axis])], [int("axis", 0)]);
  const pLen = scalarDim("past_key_values.0.key", 2);
  const sLen = scalarDim("input_ids", 1);
  const tLen = g.op("Add", [pLen, sLen]);
  const one = g.constI([], [1]);
  const axis0 = g.constI([1], [0]);
  const vec = (x: string) => g.op("Unsqueeze", [x, axis0]);

  // Rotary tables [context, head_dim] (HF's split halves), rows p..t-1 for this call.
  const tables = ropeTables(Ctx, hd, spec.ropeTheta ?? 10000);
  const ropeRows = (table: Float32Array, hint: string) => g.op("Slice", [g.constF([Ctx, hd], table, hint), vec(pLen), vec(tLen), axis0]);
  const cos = ropeRows(tables.cos, "rope_cos");
  const sin = ropeRows(tables.sin, "rope_sin");

  // Visible keys: causal (key position j ≤ query position p + i) and attention_mask[b, j] ≠ 0,
  // [batch, 1, s, t]. A masked key is hidden from every query.
  const qPos = g.op("Range", [pLen, tLen, one]);
  const kPos = g.op("Range", [g.constI([], [0]), tLen, one]);
  const causal = g.op("LessOrEqual", [g.op("Unsqueeze", [kPos, axis0]), g.op("Unsqueeze", [qPos, g.constI([1], [1])])]);
  const keyOk = g.op("Unsqueeze", [g.op("Cast", ["attention_mask"], [int("to", BOOL)]), g.constI([2], [1, 2])]);
  const visible = g.op("And", [causal, keyOk]);
  const negInf = g.constF([], [-1e30]);
  const scale = g.constF([], [1 / Math.sqrt(hd)]);
  const epsC = g.constF([], [eps]);

  const rmsNorm = (x: string, w: string) => {
    const ms = g.op("ReduceMean", [g.op("Mul", [x, x])], [ints("axes", [-1]), int("keepdims", 1)]);
    return g.op("Mul", [g.op("Div", [x, g.op("Sqrt", [g.op("Add", [ms, epsC])])]), w]);
  };
  // x Wᵀ with W stored [out, in] as in HF; onnxruntime folds the transpose of a constant.
  const linear = (x: string, w: string) => g.op("MatMul", [x, g.op("Transpose", [w], [ints("perm", [1, 0])])]);
  const heads = g.constI([4], [0, 0, H, hd]);
  const merged = g.constI([3], [0, 0, D]);
  const toHeads = (x: string) => g.op("Transpose", [g.op("Reshape", [x, heads])], [ints("perm", [0, 2, 1, 3])]);
  const halfStarts = g.constI([1], [0]);
  const halfMid = g.constI([1], [hd / 2]);
  const halfEnd = g.constI([1], [hd]);
  const lastAxis = g.constI([1], [3]);
  // x·cos + rotate_half(x)·sin, rotate_half(x) = [−x₂, x₁] (HF's convention, as distill's rope).
  const rope = (x: string) => {
    const x1 = g.op("Slice", [x, halfStarts, halfMid, lastAxis]);
    const x2 = g.op("Slice", [x, halfMid, halfEnd, lastAxis]);
    const rotated = g.op("Concat", [g.op("Neg", [x2]), x1], [int("axis", 3)]);
    return g.op("Add", [g.op("Mul", [x, cos]), g.op("Mul", [rotated, sin])]);
  };

  let h = g.op("Gather", ["model.embed_tokens.weight", "input_ids"], [int("axis", 0)]);
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}`;
    const x = rmsNorm(h, `${p}.input_layernorm.weight`);
    const q = rope(toHeads(linear(x, `${p}.self_attn.q_proj.weight`)));
    const kNew = rope(toHeads(linear(x, `${p}.self_attn.k_proj.weight`)));
    const vNew = toHeads(linear(x, `${p}.self_attn.v_proj.weight`));
    const k = g.op("Concat", [`past_key_values.${i}.key`, kNew], [int("axis", 2)], `present.${i}.key`);
    const v = g.op("Concat", [`past_key_values.${i}.value`, vNew], [int("axis", 2)], `present.${i}.value`);
    const scores = g.op("Mul", [g.op("MatMul", [q, g.op("Transpose", [k], [ints("perm", [0, 1, 3, 2])])]), scale]);
    const probs = g.op("Softmax", [g.op("Where", [visible, scores, negInf])], [int("axis", -1)]);
    const att = g.op("Reshape", [g.op("Transpose", [g.op("MatMul", [probs, v])], [ints("perm", [0, 2, 1, 3])]), merged]);
    h = g.op("Add", [h, linear(att, `${p}.self_attn.o_proj.weight`)]);
    // SwiGLU: silu(x W_gate) · (x W_up), then W_down; silu(z) = z·sigmoid(z).
    const x2 = rmsNorm(h, `${p}.post_attention_layernorm.weight`);
    const gate = linear(x2, `${p}.mlp.gate_proj.weight`);
    const silu = g.op("Mul", [gate, g.op("Sigmoid", [gate])]);
    h = g.op("Add", [h, linear(g.op("Mul", [silu, linear(x2, `${p}.mlp.up_proj.weight`)]), `${p}.mlp.down_proj.weight`)]);
  }
  const headW = spec.tied ? "model.embed_tokens.weight" : "lm_head.weight";
  g.op("MatMul", [rmsNorm(h, "model.norm.weight"), g.op("Transpose", [headW], [ints("perm", [1, 0])])], [], "logits");
  return encode(g, m.model.name, `distill ${m.model.name}`);
}

/** float32's most negative finite value: HF's extended attention mask adds (1 − mask) · this to the scores. */
const F32_MIN = -3.4028234663852886e38;

/**
 * BertForSequenceClassification as HF computes it: embeddings (word + position + token type,
 * LayerNorm), post-LayerNorm blocks (attention with the extended mask, GELU via Erf), the
 * pooler (tanh of a dense layer on the first token) and the classifier. Initializers keep HF's
 * names; nn.Linear's [out, in] weights are read through Transpose nodes, which onnxruntime folds.
 */
function exportBert(m: TextExportable): Uint8Array {
  const { params } = m;
  const { layers: L, hidden: D, heads: H } = m.model.spec;
  const hd = D / H;
  const eps = 1e-12;
  const g = new Graph();
  const dims = ["batch_size", "sequence_length"];
  g.inputs.push(valueInfo("input_ids", INT64, dims), valueInfo("attention_mask", INT64, dims), valueInfo("token_type_ids", INT64, dims));
  g.outputs.push(valueInfo("logits", FLOAT, ["batch_size", m.input.classes]));
  for (const [name] of m.model.shapes) {
    const t = param(params, name, m.source);
    g.init(name, t.shape, t.data);
  }
  const linear = (x: string, p: string) => g.op("Add", [g.op("MatMul", [x, g.op("Transpose", [`${p}.weight`], [ints("perm", [1, 0])])]), `${p}.bias`]);
  const layerNorm = (x: string, p: string) => g.op("LayerNormalization", [x, `${p}.weight`, `${p}.bias`], [int("axis", -1), { name: "epsilon", type: ATTR.FLOAT, f: eps }]);

  // Embeddings; positions 0..sequence_length−1 (a longer input fails in the Gather: past the table).
  const e = "bert.embeddings";
  const sLen = g.op("Gather", [g.op("Shape", ["input_ids"]), g.constI([], [1])], [int("axis", 0)]);
  const positions = g.op("Range", [g.constI([], [0]), sLen, g.constI([], [1])]);
  const word = g.op("Gather", [`${e}.word_embeddings.weight`, "input_ids"], [int("axis", 0)]);
  const pos = g.op("Gather", [`${e}.position_embeddings.weight`, positions], [int("axis", 0)]);
  const type = g.op("Gather", [`${e}.token_type_embeddings.weight`, "token_type_ids"], [int("axis", 0)]);
  let h = layerNorm(g.op("Add", [g.op("Add", [word, type]), pos]), `${e}.LayerNorm`);

  // HF's extended mask: (1 − mask) · float32 min, [batch, 1, 1, keys], added to every head's scores.
  const maskF = g.op("Cast", ["attention_mask"], [int("to", FLOAT)]);
  const extended = g.op("Unsqueeze", [g.op("Mul", [g.op("Sub", [g.constF([], [1]), maskF]), g.constF([], [F32_MIN])]), g.constI([2], [1, 2])]);
  const scale = g.constF([], [1 / Math.sqrt(hd)]);
  const heads = g.constI([4], [0, 0, H, hd]);
  const merged = g.constI([3], [0, 0, D]);
  const toHeads = (x: string) => g.op("Transpose", [g.op("Reshape", [x, heads])], [ints("perm", [0, 2, 1, 3])]);
  const sqrt2 = g.constF([], [Math.SQRT2]);
  const half = g.constF([], [0.5]);
  const one = g.constF([], [1]);
  for (let i = 0; i < L; i++) {
    const p = `bert.encoder.layer.${i}`;
    const q = toHeads(linear(h, `${p}.attention.self.query`));
    const k = toHeads(linear(h, `${p}.attention.self.key`));
    const v = toHeads(linear(h, `${p}.attention.self.value`));
    const scores = g.op("Add", [g.op("Mul", [g.op("MatMul", [q, g.op("Transpose", [k], [ints("perm", [0, 1, 3, 2])])]), scale]), extended]);
    const probs = g.op("Softmax", [scores], [int("axis", -1)]);
    const ctx = g.op("Reshape", [g.op("Transpose", [g.op("MatMul", [probs, v])], [ints("perm", [0, 2, 1, 3])]), merged]);
    const attended = layerNorm(g.op("Add", [linear(ctx, `${p}.attention.output.dense`), h]), `${p}.attention.output.LayerNorm`);
    // GELU (erf form, HF's "gelu"): 0.5 · x · (1 + erf(x / √2)).
    const z = linear(attended, `${p}.intermediate.dense`);
    const gelu = g.op("Mul", [g.op("Mul", [z, half]), g.op("Add", [g.op("Erf", [g.op("Div", [z, sqrt2])]), one])]);
    h = layerNorm(g.op("Add", [linear(gelu, `${p}.output.dense`), attended]), `${p}.output.LayerNorm`);
  }
  // Pooler on the first ([CLS]) token, then the classifier (dropout is the identity here).
  const first = g.op("Gather", [h, g.constI([], [0])], [int("axis", 1)]);
  const pooled = g.op("Tanh", [g.op("Gemm", [first, "bert.pooler.dense.weight", "bert.pooler.dense.bias"], [int("transB", 1)])]);
  g.op("Gemm", [pooled, "classifier.weight", "classifier.bias"], [int("transB", 1)], "logits");
  return encode(g, m.model.name, `distill ${m.model.name}`);
}

/** The model as ONNX bytes (opset 17; optimum's input and output names; symbolic batch/sequence). */
export function exportOnnx(m: Exportable): Uint8Array {
  if (m.family === "classifier") return exportClassifier(m);
  if (m.family === "text") return exportBert(m);
  if (m.family === "lm") {
    if (m.model.spec.type !== "llama") throw new UserError(`cannot export ${m.source}: model type "${m.model.spec.type}" has no ONNX form`);
    return exportLM(m);
  }
  throw new UserError(`cannot export ${(m as { source: string }).source}: model family "${(m as { family: string }).family}" has no ONNX form`);
}
