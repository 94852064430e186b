// What a teacher yields, whatever it is (distill's own model, an ONNX file, a GGUF file served by
// llama.cpp, a server): soft labels for a batch of inputs, dense or top-k. The trainer reads
// these and never asks which kind of teacher produced them.

/**
 * Soft labels for `rows` inputs (classifier: one row per example; LM: one row per position,
 * B·T rows in row-major order).
 * - dense: raw logits (temperature 1), [rows, classes].
 * - topk: the k most probable classes per row, sorted by descending probability, with their
 *   log-probabilities at temperature 1, [rows, k]; the rest of the mass is the tail, whose
 *   log, log(1 − Σ p) [rows], the runtime may give (computed in float64); else it is computed
 *   from the k log-probabilities.
 */
export type SoftLabels =
  | { kind: "dense"; rows: number; classes: number; logits: Float32Array }
  | { kind: "topk"; rows: number; classes: number; k: number; ids: Int32Array; logprobs: Float32Array; logTail?: Float32Array };

/** A teacher outside distill's own engine: it runs on the host, batch by batch. */
export interface ExternalTeacher {
  /** "onnx", "gguf", ... and the file it came from, for logs and errors. */
  kind: string;
  source: string;
  /** Output width: the classifier's classes or the LM's vocabulary size. */
  classes: number;
  /** Parameter count read from the file, when it says (for the report's size ratio). */
  parameters?: number;
  /** Dense or top-k, always the same for one teacher. */
  output: "dense" | "topk";
  /**
   * Classifier: `x` is [N, H·W·C] channels-last floats in [0, 1] (distill's own input layout);
   * text classifier: `x` is [N, length] token ids as floats, padded with the tokenizer's padId;
   * LM: `x` is [B, T] int32 token ids. `shape` is x's shape.
   */
  softLabels(x: Float32Array | Int32Array, shape: number[]): Promise<SoftLabels>;
  /** Frees the runtime (a session, a child process). */
  close(): Promise<void>;
}
