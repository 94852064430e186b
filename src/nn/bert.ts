// A BERT encoder for sequence classification, in Hugging Face's `BertForSequenceClassification`
// layout and parameter names (`bert.embeddings.word_embeddings.weight`, ...,
// `bert.encoder.layer.{i}.attention.self.query.weight`, `bert.pooler.dense.weight`,
// `classifier.weight`), so a checkpoint maps one-to-one onto a Hugging Face folder.
//
// CONTRACT (implemented by the encoder work):
// - input x: [B, L] float32 token ids (exact integers); position p of a row is padding where
//   x == input.text.padId; token_type_ids are all 0 (single-segment classification).
// - embeddings = LayerNorm(word[x] + position[0..L) + token_type[0]); post-LayerNorm blocks
//   (attention → dense → residual → LayerNorm; intermediate GELU (erf) → output dense →
//   residual → LayerNorm), LayerNorm eps 1e-12; pooler tanh(dense(h[:, 0])); classifier.
// - padding: keys at padded positions get −inf before the softmax (HF's extended mask adds the
//   dtype minimum); padded query rows still compute but nothing reads them.
import { np, nn, random, type Arr } from "../engine/index.js";
import type { HostTensor } from "../checkpoint/safetensors.js";
import { contiguous, type ApplyCtx, type InputShape, type Model, type Params } from "./models.js";
import { UserError } from "../util/errors.js";

export interface BertSpec {
  type: "bert";
  /** num_hidden_layers */
  layers: number;
  /** hidden_size */
  hidden: number;
  /** num_attention_heads (divides hidden) */
  heads: number;
  /** intermediate_size */
  intermediate: number;
  /** hidden_dropout_prob = attention_probs_dropout_prob (absent: 0.1, as Hugging Face's BertConfig) */
  dropout?: number;
}

/** What an encoder exposes to the intermediate-layer losses (src/losses/intermediate/). */
export interface EncoderFeatures {
  /** [B, classes] */
  logits: Arr;
  /** layers + 1 entries, each [B, L, hidden]: [0] the embeddings' output (after LayerNorm), [i] block i's output. */
  hidden: Arr[];
  /** One per block: attention probabilities [B, heads, L, L] (rows sum to 1 over unpadded keys). */
  attentions: Arr[];
  /** One per block: the value vectors [B, heads, L, hidden / heads]. */
  values: Arr[];
  /** [B, L] float32, 1 = token, 0 = padding. */
  mask: Arr;
}

export interface EncoderModel extends Model {
  spec: BertSpec;
  /** Like `apply`, and also everything the intermediate-layer losses read. Consumes params and x. */
  features(params: Params, x: Arr, ctx: ApplyCtx): EncoderFeatures;
}

export function isEncoder(m: unknown): m is EncoderModel {
  return typeof (m as EncoderModel).features === "function";
}

const LN_EPS = 1e-12;
/** Token types: HF's type_vocab_size; classification reads only row 0. */
const TYPE_VOCAB = 2;

/** The parameter names and shapes of BertForSequenceClassification, in HF's order. */
export function bertShapes(spec: BertSpec, vocab: number, length: number, classes: number): [string, number[]][] {
  const { hidden: D, intermediate: F } = spec;
  const e = "bert.embeddings";
  const shapes: [string, number[]][] = [
    [`${e}.word_embeddings.weight`, [vocab, D]],
    [`${e}.position_embeddings.weight`, [length, D]],
    [`${e}.token_type_embeddings.weight`, [TYPE_VOCAB, D]],
    [`${e}.LayerNorm.weight`, [D]],
    [`${e}.LayerNorm.bias`, [D]],
  ];
  for (let i = 0; i < spec.layers; i++) {
    const p = `bert.encoder.layer.${i}`;
    for (const n of ["query", "key", "value"]) shapes.push([`${p}.attention.self.${n}.weight`, [D, D]], [`${p}.attention.self.${n}.bias`, [D]]);
    shapes.push(
      [`${p}.attention.output.dense.weight`, [D, D]],
      [`${p}.attention.output.dense.bias`, [D]],
      [`${p}.attention.output.LayerNorm.weight`, [D]],
      [`${p}.attention.output.LayerNorm.bias`, [D]],
      [`${p}.intermediate.dense.weight`, [F, D]],
      [`${p}.intermediate.dense.bias`, [F]],
      [`${p}.output.dense.weight`, [D, F]],
      [`${p}.output.dense.bias`, [D]],
      [`${p}.output.LayerNorm.weight`, [D]],
      [`${p}.output.LayerNorm.bias`, [D]],
    );
  }
  shapes.push(["bert.pooler.dense.weight", [D, D]], ["bert.pooler.dense.bias", [D]], ["classifier.weight", [classes, D]], ["classifier.bias", [classes]]);
  return shapes;
}

