// A decoder-only language model in the Llama layout (token embedding, RMSNorm, rotary position
// embedding, causal multi-head attention, SwiGLU MLP, tied or untied head), written like
// nanoGPT: one readable forward. Parameter names and layouts follow Hugging Face
// `LlamaForCausalLM` (`model.layers.0.self_attn.q_proj.weight` is [out, in]) so checkpoints
// map one-to-one onto it.
import { np, nn, random, type Arr } from "../engine/index.js";
import { UserError } from "../util/errors.js";
import { contiguous, type Params } from "./models.js";

export interface LlamaSpec {
  type: "llama";
  layers: number;
  width: number;
  heads: number;
  context: number;
  /** SwiGLU hidden size; default 4 × width. */
  hidden?: number;
  /** Share the embedding matrix with the output head. */
  tied?: boolean;
  ropeTheta?: number;
  normEps?: number;
}

export interface LanguageModel {
  name: string;
  spec: LlamaSpec;
  vocab: number;
  shapes: [string, number[]][];
  init(key: Arr): Params;
  /** tokens [B, T] int32 (T ≤ context) → logits [B, T, vocab]. Consumes params and tokens. */
  apply(params: Params, tokens: Arr): Arr;
  /**
   * One decoding step with a KV cache of `context` slots per layer: token [B] at position
   * `pos` (rope rows `cos`, `sin` [1, headDim], `slot` one-hot [context] of pos, `visible`
   * [context] = 1 for slots ≤ pos). Returns logits [B, vocab] and the updated caches
   * [layers, B, heads, context, headDim]. Consumes everything.
   */
  decodeStep(params: Params, cache: KVCache, token: Arr, rope: RopeRows): [Arr, KVCache];
}

export type KVCache = { k: Arr; v: Arr };
export type RopeRows = { cos: Arr; sin: Arr; slot: Arr; visible: Arr };

export function checkLlamaSpec(spec: LlamaSpec): void {
  if (spec.width % spec.heads !== 0) throw new UserError(`model.width: ${spec.width} is not a multiple of model.heads (${spec.heads})`);
  if ((spec.width / spec.heads) % 2 !== 0) throw new UserError(`model: the head size width/heads = ${spec.width / spec.heads} must be even for rotary embeddings`);
}

