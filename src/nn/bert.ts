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
import type { Arr } from "../engine/index.js";
import type { ApplyCtx, InputShape, Model, Params } from "./models.js";
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
  /** hidden_dropout_prob = attention_probs_dropout_prob (default 0.1 when training) */
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

export function bert(spec: BertSpec, input: InputShape): EncoderModel {
  if (!input.text) throw new UserError("model.type: bert needs a text dataset (kind: text-classification)");
  throw new Error("bert: not implemented yet");
}