function checkBertSpec(spec: BertSpec): void {
  for (const f of ["layers", "hidden", "heads", "intermediate"] as const) {
    if (!Number.isInteger(spec[f]) || spec[f] < 1) throw new UserError(`model.${f}: must be a positive integer, got ${spec[f]}`);
  }
  if (spec.hidden % spec.heads !== 0) throw new UserError(`model.hidden: ${spec.hidden} is not a multiple of model.heads (${spec.heads})`);
  const rate = spec.dropout ?? 0.1;
  if (!(rate >= 0 && rate < 1)) throw new UserError(`model.dropout: must be in [0, 1), got ${rate}`);
}

/** x @ W.T + b with W stored [out, in], as nn.Linear. */
function linear(x: Arr, w: Arr, b: Arr): Arr {
  return np.matmul(x, w.transpose()).add(b);
}

/** nn.LayerNorm over the last axis: biased variance, as PyTorch. */
function layerNorm(x: Arr, w: Arr, b: Arr): Arr {
  const mu = x.ref.mean(-1, { keepdims: true });
  const c = x.sub(mu);
  const v = c.ref.mul(c.ref).mean(-1, { keepdims: true });
  return c.div(np.sqrt(v.add(LN_EPS))).mul(w).add(b);
}

/**
 * `x`, with its gradient materialised in one buffer (see src/nn/llama.ts withMaterialisedGrad:
 * the embedding's gradient otherwise takes the whole residual stream's backward pass as one
 * fused expression, which jax-js 0.1.25 compiles to a scalar kernel).
 */
function withMaterialisedGrad(x: Arr): Arr {
  const lead = x.shape.slice(0, -1);
  const d = x.shape[x.shape.length - 1];
  return np.pad(x, [...lead.map(() => [0, 0] as [number, number]), [0, 1]]).slice(...lead.map(() => [] as []), [0, d]);
}

