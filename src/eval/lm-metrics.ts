// Held-out evaluation of a language model: loss in nats/token, perplexity, next-token
// accuracy, agreement with the teacher's top-1, and calibration, over fixed windows.
import { jit, np, tree, type Arr } from "../engine/index.js";
import type { LanguageModel } from "../nn/llama.js";
import type { Params } from "../nn/models.js";
import { classificationMetrics } from "./metrics.js";

export interface LMMetrics {
  accuracy: number;
  agreement: number;
  ece: number;
  /** Held-out nats per token. */
  loss: number;
  perplexity: number;
  /** For character tokenizers: bits per character. */
  bitsPerChar?: number;
}

const EVAL_BATCH = 32;
const compiled = new WeakMap<LanguageModel, (p: Params, x: Arr) => Arr>();

/**
 * Logits [windows·context, vocab] of `model` over the evaluation windows, `batch` windows per
 * forward (each distinct batch compiles once; `distill serve` passes a smaller one for few windows).
 */
export async function lmLogits(model: LanguageModel, params: Params, x: Int32Array, context: number, batch = EVAL_BATCH): Promise<Float32Array> {
  const windows = x.length / context;
  const V = model.vocab;
  let f = compiled.get(model);
  if (!f) {
    f = jit(((p: Params, t: Arr) => model.apply(p, t)) as never) as unknown as typeof f;
    compiled.set(model, f!);
  }
  const out = new Float32Array(windows * context * V);
  const buf = new Int32Array(batch * context);
  for (let w = 0; w < windows; w += batch) {
    const rows = Math.min(batch, windows - w);
    buf.fill(0);
    buf.set(x.subarray(w * context, (w + rows) * context));
    const logits = (await f!(tree.ref(params), np.array(buf, { dtype: np.int32 }).reshape([batch, context])).data()) as Float32Array;
    out.set(logits.subarray(0, rows * context * V), w * context * V);
  }
  return out;
}

/** The classification metrics over every next-token prediction, plus perplexity (and bits/char). */
export function lmMetrics(logits: Float32Array, y: Int32Array, vocab: number, teacherTop: Int32Array | null, charLevel: boolean): LMMetrics {
  const m = classificationMetrics(logits, y, vocab, teacherTop);
  return { ...m, perplexity: Math.exp(m.loss), ...(charLevel ? { bitsPerChar: m.loss / Math.LN2 } : {}) };
}
