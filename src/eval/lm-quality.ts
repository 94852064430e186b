// Per-item language-model measures behind the verdicts: the NLL of each held-out window (for a
// paired bootstrap between runs), and generation quality: what sequence-level and on-policy
// distillation aim at, judged by the teacher's NLL of the run's own samples and their distinct-n.
import type { LanguageModel } from "../nn/llama.js";
import type { Params } from "../nn/models.js";
import { generate, type SampleOptions } from "../nn/generate.js";
import { lmLogits } from "./lm-metrics.js";
import { distinctN, mean } from "./stats.js";
import type { Generation } from "../report/verdicts.js";

/** −log softmax(row)[target], in float64. */
function nllAt(logits: Float32Array, offset: number, vocab: number, target: number): number {
  let max = -Infinity;
  for (let v = 0; v < vocab; v++) max = Math.max(max, logits[offset + v]);
  let sum = 0;
  for (let v = 0; v < vocab; v++) sum += Math.exp(logits[offset + v] - max);
  return Math.log(sum) + max - logits[offset + target];
}

/**
 * Mean NLL (nats/token) of each window: logits [windows·context, vocab] against next-token
 * targets y [windows·context]. The mean of these is the held-out loss (every window has
 * `context` targets). Rounded to 1e-6 nats: results.json stays small, and the rounding is far
 * below any difference a verdict could resolve.
 */
export function windowNLL(logits: Float32Array, y: Int32Array, vocab: number, context: number): number[] {
  const windows = y.length / context;
  const out: number[] = [];
  for (let w = 0; w < windows; w++) {
    let s = 0;
    for (let t = 0; t < context; t++) {
      const i = w * context + t;
      s += nllAt(logits, i * vocab, vocab, y[i]);
    }
    out.push(Math.round((s / context) * 1e6) / 1e6);
  }
  return out;
}

/**
 * The mean NLL (nats/token) `scorer` gives the tokens after the first `promptLength` of each
 * sequence, each token given everything before it. Sequences are zero-padded to the scorer's
 * context: attention is causal, so the padding after a token cannot change its score.
 */
export async function scoreContinuations(scorer: LanguageModel, params: Params, seqs: Int32Array[], promptLength: number): Promise<number[]> {
  const C = scorer.spec.context;
  const V = scorer.vocab;
  const x = new Int32Array(seqs.length * C);
  seqs.forEach((s, b) => {
    if (s.length > C) throw new Error(`scoreContinuations: a sequence of ${s.length} tokens is longer than the scorer's context of ${C}`);
    x.set(s, b * C);
  });
  const logits = await lmLogits(scorer, params, x, C);
  return seqs.map((s, b) => {
    let total = 0;
    for (let j = promptLength; j < s.length; j++) total += nllAt(logits, (b * C + j - 1) * V, V, s[j]);
    return total / (s.length - promptLength);
  });
}

export interface GenerationSpec {
  prompts: number;
  promptLength: number;
  tokens: number;
  sampling: Omit<SampleOptions, "seed">;
  seed: number;
}

/**
 * `prompts` prompts spread evenly over the held-out tokens, continued by `model` with fixed
 * sampling settings; the teacher scores the continuations, and distinct-1/2/3 measures how
 * repetitive they are (a model that repeats one likely phrase also gets a low NLL).
 */
export async function generationQuality(
  model: LanguageModel,
  params: Params,
  teacher: { model: LanguageModel; params: Params },
  heldIds: Int32Array,
  spec: GenerationSpec,
): Promise<Generation> {
  const P = Math.min(spec.promptLength, model.spec.context - 1);
  const n = Math.min(spec.tokens, model.spec.context - P);
  const K = spec.prompts;
  const prompts = Array.from({ length: K }, (_, i) => {
    const start = Math.max(0, Math.floor((i * (heldIds.length - P - n)) / K));
    return heldIds.slice(start, start + P);
  });
  const seqs = await generate(model, params, prompts, n, { ...spec.sampling, seed: spec.seed });
  const perPrompt = await scoreContinuations(teacher.model, teacher.params, seqs, P);
  const cont = seqs.map((s) => s.subarray(P));
  const round = (v: number) => Math.round(v * 1e6) / 1e6;
  return {
    prompts: K,
    promptLength: P,
    tokens: n,
    teacherNLL: round(mean(perPrompt)),
    perPrompt: perPrompt.map(round),
    distinct1: round(distinctN(cont, 1)),
    distinct2: round(distinctN(cont, 2)),
    distinct3: round(distinctN(cont, 3)),
  };
}
