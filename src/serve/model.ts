// What `distill serve` serves: a language model with its tokenizer, behind two operations, the
// model's output at every position of a sequence, and generating. Engine work runs one job at a
// time (jax-js is single-threaded); forward requests that arrive while the engine is busy are
// batched into one forward.
import { statSync } from "node:fs";
import { basename, extname } from "node:path";
import { loadExportable } from "../export/exportable.js";
import type { HostTensor } from "../checkpoint/safetensors.js";
import { disposeParams, paramsFromHost } from "../checkpoint/params.js";
import { lmLogits } from "../eval/lm-metrics.js";
import { generate, sampleToken, type SampleOptions } from "../nn/generate.js";
import type { LanguageModel } from "../nn/llama.js";
import type { Params } from "../nn/models.js";
import { loadHfTeacher } from "../teachers/hf.js";
import { openGgufTeacher, readGgufHeader } from "../teachers/gguf.js";
import { topKOfLogits } from "../teachers/teacher.js";
import { byteTokenizer, tokenizerFromJSON, type Tokenizer } from "../text/tokenizer.js";
import { UserError } from "../util/errors.js";
import { Rng, deriveSeed } from "../util/rng.js";

/** The model's distribution at one position, for the token that follows it. */
export interface PositionScore {
  /** The token actually there (prompt or generated), its log-probability and 1-based rank. */
  id: number;
  logprob: number;
  rank: number;
  /** The k most probable tokens, by descending probability. */
  topIds: Int32Array;
  topLogprobs: Float32Array;
}

export interface ServedModel {
  kind: "checkpoint" | "hf" | "gguf";
  source: string;
  /** The default name /v1/models reports. */
  name: string;
  /** The longest sequence the model reads (max_model_len). */
  context: number;
  vocab: number;
  tokenizer: Tokenizer;
  /**
   * The model's output at every position of `seq` (L ≤ context), [L, vocab] at T = 1: logits, or
   * log-probabilities (which differ from them by a constant per row). Calls that arrive while the
   * engine is busy are run together in one forward.
   */
  logits(seq: Int32Array): Promise<Float32Array>;
  /**
   * `prompt` continued by `n` tokens (the whole sequence). The last token is never read by the
   * model, so prompt + n may be one more than the context (a full-context prompt can still get
   * max_tokens 1, which scoring clients send).
   */
  generate(prompt: Int32Array, n: number, opts: SampleOptions): Promise<Int32Array>;
  close(): Promise<void>;
}

/** Rows run together in one forward at most. */
const MAX_BATCH_ROWS = 32;

/** A serial queue: each job starts when the one before it has settled. */
function serial() {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(job: () => Promise<T>): Promise<T> => {
    const p = tail.then(job, job);
    tail = p.catch(() => undefined);
    return p;
  };
}

/**
 * For rows of logits [rows, V] and the token that follows each, that token's log-probability
 * (log-softmax in float64) and 1-based rank, and the row's top k (topKOfLogits).
 */
export function positionScores(logits: Float32Array, next: ArrayLike<number>, V: number, k: number): PositionScore[] {
  const rows = next.length;
  const kk = Math.min(Math.max(k, 0), V);
  const top = topKOfLogits(logits, rows, V, kk);
  const out: PositionScore[] = [];
  for (let r = 0; r < rows; r++) {
    const row = logits.subarray(r * V, (r + 1) * V);
    let max = -Infinity;
    for (let j = 0; j < V; j++) if (row[j] > max) max = row[j];
    let sum = 0;
    for (let j = 0; j < V; j++) sum += Math.exp(row[j] - max);
    const lse = max + Math.log(sum);
    const id = next[r];
    let above = 0;
    for (let j = 0; j < V; j++) if (row[j] > row[id]) above++;
    out.push({ id, logprob: row[id] - lse, rank: above + 1, topIds: top.ids.slice(r * kk, (r + 1) * kk), topLogprobs: top.logprobs.slice(r * kk, (r + 1) * kk) });
  }
  return out;
}

/** The distributions that predict tokens 1..L−1 of `seq` (L ≤ context + 1: its last token is not read). */
export async function scoreSequence(m: ServedModel, seq: Int32Array, k: number): Promise<PositionScore[]> {
  if (seq.length < 2) return [];
  return positionScores(await m.logits(seq.subarray(0, seq.length - 1)), seq.subarray(1), m.vocab, k);
}

