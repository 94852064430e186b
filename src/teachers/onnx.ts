// A teacher from an ONNX file, run in onnxruntime-node: an image classifier (`pixel_values` →
// `logits`), a BERT-style text classifier (`input_ids` [+ `attention_mask`, `token_type_ids`] →
// `logits`), or a causal LM (`input_ids` [+ `attention_mask`, `position_ids`, empty
// `past_key_values.*`] → `logits`), the names Hugging Face's optimum gives its exports and
// distill's own exporter uses. The file's inputs and outputs are checked against what the recipe
// expects when it is opened, before any training.
import { existsSync, readFileSync, statSync } from "node:fs";
import * as ort from "onnxruntime-node";
import { onnxModelType } from "../export/onnx.js";
import { PAST, textFeeds, wholeSequenceFeeds } from "../export/onnx-feeds.js";
import { UserError } from "../util/errors.js";
import type { ExternalTeacher, SoftLabels } from "./types.js";

/** What the recipe expects of an ONNX teacher; checked against the file before any training. */
export type OnnxExpectation =
  // With `text` (a text-classification dataset's input shape): a BERT-style classifier over token rows.
  | { family: "classifier"; height: number; width: number; channels: number; classes: number; text?: { vocab: number; length: number; padId: number } }
  | { family: "lm"; vocab: number; context: number };

/** Rows per onnxruntime call: bounds the input and output tensors a call allocates. */
const CLASSIFIER_CHUNK = 256;
const OWN_CHUNK = 1000;
const LM_POSITIONS_PER_CALL = 4096;

type Meta = { name: string; type: string; shape: (number | string)[] };
type Dim = number | string;

const firstLine = (e: unknown) => String(e instanceof Error ? e.message : e).split("\n").find((l) => l.trim() !== "")?.trim() ?? "unknown error";

/** A symbolic or unknown dimension (a name, or a negative size) matches any size. */
const fixed = (d: Dim): d is number => typeof d === "number" && d >= 0;
const showDims = (shape: Dim[]) => `[${shape.map((d) => (fixed(d) ? String(d) : "?")).join(", ")}]`;
const show = (m: Meta) => `"${m.name}" ${m.type} ${showDims(m.shape)}`;
const showExpected = (name: string, type: string, dims: Dim[]) => `"${name}" ${type} [${dims.join(", ")}]`;

/** Does `m` have `type` and rank `want.length`, with every fixed size equal to want's number? */
function fits(m: Meta | undefined, type: string, want: Dim[]): boolean {
  if (!m || m.type !== type || m.shape.length !== want.length) return false;
  return want.every((w, i) => typeof w !== "number" || !fixed(m.shape[i]) || m.shape[i] === w);
}

function tensorMeta(ms: readonly ort.InferenceSession.ValueMetadata[]): Meta[] {
  return ms.map((m) => (m.isTensor ? { name: m.name, type: String(m.type), shape: [...m.shape] } : { name: m.name, type: "non-tensor", shape: [] }));
}

/** Sum of the initializers' element counts, read from the file's graph (onnx.proto). */
function initializerCount(bytes: Uint8Array): number {
  const model = onnxModelType().decode(bytes) as unknown as { graph?: { initializer?: { dims?: (number | { toNumber(): number })[] }[] } };
  let n = 0;
  for (const t of model.graph?.initializer ?? []) n += (t.dims ?? []).reduce<number>((a, d) => a * Number(d), 1);
  return n;
}

export async function openOnnxTeacher(path: string, expect: OnnxExpectation): Promise<ExternalTeacher> {
  const where = `teacher.onnx ${path}`;
  if (!existsSync(path) || !statSync(path).isFile()) throw new UserError(`${where}: no such file`);
  let session: ort.InferenceSession;
  let parameters: number | undefined;
  try {
    // From the path, so that weights in external data files beside it are found.
    session = await ort.InferenceSession.create(path);
    // A graph whose weights are all Constant nodes has no initializers: then it does not say.
    parameters = initializerCount(readFileSync(path)) || undefined;
  } catch (e) {
    // onnxruntime's message repeats the path ("Load model from P failed:Protobuf parsing failed.").
    throw new UserError(`${where}: not a readable ONNX model (${firstLine(e).replace(/^Load model from .* failed:\s*/, "")})`);
  }
  return teacherOnSession(session, where, path, parameters, expect, CLASSIFIER_CHUNK);
}

