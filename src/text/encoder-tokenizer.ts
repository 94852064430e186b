// Tokenizers for encoder (BERT-style) classification: a Hugging Face `tokenizer.json`
// (WordPiece or BPE) read by @huggingface/tokenizers, or one trained on the recipe's corpus by
// Hugging Face's own `tokenizers` library (its Node binding). Every row is
// [CLS] tokens… [SEP] then padding, cut to `maxLength` (truncation is counted, not silent).
//
// CONTRACT (implemented by the encoder work):
import type { TokenizerJSON } from "./tokenizer.js";

export interface EncodedTexts {
  /** n × maxLength token ids as exact float32 integers (the rows the model reads), padded with padId. */
  ids: Float32Array;
  /** Tokens per row before padding, after truncation ([CLS] and [SEP] included). */
  lengths: Int32Array;
  /** How many rows were longer than maxLength and were cut. */
  truncated: number;
}

export interface TextTokenizer {
  kind: "wordpiece" | "bpe";
  vocabSize: number;
  padId: number;
  clsId: number;
  sepId: number;
  unkId: number;
  /** Encodes `texts` into fixed-length rows: [CLS] … [SEP], truncated to `maxLength`, padded. */
  encodeBatch(texts: string[], maxLength: number): EncodedTexts;
  /** Token strings of one encoded row (for tests and reports). */
  tokens(text: string): string[];
  /** The tokenizer.json (and tokenizer_config.json) a Hugging Face folder carries. */
  toJSON(): Extract<TokenizerJSON, { kind: "hf" }>;
}

export interface TrainTokenizerOptions {
  type: "wordpiece" | "bpe";
  /** Upper bound on the vocabulary (special tokens included). */
  vocabSize: number;
  /** Lower-case before tokenizing (BERT uncased); default true for WordPiece, false for BPE. */
  lowercase?: boolean;
}

/** Reads a tokenizer.json (WordPiece or BPE model); `where` names the recipe field in errors. */
export function loadEncoderTokenizer(path: string, where: string): TextTokenizer {
  throw new Error(`loadEncoderTokenizer(${path}, ${where}): not implemented yet`);
}

/** Trains a tokenizer on `texts` (the training split only). Deterministic for the same texts. */
export function trainEncoderTokenizer(texts: string[], opts: TrainTokenizerOptions): TextTokenizer {
  throw new Error(`trainEncoderTokenizer(${texts.length}, ${opts.type}): not implemented yet`);
}

/** Restores a tokenizer saved with a checkpoint or written into a Hugging Face folder. */
export function encoderTokenizerFromJSON(j: Extract<TokenizerJSON, { kind: "hf" }>): TextTokenizer {
  throw new Error(`encoderTokenizerFromJSON(${typeof j}): not implemented yet`);
}