/**
 * The next token from one row of logits, drawn as generate() draws the token after `drawn` others
 * of row 0 (its stream: deriveSeed(seed, "sample", 0), one draw per token), so a seed gives the same
 * text whichever path produced the distribution.
 */
export function sampleNext(logits: Float32Array, opts: SampleOptions, drawn: number): number {
  const rng = new Rng(deriveSeed(opts.seed, "sample", 0));
  for (let i = 0; i < drawn; i++) rng.nextU32();
  return sampleToken(logits, opts, rng);
}

function checkGenerate(P: number, n: number, C: number): void {
  if (P < 1 || P > C || P + n > C + 1) throw new Error(`generate: ${P} + ${n} tokens (context ${C})`);
}

/** distill's own Llama (a checkpoint or a Hugging Face folder) in the engine. */
function nativeModel(kind: ServedModel["kind"], source: string, name: string, model: LanguageModel, params: Params, tokenizer: Tokenizer): ServedModel {
  const C = model.spec.context;
  const V = model.vocab;
  const run = serial();
  // Forward jobs waiting for the engine; taken together, up to MAX_BATCH_ROWS, by one flush.
  const pending: { seq: Int32Array; resolve: (l: Float32Array) => void; reject: (e: unknown) => void }[] = [];
  let flushQueued = false;
  const flush = async () => {
    // Let requests already received reach the queue first (the forward blocks the event loop).
    await new Promise((r) => setImmediate(r));
    flushQueued = false;
    const jobs = pending.splice(0, MAX_BATCH_ROWS);
    if (pending.length > 0) queueFlush();
    try {
      // Each row padded to the model's context: attention is causal, so the padding does not
      // change the logits at the row's own positions.
      const x = new Int32Array(jobs.length * C);
      jobs.forEach((j, b) => x.set(j.seq, b * C));
      // Batches of 1, 2, 4, ... 32 rows: each size compiles once, and a lone request does not pay
      // for 32 rows (lmLogits' default, made for evaluation sets).
      const logits = await lmLogits(model, params, x, C, 2 ** Math.ceil(Math.log2(jobs.length)));
      jobs.forEach((j, b) => j.resolve(logits.slice(b * C * V, (b * C + j.seq.length) * V)));
    } catch (e) {
      for (const j of jobs) j.reject(e);
    }
  };
  const queueFlush = () => {
    if (flushQueued) return;
    flushQueued = true;
    void run(flush);
  };
  const logits = (seq: Int32Array) => {
    if (seq.length < 1 || seq.length > C) throw new Error(`logits: a sequence of ${seq.length} tokens (context ${C})`);
    return new Promise<Float32Array>((resolve, reject) => {
      pending.push({ seq, resolve, reject });
      queueFlush();
    });
  };
  let closed = false;
  return {
    kind,
    source,
    name,
    context: C,
    vocab: V,
    tokenizer,
    logits,
    async generate(prompt, n, opts) {
      const P = prompt.length;
      checkGenerate(P, n, C);
      if (n === 0) return prompt.slice();
      if (P + n <= C) return run(async () => (await generate(model, params, [prompt], n, opts))[0]);
      // The last token lies past the context, where generate() (which checks P + n <= C) does not
      // go: the first n − 1 by generate(), the last from the full forward's last row.
      const head = n > 1 ? await run(async () => (await generate(model, params, [prompt], n - 1, opts))[0]) : prompt;
      const rows = await logits(head);
      const out = new Int32Array(P + n);
      out.set(head);
      out[P + n - 1] = sampleNext(rows.subarray((head.length - 1) * V), opts, n - 1);
      return out;
    },
    async close() {
      if (closed) return;
      closed = true;
      await run(async () => disposeParams(params));
    },
  };
}

/**
 * distill's tokenizer back from the vocabulary its GGUF exporter writes (src/export/gguf.ts): "rwkv"
 * with 256 byte tokens is the byte tokenizer; "t5" with "<unk>" then one token per character
 * (spaces as U+2581 unless the corpus holds U+2581) is the char tokenizer. Other GGUF vocabularies
 * would need llama.cpp's own tokenizer, which distill's (host-side) text handling does not run.
 */