/**
 * An ONNX model held in memory (distill's own model, exported by src/export/onnx.ts) as a
 * teacher: `threads` intra-op threads, run sequentially, so its numbers are the same run to run.
 */
export async function openOnnxBytes(bytes: Uint8Array, source: string, expect: OnnxExpectation, threads: number): Promise<ExternalTeacher> {
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: "sequential" });
  // Larger calls than a file teacher's: the model is known, and bigger products run faster.
  return teacherOnSession(session, `onnxruntime ${source}`, source, undefined, expect, OWN_CHUNK);
}

async function teacherOnSession(
  session: ort.InferenceSession,
  where: string,
  source: string,
  parameters: number | undefined,
  expect: OnnxExpectation,
  chunk: number,
): Promise<ExternalTeacher> {
  try {
    const inputs = tensorMeta(session.inputMetadata);
    const outputs = tensorMeta(session.outputMetadata);
    const teacher =
      expect.family === "lm"
        ? lmTeacher(session, where, expect, inputs, outputs)
        : expect.text
          ? await textTeacher(session, where, { classes: expect.classes, ...expect.text }, inputs, outputs)
          : classifierTeacher(session, where, expect, inputs, outputs, chunk);
    return { ...teacher, kind: "onnx", source, parameters, output: "dense", close: () => session.release() };
  } catch (e) {
    await session.release();
    throw e;
  }
}

type Core = Pick<ExternalTeacher, "classes" | "softLabels">;

function findOne(list: Meta[], name: string): Meta | undefined {
  return list.find((m) => m.name === name);
}

function checkLogits(where: string, outputs: Meta[], want: Dim[], what: string): void {
  const logits = findOne(outputs, "logits");
  if (fits(logits, "float32", want)) return;
  const found = logits ? show(logits) : outputs.length ? outputs.map(show).join(", ") : "none";
  throw new UserError(`${where}: output ${found} does not match the expected ${showExpected("logits", "float32", want)} (${what})`);
}

async function run(session: ort.InferenceSession, where: string, feeds: Record<string, ort.Tensor>): Promise<ort.Tensor> {
  try {
    return (await session.run(feeds, ["logits"])).logits as ort.Tensor;
  } catch (e) {
    const shapes = Object.entries(feeds).map(([k, t]) => `${k} [${t.dims.join(", ")}]`).slice(0, 3).join(", ");
    throw new UserError(`${where}: onnxruntime failed on ${shapes}: ${firstLine(e)}`);
  }
}

