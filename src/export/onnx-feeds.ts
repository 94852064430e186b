// Inputs for one whole-sequence pass through a causal LM in Hugging Face optimum's ONNX layout
// (ours, and optimum's own exports): the ids, an all-ones attention mask, positions 0..T−1, and
// empty key/value caches. Shared by the ONNX teacher and the deployment timing.
import * as ort from "onnxruntime-node";

/** An ONNX input as declared: its name and shape (fixed sizes as numbers ≥ 0; symbolic ones as names or −1). */
export interface DeclaredInput {
  name: string;
  shape: readonly (number | string)[];
}

export const PAST = /^past_key_values\.\d+\.(key|value)$/;

/** Feeds for `ids` [b, T] (row-major) through a model with these declared inputs. */
export function wholeSequenceFeeds(inputs: readonly DeclaredInput[], ids: Int32Array, b: number, T: number): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const m of inputs) {
    if (m.name === "input_ids") feeds[m.name] = new ort.Tensor("int64", BigInt64Array.from(ids.subarray(0, b * T), BigInt), [b, T]);
    else if (m.name === "attention_mask") feeds[m.name] = new ort.Tensor("int64", new BigInt64Array(b * T).fill(1n), [b, T]);
    else if (m.name === "position_ids") feeds[m.name] = new ort.Tensor("int64", BigInt64Array.from({ length: b * T }, (_, i) => BigInt(i % T)), [b, T]);
    else if (m.name === "use_cache_branch") feeds[m.name] = new ort.Tensor("bool", [false], [1]);
    // An empty cache [b, heads, 0, head_dim]: the whole window in one pass.
    else if (PAST.test(m.name)) feeds[m.name] = new ort.Tensor("float32", new Float32Array(0), m.shape.map((d, i) => (i === 0 ? b : typeof d === "number" && d >= 0 ? d : 0)));
  }
  return feeds;
}

/**
 * Feeds for a BERT-style text classifier (optimum's `input_ids`, `attention_mask`,
 * `token_type_ids`, each int64 [b, T]) from distill's token rows: `rows` [b, T] float ids, padded
 * with `padId`; a position is attended where its id is not padding; one segment (type 0). Only
 * the inputs the model declares are fed. Shared by the ONNX teacher and the deployment timing.
 */
export function textFeeds(inputs: readonly DeclaredInput[], rows: ArrayLike<number>, b: number, T: number, padId: number): Record<string, ort.Tensor> {
  const n = b * T;
  const ids = new BigInt64Array(n);
  const mask = new BigInt64Array(n);
  for (let i = 0; i < n; i++) {
    ids[i] = BigInt(rows[i]);
    mask[i] = rows[i] === padId ? 0n : 1n;
  }
  const all: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor("int64", ids, [b, T]),
    attention_mask: new ort.Tensor("int64", mask, [b, T]),
    token_type_ids: new ort.Tensor("int64", new BigInt64Array(n), [b, T]),
  };
  return Object.fromEntries(inputs.filter((m) => Object.hasOwn(all, m.name)).map((m) => [m.name, all[m.name]]));
}