export function bert(spec: BertSpec, input: InputShape): EncoderModel {
  if (!input.text) throw new UserError("model.type: bert needs a text dataset (kind: text-classification)");
  checkBertSpec(spec);
  const { vocab: V, length: L, padId } = input.text;
  const { layers: N, hidden: D, heads: H } = spec;
  const hd = D / H;
  const C = input.classes;
  const rate = spec.dropout ?? 0.1;
  const shapes = bertShapes(spec, V, L, C);

  /**
   * The forward pass. With `keep`, the hidden states, attention probabilities and values are
   * returned too (apply passes false so nothing extra stays alive).
   */
  function forward(params: Params, x: Arr, ctx: ApplyCtx, keep: boolean): EncoderFeatures {
    // Rows may arrive as [B, L] or in the image layout [B, 1, L, 1] (height 1, channels 1).
    const B = x.shape[0];
    const T = x.shape.slice(1).reduce((a, b) => a * b, 1);
    if (x.shape.length !== 2) x = x.reshape([B, T]);
    if (T > L) throw new UserError(`input of ${T} tokens is longer than the model's maximum length of ${L}`);
    // One key per dropout site (embeddings; per block: attention probabilities, attention
    // output, feed-forward output; the pooled output), split once: splitting per site would
    // leave the unused halves of every split alive outside jit.
    const sites = 2 + 3 * N;
    const drop = ctx.train && rate > 0;
    if (drop && !ctx.key) throw new Error("dropout needs ctx.key when training");
    const keys = drop ? np.unstack(random.split(ctx.key!, sites)) : [];
    if (!drop) ctx.key?.dispose();
    let site = 0;
    const dropout = (a: Arr): Arr => {
      if (!drop) return a;
      const keepMask = random.bernoulli(keys[site++], 1 - rate, a.shape);
      return np.where(keepMask, a.mul(1 / (1 - rate)), 0);
    };

    const mask = np.notEqual(x.ref, padId).astype(np.float32); // [B, T]
    // Keys at padded positions are excluded from every softmax (HF adds the dtype minimum).
    const keyOk = mask.ref.reshape([B, 1, 1, T]).greater(0);
    // Embedding lookup. Training: one-hot × matrix (jax-js 0.1.25 cannot compile a gather's
    // gradient in jit; see src/nn/llama.ts); the one-hot is one compare against a constant row
    // of ids. Inference (evaluation, a teacher inside a student's step, whose outputs are
    // constants there): a gather, which reads one row per token where the product multiplies
    // by all V of them. Never differentiate a model applied with train: false.
    const table = params["bert.embeddings.word_embeddings.weight"];
    const words = ctx.train
      ? withMaterialisedGrad(np.matmul(np.equal(x.reshape([B, T, 1]), np.arange(V, undefined, 1, { dtype: np.float32 })).astype(np.float32), table))
      : np.take(table, x.astype(np.int32), 0);
    let pos = params["bert.embeddings.position_embeddings.weight"];
    if (T < L) pos = pos.slice([0, T]);
    const type0 = params["bert.embeddings.token_type_embeddings.weight"].slice(0);
    let h = words.add(pos).add(type0);
    h = dropout(layerNorm(h, params["bert.embeddings.LayerNorm.weight"], params["bert.embeddings.LayerNorm.bias"]));
    const hidden: Arr[] = [];
    const attentions: Arr[] = [];
    const values: Arr[] = [];
    if (keep) hidden.push(h.ref);

    const scale = 1 / Math.sqrt(hd);
    for (let i = 0; i < N; i++) {
      const p = `bert.encoder.layer.${i}`;
      const s = `${p}.attention.self`;
      // All heads at once: [B, T, D] → [B, H, T, hd] and batched matmuls, no per-head loop.
      const q = linear(h.ref, params[`${s}.query.weight`], params[`${s}.query.bias`]).reshape([B, T, H, hd]).transpose([0, 2, 1, 3]);
      const k = linear(h.ref, params[`${s}.key.weight`], params[`${s}.key.bias`]).reshape([B, T, H, hd]).transpose([0, 2, 3, 1]);
      const v = linear(h.ref, params[`${s}.value.weight`], params[`${s}.value.bias`]).reshape([B, T, H, hd]).transpose([0, 2, 1, 3]);
      if (keep) values.push(v.ref);
      const scores = np.where(keyOk.ref, np.matmul(q, k).mul(scale), -1e30);
      const probs = nn.softmax(scores, -1);
      if (keep) attentions.push(probs.ref);
      // Heads back side by side, copied into one buffer: the dense layer reading the transposed
      // view compiles to a scalar kernel in jax-js 0.1.25 (see src/nn/llama.ts).
      const att = contiguous(np.matmul(dropout(probs), v).transpose([0, 2, 1, 3])).reshape([B, T, D]);
      const o = dropout(linear(att, params[`${p}.attention.output.dense.weight`], params[`${p}.attention.output.dense.bias`]));
      h = layerNorm(o.add(h), params[`${p}.attention.output.LayerNorm.weight`], params[`${p}.attention.output.LayerNorm.bias`]);
      const inter = nn.gelu(linear(h.ref, params[`${p}.intermediate.dense.weight`], params[`${p}.intermediate.dense.bias`]), { approximate: false });
      const out = dropout(linear(inter, params[`${p}.output.dense.weight`], params[`${p}.output.dense.bias`]));
      h = layerNorm(out.add(h), params[`${p}.output.LayerNorm.weight`], params[`${p}.output.LayerNorm.bias`]);
      if (keep) hidden.push(h.ref);
    }
    keyOk.dispose();
    // [CLS] pooled head: tanh(dense(h[:, 0])), dropout, classifier (BertForSequenceClassification).
    const pooled = np.tanh(linear(h.slice([], 0), params["bert.pooler.dense.weight"], params["bert.pooler.dense.bias"]));
    const logits = linear(dropout(pooled), params["classifier.weight"], params["classifier.bias"]);
    if (!keep) mask.dispose();
    return { logits, hidden, attentions, values, mask: keep ? mask : (undefined as unknown as Arr) };
  }

  return {
    name: `bert ${N}x${D} h${H} ff${spec.intermediate}`,
    // The dropout rate written out: the trainer gives a dropout key only when spec.dropout > 0,
    // and BERT's default (0.1) applies when the recipe leaves it out.
    spec: { ...spec, dropout: rate },
    input,
    shapes,
    init(key) {
      // HF's BertPreTrainedModel._init_weights: normal(0, 0.02) for Linear weights and
      // embeddings, zero biases, LayerNorm weight 1 and bias 0, the padding row of the word
      // embeddings zero.
      const keys = np.unstack(random.split(key, shapes.length));
      const params: Params = {};
      shapes.forEach(([name, shape], i) => {
        if (name.endsWith(".bias") || name.endsWith("LayerNorm.weight")) {
          keys[i].dispose();
          params[name] = name.endsWith(".bias") ? np.zeros(shape) : np.ones(shape);
          return;
        }
        let w = random.normal(keys[i], shape).mul(0.02);
        if (name === "bert.embeddings.word_embeddings.weight" && padId >= 0 && padId < V) {
          const keepRow = np.notEqual(np.arange(V, undefined, 1, { dtype: np.float32 }), padId).astype(np.float32).reshape([V, 1]);
          w = w.mul(keepRow);
        }
        params[name] = w;
      });
      return params;
    },
    apply: (params, x, ctx) => forward(params, x, ctx, false).logits,
    features: (params, x, ctx) => forward(params, x, ctx, true),
  };
}