function classifierTeacher(session: ort.InferenceSession, where: string, e: Extract<OnnxExpectation, { family: "classifier" }>, inputs: Meta[], outputs: Meta[], chunk: number): Core {
  const { height: H, width: W, channels: C, classes } = e;
  const want: Dim[] = ["batch", C, H, W];
  const pixels = findOne(inputs, "pixel_values");
  if (inputs.length !== 1 || !fits(pixels, "float32", want)) {
    throw new UserError(`${where}: input ${inputs.map(show).join(", ") || "none"} does not match the expected ${showExpected("pixel_values", "float32", want)}`);
  }
  checkLogits(where, outputs, ["batch", classes], `${classes} classes`);
  const dim = H * W * C;
  return {
    classes,
    async softLabels(x, shape): Promise<SoftLabels> {
      const [n, d] = shape;
      if (!(x instanceof Float32Array) || shape.length !== 2 || d !== dim || x.length !== n * d) {
        throw new Error(`ONNX classifier teacher: expected float rows [N, ${dim}], got [${shape.join(", ")}]`);
      }
      const out = new Float32Array(n * classes);
      for (let start = 0; start < n; start += chunk) {
        const rows = Math.min(chunk, n - start);
        // distill's rows are channels-last (h, w, c); pixel_values is NCHW, the same order with one
        // channel. (onnxruntime-node refuses views of shared memory, where the pipeline keeps data
        // sets: those rows are copied.)
        const [lo, hi] = [start * dim, (start + rows) * dim];
        const nchw = C === 1 ? (x.buffer instanceof ArrayBuffer ? x.subarray(lo, hi) : x.slice(lo, hi)) : new Float32Array(rows * dim);
        if (C > 1) {
          for (let r = 0; r < rows; r++) {
            const src = (start + r) * dim;
            for (let p = 0; p < H * W; p++) for (let c = 0; c < C; c++) nchw[r * dim + c * H * W + p] = x[src + p * C + c];
          }
        }
        const logits = await run(session, where, { pixel_values: new ort.Tensor("float32", nchw, [rows, C, H, W]) });
        if (logits.dims.length !== 2 || logits.dims[0] !== rows || logits.dims[1] !== classes) {
          throw new UserError(`${where}: output "logits" is [${logits.dims.join(", ")}] for ${rows} images, expected [${rows}, ${classes}] (${classes} classes)`);
        }
        out.set(logits.data as Float32Array, start * classes);
      }
      return { kind: "dense", rows: n, classes, logits: out };
    },
  };
}

/** Row length of a probe run at open: the file must take whole rows of the recipe's length. */
async function textTeacher(
  session: ort.InferenceSession,
  where: string,
  e: { classes: number; vocab: number; length: number; padId: number },
  inputs: Meta[],
  outputs: Meta[],
): Promise<Core> {
  const { classes, length: T, padId } = e;
  const ids = findOne(inputs, "input_ids");
  if (!fits(ids, "int64", ["batch", "sequence"])) {
    const found = ids ? show(ids) : inputs.map(show).join(", ") || "none";
    throw new UserError(`${where}: input ${found} does not match the expected ${showExpected("input_ids", "int64", ["batch", "sequence"])} (a BERT-style text classifier)`);
  }
  for (const m of inputs) {
    const ok = ["input_ids", "attention_mask", "token_type_ids"].includes(m.name) && fits(m, "int64", ["batch", "sequence"]);
    if (!ok) throw new UserError(`${where}: input ${show(m)} is not one a text classifier is fed (input_ids, attention_mask, token_type_ids int64 [batch, sequence])`);
    if (fixed(m.shape[1]) && m.shape[1] !== T) throw new UserError(`${where}: input ${show(m)} takes ${m.shape[1]} tokens, the recipe's rows are ${T} long`);
  }
  checkLogits(where, outputs, ["batch", classes], `${classes} classes`);
  const call = async (x: ArrayLike<number>, b: number, len: number): Promise<Float32Array> => {
    const logits = await run(session, where, textFeeds(inputs, x, b, len, padId));
    if (logits.dims.length !== 2 || logits.dims[0] !== b || logits.dims[1] !== classes) {
      throw new UserError(`${where}: output "logits" is [${logits.dims.join(", ")}] for ${b} rows, expected [${b}, ${classes}] (${classes} classes)`);
    }
    return logits.data as Float32Array;
  };
  // A whole row of the recipe's length, probed now: a position table shorter than the rows (or a
  // model that does not give one logit per class) fails here, before any training.
  try {
    await call(new Float32Array(T).fill(padId === 0 ? 1 : 0), 1, T);
  } catch (err) {
    if (err instanceof UserError && /output "logits" is/.test(err.message)) throw err;
    throw new UserError(`${where}: cannot classify a row of ${T} tokens (the recipe's length; is the model's max_position_embeddings shorter?): ${firstLine(err).replace(/^.*?onnxruntime failed on [^:]*: /, "")}`);
  }
  return {
    classes,
    async softLabels(x, shape): Promise<SoftLabels> {
      const [n, d] = shape;
      if (!(x instanceof Float32Array) || shape.length !== 2 || d !== T || x.length !== n * T) throw new Error(`ONNX text teacher: expected float token rows [N, ${T}], got [${shape.join(", ")}]`);
      const out = new Float32Array(n * classes);
      for (let start = 0; start < n; start += CLASSIFIER_CHUNK) {
        const rows = Math.min(CLASSIFIER_CHUNK, n - start);
        const chunk = x.subarray(start * T, (start + rows) * T);
        // Trailing columns that are padding in every row change nothing (masked keys, [CLS]
        // pooling): the call reads only up to the chunk's longest row.
        let len = 1;
        for (let r = 0; r < rows; r++) for (let t = T - 1; t >= len; t--) if (chunk[r * T + t] !== padId) len = t + 1;
        const cut = len === T ? chunk : Float32Array.from({ length: rows * len }, (_, i) => chunk[Math.floor(i / len) * T + (i % len)]);
        out.set(await call(cut, rows, len), start * classes);
      }
      return { kind: "dense", rows: n, classes, logits: out };
    },
  };
}