async function ggufTokenizer(path: string): Promise<Tokenizer> {
  const { readGgufFileInfo } = await import("node-llama-cpp");
  const info = await readGgufFileInfo(path, { sourceType: "filesystem", logWarnings: false, spliceSplitFiles: false });
  const meta = info.metadata as unknown as { tokenizer?: { ggml?: { model?: unknown; tokens?: unknown } } };
  const model = meta.tokenizer?.ggml?.model;
  const tokens = meta.tokenizer?.ggml?.tokens;
  if (!Array.isArray(tokens) || !tokens.every((t) => typeof t === "string")) throw new UserError(`${path}: GGUF metadata has no tokenizer.ggml.tokens`);
  if (model === "rwkv" && tokens.length === 256) return byteTokenizer();
  const single = (t: string) => [...t].length === 1;
  if (model === "t5" && tokens[0] === "<unk>" && tokens.slice(1).every(single)) {
    const spaceKept = tokens.includes(" ");
    return tokenizerFromJSON({ kind: "char", chars: tokens.slice(1).map((t) => (!spaceKept && t === "\u2581" ? " " : t)) }, path);
  }
  throw new UserError(`${path}: distill serve reads GGUF files with the vocabulary distill exports (char or byte tokens); this one's tokenizer.ggml.model is ${JSON.stringify(model)}`);
}

/**
 * A GGUF file through the GGUF teacher's llama.cpp child process. The child returns each
 * position's top k; asked for k = the whole vocabulary it returns the whole distribution (distill's
 * vocabularies are small), from which the actual token's log-probability and rank, and samples,
 * come. Generation samples on the host (distill's sampleToken, the stream generate() uses),
 * re-evaluating the sequence for every new token: simple, and fast enough for models distill exports.
 */
async function ggufModel(path: string, name: string): Promise<ServedModel> {
  const header = await readGgufHeader(path);
  const tokenizer = await ggufTokenizer(path);
  const V = header.vocab;
  if (tokenizer.vocabSize !== V) throw new UserError(`${path}: ${V} tokens in the vocabulary but the tokenizer read from it has ${tokenizer.vocabSize}`);
  const C = header.context;
  const teacher = await openGgufTeacher(path, { topK: V, vocab: V, context: C });
  const run = serial();
  /** Full log-probability rows [T, V] of `tokens`. */
  const rows = (tokens: Int32Array) =>
    run(async () => {
      if (tokens.length < 1 || tokens.length > C) throw new Error(`logits: a sequence of ${tokens.length} tokens (context ${C})`);
      const s = await teacher.softLabels(tokens, [1, tokens.length]);
      if (s.kind !== "topk") throw new Error("GGUF teacher: expected top-k soft labels");
      const out = new Float32Array(tokens.length * V);
      for (let r = 0; r < tokens.length; r++) for (let j = 0; j < V; j++) out[r * V + s.ids[r * V + j]] = s.logprobs[r * V + j];
      return out;
    });
  return {
    kind: "gguf",
    source: path,
    name,
    context: C,
    vocab: V,
    tokenizer,
    logits: rows,
    async generate(prompt, n, opts) {
      const P = prompt.length;
      checkGenerate(P, n, C);
      const out = new Int32Array(P + n);
      out.set(prompt);
      for (let L = P; L < P + n; L++) out[L] = sampleNext((await rows(out.subarray(0, L))).subarray((L - 1) * V), opts, L - P);
      return out;
    },
    close: () => teacher.close(),
  };
}

function baseName(path: string): string {
  const b = basename(path.replace(/[/\\]+$/, ""));
  const ext = extname(b);
  return ext === ".safetensors" || ext === ".gguf" ? b.slice(0, -ext.length) : b;
}

/** Opens a distill LM checkpoint, a Hugging Face Llama folder or a GGUF file distill exported; anything else is a one-line UserError. */
export async function loadServedModel(path: string): Promise<ServedModel> {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new UserError(`${path}: no such file or folder (expected a distill checkpoint, a Hugging Face folder or a GGUF file)`);
  }
  const name = baseName(path);
  if (st.isDirectory()) {
    const t = loadHfTeacher(path);
    return nativeModel("hf", path, name, t.model, t.params, t.tokenizer);
  }
  if (extname(path) === ".gguf") return ggufModel(path, name);
  if (extname(path) !== ".safetensors") throw new UserError(`${path}: not a distill checkpoint (.safetensors with its .json), a Hugging Face folder or a GGUF file`);
  const m = loadExportable(path);
  if (m.family !== "lm") throw new UserError(`${path}: a classifier checkpoint; distill serve serves language models`);
  const host: Record<string, HostTensor> = {};
  for (const [k, v] of Object.entries(m.params)) host[k] = { dtype: "F32", shape: v.shape, data: v.data };
  return nativeModel("checkpoint", path, name, m.model, paramsFromHost(host, m.model.shapes, path), tokenizerFromJSON(m.tokenizer, path));
}