/**
 * DistilBERT's default layer choice: the student's block i starts from the teacher's block 2i
 * (0, 2, 4, …).
 */
export function everyOtherLayer(teacherLayers: number, studentLayers: number): number[] {
  if (studentLayers > Math.ceil(teacherLayers / 2)) {
    throw new UserError(`model.layers: a student of ${studentLayers} layers cannot start from every other layer of a ${teacherLayers}-layer teacher (at most ${Math.ceil(teacherLayers / 2)})`);
  }
  return Array.from({ length: studentLayers }, (_, i) => 2 * i);
}

/**
 * DistilBERT's initialisation: the student's block i is a copy of the teacher's block
 * `layers[i]`; the embeddings, pooler and classifier are copied whole. The widths must match.
 * Host tensors in and out (checkpoint form, see src/checkpoint/params.ts paramsFromHost).
 */
export function initFromTeacher(
  teacherParams: Record<string, HostTensor>,
  teacher: BertSpec,
  student: BertSpec,
  layers: number[],
): Record<string, HostTensor> {
  for (const f of ["hidden", "heads", "intermediate"] as const) {
    if (teacher[f] !== student[f]) {
      throw new UserError(`model.${f}: initialising from the teacher's layers needs the teacher's ${f} (${teacher[f]}), got ${student[f]}`);
    }
  }
  if (layers.length !== student.layers) throw new UserError(`model.layers: ${student.layers} student layers but ${layers.length} teacher layers were chosen to copy`);
  for (const t of layers) {
    if (!Number.isInteger(t) || t < 0 || t >= teacher.layers) throw new UserError(`initialisation layer ${t}: the teacher has layers 0..${teacher.layers - 1}`);
  }
  const prefix = "bert.encoder.layer.";
  const take = (name: string): HostTensor => {
    if (!Object.hasOwn(teacherParams, name)) throw new UserError(`teacher: missing tensor "${name}" (not a BERT checkpoint?)`);
    const t = teacherParams[name];
    return { dtype: t.dtype, shape: [...t.shape], data: t.data.slice() };
  };
  const out: Record<string, HostTensor> = {};
  for (const name of Object.keys(teacherParams)) {
    if (name.startsWith(prefix)) continue;
    out[name] = take(name);
  }
  layers.forEach((t, i) => {
    const from = `${prefix}${t}.`;
    let n = 0;
    for (const name of Object.keys(teacherParams)) {
      if (!name.startsWith(from)) continue;
      out[`${prefix}${i}.${name.slice(from.length)}`] = take(name);
      n++;
    }
    if (n === 0) throw new UserError(`teacher: no tensors for layer ${t} ("${from}*")`);
  });
  return out;
}