function lmTeacher(session: ort.InferenceSession, where: string, e: Extract<OnnxExpectation, { family: "lm" }>, inputs: Meta[], outputs: Meta[]): Core {
  const { vocab } = e;
  const ids = findOne(inputs, "input_ids");
  if (!fits(ids, "int64", ["batch", "sequence"])) {
    const found = ids ? show(ids) : inputs.map(show).join(", ") || "none";
    throw new UserError(`${where}: input ${found} does not match the expected ${showExpected("input_ids", "int64", ["batch", "sequence"])}`);
  }
  for (const m of inputs) {
    if (m.name === "input_ids") continue;
    const ok =
      m.name === "attention_mask" || m.name === "position_ids"
        ? fits(m, "int64", ["batch", "sequence"])
        : PAST.test(m.name)
          ? fits(m, "float32", ["batch", "heads", "past", "head_dim"])
          : m.name === "use_cache_branch" && m.type === "bool";
    if (!ok) {
      throw new UserError(
        `${where}: input ${show(m)} is not one a causal LM teacher is fed (input_ids, attention_mask, position_ids int64 [batch, sequence]; empty past_key_values.N.key/value)`,
      );
    }
  }
  const logits = findOne(outputs, "logits");
  if (logits && logits.shape.length === 3 && fixed(logits.shape[2]) && logits.shape[2] !== vocab) {
    throw new UserError(`${where}: the teacher's vocabulary has ${logits.shape[2]} tokens, the student's tokenizer has ${vocab}`);
  }
  checkLogits(where, outputs, ["batch", "sequence", vocab], `vocabulary of ${vocab}`);

  return {
    classes: vocab,
    async softLabels(x, shape): Promise<SoftLabels> {
      const [B, T] = shape;
      if (!(x instanceof Int32Array) || shape.length !== 2 || x.length !== B * T) throw new Error(`ONNX LM teacher: expected int32 ids [B, T], got [${shape.join(", ")}]`);
      const out = new Float32Array(B * T * vocab);
      const per = Math.max(1, Math.floor(LM_POSITIONS_PER_CALL / T));
      for (let start = 0; start < B; start += per) {
        const b = Math.min(per, B - start);
        const feeds = wholeSequenceFeeds(inputs, x.subarray(start * T), b, T);
        const logits = await run(session, where, feeds);
        if (logits.dims.length !== 3 || logits.dims[0] !== b || logits.dims[1] !== T || logits.dims[2] !== vocab) {
          if (logits.dims[2] !== vocab) throw new UserError(`${where}: the teacher's vocabulary has ${logits.dims[2]} tokens, the student's tokenizer has ${vocab}`);
          throw new UserError(`${where}: output "logits" is [${logits.dims.join(", ")}] for input_ids [${b}, ${T}], expected [${b}, ${T}, ${vocab}]`);
        }
        out.set(logits.data as Float32Array, start * T * vocab);
      }
      return { kind: "dense", rows: B * T, classes: vocab, logits: out };
    },
  };
}
