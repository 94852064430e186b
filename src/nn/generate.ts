// Sampling from a language model: temperature, top-k, top-p, seeded. Two paths that must agree
// token for token: a KV cache (each new token costs one decoding step) and a full recompute
// (each new token re-runs the whole prefix), the second kept as the reference for tests.
import { jax, jit, np, tree, type Arr } from "../engine/index.js";
import { Rng, deriveSeed } from "../util/rng.js";
import { UserError } from "../util/errors.js";
import type { Params } from "./models.js";
import { ropeTables, type KVCache, type LanguageModel, type RopeRows } from "./llama.js";

export interface SampleOptions {
  /** 0 = greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  seed: number;
}

/** Draws one token from a row of logits on the host, with the uniform from `rng`. */
export function sampleToken(logits: ArrayLike<number>, opts: SampleOptions, rng: Rng): number {
  const V = logits.length;
  const T = opts.temperature ?? 1;
  const u = rng.nextU32() / 4294967296; // drawn even when greedy, so streams stay aligned
  if (T <= 0) {
    let best = 0;
    for (let i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  let idx = Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
  if (opts.topK && opts.topK < V) idx = idx.slice(0, opts.topK);
  const max = logits[idx[0]];
  let probs = idx.map((i) => Math.exp((logits[i] - max) / T));
  let sum = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((p) => p / sum);
  if (opts.topP !== undefined && opts.topP < 1) {
    let cum = 0;
    let keep = 0;
    while (keep < probs.length && cum < opts.topP) cum += probs[keep++];
    idx = idx.slice(0, keep);
    probs = probs.slice(0, keep);
    sum = probs.reduce((a, b) => a + b, 0);
    probs = probs.map((p) => p / sum);
  }
  let acc = 0;
  for (let j = 0; j < probs.length; j++) {
    acc += probs[j];
    if (u < acc) return idx[j];
  }
  return idx[idx.length - 1];
}

function checkLengths(model: LanguageModel, prompts: Int32Array[], n: number): number {
  if (prompts.length === 0) throw new UserError("generate: no prompts");
  const P = prompts[0].length;
  if (P === 0) throw new UserError("generate: empty prompt");
  if (prompts.some((p) => p.length !== P)) throw new Error("generate: prompts of one batch must have one length");
  if (P + n > model.spec.context) {
    throw new UserError(`generate: prompt of ${P} + ${n} new tokens is longer than the model's context of ${model.spec.context}`);
  }
  return P;
}

const decoders = new WeakMap<LanguageModel, (p: Params, c: KVCache, t: Arr, r: RopeRows) => [Arr, KVCache]>();

/**
 * Continues each prompt by `n` tokens with a KV cache. Prompts are fed one position at a time
 * through the same compiled step (a fixed shape, so one compile); each sequence has its own
 * seeded stream. Does not consume `params`.
 */
export async function generate(model: LanguageModel, params: Params, prompts: Int32Array[], n: number, opts: SampleOptions): Promise<Int32Array[]> {
  const P = checkLengths(model, prompts, n);
  const B = prompts.length;
  const { layers: L, heads: H, width: D, context: C } = model.spec;
  const hd = D / H;
  let step = decoders.get(model);
  if (!step) {
    step = jit(((p: Params, c: KVCache, t: Arr, r: RopeRows) => model.decodeStep(p, c, t, r)) as never) as unknown as typeof step;
    decoders.set(model, step!);
  }
  const tables = ropeTables(C, hd, model.spec.ropeTheta ?? 10000);
  const rngs = prompts.map((_, b) => new Rng(deriveSeed(opts.seed, "sample", b)));
  const out = prompts.map((p) => {
    const seq = new Int32Array(P + n);
    seq.set(p);
    return seq;
  });
  let cache: KVCache = { k: np.zeros([L, B, H, C, hd]), v: np.zeros([L, B, H, C, hd]) };
  for (let pos = 0; pos < P + n - 1; pos++) {
    const slot = new Float32Array(C);
    slot[pos] = 1;
    const visible = new Float32Array(C);
    visible.fill(1, 0, pos + 1);
    const rope: RopeRows = {
      cos: np.array(tables.cos.subarray(pos * hd, (pos + 1) * hd)),
      sin: np.array(tables.sin.subarray(pos * hd, (pos + 1) * hd)),
      slot: np.array(slot),
      visible: np.array(visible),
    };
    const token = np.array(Int32Array.from(out, (s) => s[pos]), { dtype: np.int32 });
    const [logits, next] = step!(tree.ref(params), cache, token, rope);
    cache = next;
    if (pos >= P - 1) {
      const rows = (await logits.data()) as Float32Array;
      const V = model.vocab;
      for (let b = 0; b < B; b++) out[b][pos + 1] = sampleToken(rows.subarray(b * V, (b + 1) * V), opts, rngs[b]);
    } else {
      logits.dispose();
      await jax.blockUntilReady(cache);
    }
  }
  tree.dispose(cache);
  return out;
}

const fullForward = new WeakMap<LanguageModel, (p: Params, t: Arr) => Arr>();

/** The reference path: every new token re-runs the model over the (padded) prefix. */
export async function generateFullRecompute(model: LanguageModel, params: Params, prompts: Int32Array[], n: number, opts: SampleOptions): Promise<Int32Array[]> {
  const P = checkLengths(model, prompts, n);
  const B = prompts.length;
  const C = model.spec.context;
  const V = model.vocab;
  let f = fullForward.get(model);
  if (!f) {
    f = jit(((p: Params, t: Arr) => model.apply(p, t)) as never) as unknown as typeof f;
    fullForward.set(model, f!);
  }
  const rngs = prompts.map((_, b) => new Rng(deriveSeed(opts.seed, "sample", b)));
  // Causal attention: padding after position i does not change the logits at i.
  const buf = new Int32Array(B * C);
  prompts.forEach((p, b) => buf.set(p, b * C));
  for (let i = 0; i < n; i++) {
    const pos = P + i - 1;
    const logits = (await f!(tree.ref(params), np.array(buf, { dtype: np.int32 }).reshape([B, C])).data()) as Float32Array;
    for (let b = 0; b < B; b++) {
      const row = logits.subarray((b * C + pos) * V, (b * C + pos + 1) * V);
      buf[b * C + pos + 1] = sampleToken(row, opts, rngs[b]);
    }
  }
  return prompts.map((_, b) => buf.slice(b * C, b * C + P + n));
}