/** HF's rotary tables for positions 0..n-1: cos and sin [n, headDim] (halves repeated). */
export function ropeTables(n: number, headDim: number, theta = 10000): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const cos = new Float32Array(n * headDim);
  const sin = new Float32Array(n * headDim);
  for (let p = 0; p < n; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p / Math.pow(theta, (2 * i) / headDim);
      cos[p * headDim + i] = cos[p * headDim + i + half] = Math.cos(angle);
      sin[p * headDim + i] = sin[p * headDim + i + half] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

/** x·cos + rotate_half(x)·sin, rotate_half(x) = [−x₂, x₁] over the last axis (HF convention). */
function rope(x: Arr, cos: Arr, sin: Arr): Arr {
  const d = x.shape[x.shape.length - 1];
  const x1 = x.ref.slice(...x.shape.slice(0, -1).map(() => [] as []), [0, d / 2]);
  const x2 = x.ref.slice(...x.shape.slice(0, -1).map(() => [] as []), [d / 2, d]);
  const rotated = np.concatenate([x2.neg(), x1], -1);
  return x.mul(cos).add(rotated.mul(sin));
}

function rmsNorm(x: Arr, w: Arr, eps: number): Arr {
  const ms = x.ref.mul(x.ref).mean(-1, { keepdims: true });
  return x.div(np.sqrt(ms.add(eps))).mul(w);
}

/**
 * Embedding lookup as one-hot × matrix: the gradient of jax-js's gather (a scatter) cannot be
 * compiled inside jit in 0.1.25, and a matmul's gradient can. Costs B·T·V·D multiply-adds,
 * negligible for character and byte vocabularies.
 */
function embedLookup(embed: Arr, tokens: Arr): Arr {
  const V = embed.shape[0];
  const onehot = np.equal(tokens.reshape([...tokens.shape, 1]), np.arange(V, undefined, 1, { dtype: np.int32 })).astype(np.float32);
  return np.matmul(onehot, embed);
}

/**
 * `x`, with its gradient materialised in one buffer. The embedding's gradient (one-hotᵀ · dh)
 * otherwise takes dh as an expression fused from the whole residual stream's backward pass,
 * which jax-js 0.1.25 compiles to a scalar kernel (40 ms per step for the 2×64 student, 17 ms
 * this way). jax-js materialises the input of a pad, and the cotangent of a slice is a pad.
 */
function withMaterialisedGrad(x: Arr): Arr {
  const lead = x.shape.slice(0, -1);
  const d = x.shape[x.shape.length - 1];
  return np.pad(x, [...lead.map(() => [0, 0] as [number, number]), [0, 1]]).slice(...lead.map(() => [] as []), [0, d]);
}

function linear(x: Arr, w: Arr): Arr {
  return np.matmul(x, w.transpose());
}

export function llama(spec: LlamaSpec, vocab: number): LanguageModel {
  checkLlamaSpec(spec);
  const { layers: L, width: D, heads: H, context: C } = spec;
  const F = spec.hidden ?? 4 * D;
  const hd = D / H;
  const eps = spec.normEps ?? 1e-5;
  const tables = ropeTables(C, hd, spec.ropeTheta ?? 10000);
  const shapes: [string, number[]][] = [["model.embed_tokens.weight", [vocab, D]]];
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}`;
    shapes.push(
      [`${p}.input_layernorm.weight`, [D]],
      [`${p}.self_attn.q_proj.weight`, [D, D]],
      [`${p}.self_attn.k_proj.weight`, [D, D]],
      [`${p}.self_attn.v_proj.weight`, [D, D]],
      [`${p}.self_attn.o_proj.weight`, [D, D]],
      [`${p}.post_attention_layernorm.weight`, [D]],
      [`${p}.mlp.gate_proj.weight`, [F, D]],
      [`${p}.mlp.up_proj.weight`, [F, D]],
      [`${p}.mlp.down_proj.weight`, [D, F]],
    );
  }
  shapes.push(["model.norm.weight", [D]]);
  if (!spec.tied) shapes.push(["lm_head.weight", [vocab, D]]);

  const head = (params: Params, h: Arr): Arr =>
    linear(rmsNorm(h, params["model.norm.weight"], eps), spec.tied ? params["model.embed_tokens.weight"] : params["lm_head.weight"]);

  const mlp = (params: Params, p: string, x: Arr): Arr => {
    const gate = nn.silu(linear(x.ref, params[`${p}.mlp.gate_proj.weight`]));
    return linear(gate.mul(linear(x, params[`${p}.mlp.up_proj.weight`])), params[`${p}.mlp.down_proj.weight`]);
  };

  return {
    name: `llama ${L}x${D} h${H} ctx${C}`,
    spec,
    vocab,
    shapes,
    init(key) {
      // HF's LlamaPreTrainedModel: normal(0, 0.02) for projections and embeddings, ones for norms.
      const keys = np.unstack(random.split(key, shapes.length));
      const params: Params = {};
      shapes.forEach(([name, shape], i) => {
        if (name.endsWith("norm.weight")) {
          keys[i].dispose();
          params[name] = np.ones(shape);
        } else params[name] = random.normal(keys[i], shape).mul(0.02);
      });
      return params;
    },
    apply(params, tokens) {
      const [B, T] = tokens.shape;
      if (T > C) throw new UserError(`input of ${T} tokens is longer than the model's context of ${C}`);
      // Tied: the embedding is read twice (here and by the head), so take one more reference.
      const embed = spec.tied ? params["model.embed_tokens.weight"].ref : params["model.embed_tokens.weight"];
      let h = withMaterialisedGrad(embedLookup(embed, tokens));
      const cos = np.array(tables.cos.subarray(0, T * hd)).reshape([1, T, 1, hd]);
      const sin = np.array(tables.sin.subarray(0, T * hd)).reshape([1, T, 1, hd]);
      const causal = np.tril(np.ones([T, T])).greater(0);
      for (let i = 0; i < L; i++) {
        const p = `model.layers.${i}`;
        const x = rmsNorm(h.ref, params[`${p}.input_layernorm.weight`], eps);
        const q = rope(linear(x.ref, params[`${p}.self_attn.q_proj.weight`]).reshape([B, T, H, hd]), cos.ref, sin.ref).transpose([0, 2, 1, 3]);
        const k = rope(linear(x.ref, params[`${p}.self_attn.k_proj.weight`]).reshape([B, T, H, hd]), cos.ref, sin.ref).transpose([0, 2, 3, 1]);
        const v = linear(x, params[`${p}.self_attn.v_proj.weight`]).reshape([B, T, H, hd]).transpose([0, 2, 1, 3]);
        const scores = np.where(causal.ref, np.matmul(q, k).mul(1 / Math.sqrt(hd)), -1e30);
        // Heads back side by side, copied into one buffer: o_proj reading the transposed view
        // compiles to a scalar kernel in jax-js 0.1.25 (55 ms instead of 2 ms per teacher layer).
        const att = contiguous(np.matmul(nn.softmax(scores, -1), v).transpose([0, 2, 1, 3])).reshape([B, T, D]);
        h = h.add(linear(att, params[`${p}.self_attn.o_proj.weight`]));
        h = h.ref.add(mlp(params, p, rmsNorm(h, params[`${p}.post_attention_layernorm.weight`], eps)));
      }
      cos.dispose();
      sin.dispose();
      causal.dispose();
      return head(params, h);
    },
    decodeStep(params, cache, token, r) {
      const B = token.shape[0];
      // Tied: the embedding is read twice (here and by the head), so take one more reference.
      const embed = spec.tied ? params["model.embed_tokens.weight"].ref : params["model.embed_tokens.weight"];
      let h = embedLookup(embed, token.reshape([B, 1]));
      const cos = r.cos.reshape([1, 1, 1, hd]);
      const sin = r.sin.reshape([1, 1, 1, hd]);
      const slot = r.slot.reshape([1, 1, C, 1]).greater(0);
      const visible = r.visible.reshape([1, 1, 1, C]).greater(0);
      const ks: Arr[] = [];
      const vs: Arr[] = [];
      const kAll = np.unstack(cache.k, 0);
      const vAll = np.unstack(cache.v, 0);
      for (let i = 0; i < L; i++) {
        const p = `model.layers.${i}`;
        const x = rmsNorm(h.ref, params[`${p}.input_layernorm.weight`], eps);
        const q = rope(linear(x.ref, params[`${p}.self_attn.q_proj.weight`]).reshape([B, 1, H, hd]), cos.ref, sin.ref).transpose([0, 2, 1, 3]);
        const kNew = rope(linear(x.ref, params[`${p}.self_attn.k_proj.weight`]).reshape([B, 1, H, hd]), cos.ref, sin.ref).transpose([0, 2, 1, 3]);
        const vNew = linear(x, params[`${p}.self_attn.v_proj.weight`]).reshape([B, 1, H, hd]).transpose([0, 2, 1, 3]);
        // Write this position's key and value into its slot: [B, H, C, hd].
        const k = np.where(slot.ref, kNew, kAll[i]);
        const v = np.where(slot.ref, vNew, vAll[i]);
        ks.push(k.ref);
        vs.push(v.ref);
        const scores = np.where(visible.ref, np.matmul(q, k.transpose([0, 1, 3, 2])).mul(1 / Math.sqrt(hd)), -1e30);
        const att = np.matmul(nn.softmax(scores, -1), v).transpose([0, 2, 1, 3]).reshape([B, 1, D]);
        h = h.add(linear(att, params[`${p}.self_attn.o_proj.weight`]));
        h = h.ref.add(mlp(params, p, rmsNorm(h, params[`${p}.post_attention_layernorm.weight`], eps)));
      }
      cos.dispose();
      sin.dispose();
      slot.dispose();
      visible.dispose();
      const logits = head(params, h).reshape([B, vocab]);
      return [logits, { k: np.stack(ks, 0), v: np.stack(vs, 0) }];
    },
  };
}
