// The teacher, as the trainer sees it: something that yields soft labels, whatever it is.
// Two kinds of adapter:
// - distill's own model (trained here, a distill checkpoint, a Hugging Face folder loaded into
//   distill's Llama): it runs in the engine, so it can also run inside the compiled training
//   step (live, on augmented views) or fill the soft-label cache in one pass;
// - an external teacher (src/teachers/types.ts: ONNX, GGUF, ...): it runs on the host, batch by
//   batch, and its soft labels (dense logits or top-k log-probabilities) ride on the host batch
//   (`HostBatch.teacherLogits` / `teacherTopK`), which the loss reads without asking where they
//   came from.
// Either way a teacher is frozen: without augmentation its outputs are computed once per
// training example and reused every epoch (the soft-label cache).
import { classifierLogits, type InferenceEngine } from "./own-onnx.js";
import type { Model, Params } from "../nn/models.js";
import type { Examples } from "../data/batches.js";
import type { BatchSource, HostBatch } from "../train/trainer.js";
import { UserError } from "../util/errors.js";
import type { ExternalTeacher, SoftLabels } from "./types.js";

/** Examples the teacher has been run on (cached passes and live passes), for tests and logs. */
export const teacherCounter = { examples: 0 };

/** distill's own model as a teacher. */
export interface NativeTeacher {
  model: Model;
  params: Params;
}

/** Any teacher: distill's own model, or one that runs outside the engine. */
export type Teacher = NativeTeacher | ExternalTeacher;

export function isExternal(t: Teacher | { softLabels?: unknown }): t is ExternalTeacher {
  return typeof (t as ExternalTeacher).softLabels === "function";
}

/**
 * onnxruntime threads for distill's own teacher labelling batches during training: it labels the
 * next batch while the replicas train on this one, so one thread, not one per core (char-LM
 * distillation step, 2 replicas, the bench edited to each count: 208–212 ms with one thread,
 * 247–253 with two).
 */
export const TEACHER_THREADS = 1;

/** Rows per call to an external teacher when it fills the cache (bounded host memory). */
const EXTERNAL_BATCH = 256;

/** Teacher logits [N, classes] for every training example, computed in one pass. */
export async function cacheTeacherLogits(teacher: Teacher, data: Examples, workers = 1, engine: InferenceEngine = "distill"): Promise<Float32Array> {
  teacherCounter.examples += data.n;
  return teacherLogits(teacher, data.x, data.dim, workers, engine);
}

/** A classifier teacher's logits [N, classes] on N rows of `x` (`dim` floats each). */
export async function teacherLogits(teacher: Teacher, x: Float32Array, dim: number, workers = 1, engine: InferenceEngine = "distill"): Promise<Float32Array> {
  if (!isExternal(teacher)) return classifierLogits(teacher.model, teacher.params, x, dim, workers, engine);
  const n = x.length / dim;
  const out = new Float32Array(n * teacher.classes);
  for (let lo = 0; lo < n; lo += EXTERNAL_BATCH) {
    const rows = Math.min(EXTERNAL_BATCH, n - lo);
    const s = await teacher.softLabels(x.subarray(lo * dim, (lo + rows) * dim), [rows, dim]);
    if (s.kind !== "dense") throw new UserError(`${teacher.source}: a classifier teacher must give full logits, not its top ${s.k}`);
    checkRows(teacher, s, rows);
    out.set(s.logits, lo * teacher.classes);
  }
  return out;
}

function checkRows(teacher: ExternalTeacher, s: SoftLabels, rows: number): void {
  if (s.rows !== rows || s.classes !== teacher.classes) {
    throw new Error(`${teacher.source}: soft labels for ${s.rows} rows × ${s.classes} classes, expected ${rows} × ${teacher.classes}`);
  }
}

/**
 * log(1 − Σ_k p) per row in float64, from the kept log-probabilities [rows, k]; −∞ where the
 * kept classes hold all the mass (up to rounding). For teachers that do not report their tail.
 */
export function logTailOf(logprobs: Float32Array, rows: number, k: number): Float32Array {
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let kept = 0;
    for (let j = 0; j < k; j++) kept += Math.exp(logprobs[r * k + j]);
    out[r] = kept < 1 ? Math.log1p(-kept) : -Infinity;
  }
  return out;
}

/**
 * A teacher's top k per row of dense logits [rows, classes], at T = 1, computed in float64:
 * ids and log-probabilities sorted by descending probability, and the exact log tail mass (a
 * log-sum-exp of the classes not kept). What a top-k runtime reports, made from a dense one
 * (for tests, and for the report's view of a dense teacher cut to k).
 */
export function topKOfLogits(logits: Float32Array, rows: number, classes: number, k: number): Extract<SoftLabels, { kind: "topk" }> & { logTail: Float32Array } {
  const ids = new Int32Array(rows * k);
  const logprobs = new Float32Array(rows * k);
  const logTail = new Float32Array(rows);
  const order = new Int32Array(classes);
  const scratch = new Float32Array(classes);
  const kept = new Uint8Array(classes);
  for (let r = 0; r < rows; r++) {
    const row = logits.subarray(r * classes, (r + 1) * classes);
    let max = -Infinity;
    let nan = false;
    for (let j = 0; j < classes; j++) {
      max = Math.max(max, row[j]);
      nan ||= Number.isNaN(row[j]);
    }
    let sum = 0;
    for (let j = 0; j < classes; j++) sum += Math.exp(row[j] - max);
    const lse = max + Math.log(sum);
    // The k largest without sorting the whole row (a 32k vocabulary took 20 ms a row sorted):
    // the k-th largest value by selection, then every value above it and, ties by the smaller
    // id, as many equal to it as fit. A row with NaN is sorted whole, as before.
    let n = 0;
    if (nan || k >= classes) {
      for (let j = 0; j < classes; j++) order[n++] = j;
    } else {
      scratch.set(row);
      const t = kthLargest(scratch, k);
      for (let j = 0; j < classes; j++) if (row[j] > t) order[n++] = j;
      for (let j = 0; j < classes && n < k; j++) if (row[j] === t) order[n++] = j;
    }
    // Descending probability; ties by the smaller id (as lax.topK keeps the first).
    const sorted = Array.from(order.subarray(0, n)).sort((a, b) => row[b] - row[a] || a - b);
    for (let j = 0; j < k; j++) {
      ids[r * k + j] = sorted[j];
      logprobs[r * k + j] = row[sorted[j]] - lse;
      kept[sorted[j]] = 1;
    }
    let tailMax = -Infinity;
    for (let j = 0; j < classes; j++) if (!kept[j]) tailMax = Math.max(tailMax, row[j]);
    let tail = 0;
    for (let j = 0; j < classes; j++) if (!kept[j]) tail += Math.exp(row[j] - tailMax);
    for (let j = 0; j < k; j++) kept[sorted[j]] = 0;
    logTail[r] = k < classes ? tailMax + Math.log(tail) - lse : -Infinity;
  }
  return { kind: "topk", rows, classes, k, ids, logprobs, logTail };
}

/** The k-th largest of `a` (1-based; reorders `a`): iterative quickselect, middle pivot. */
function kthLargest(a: Float32Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  const want = k - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >>> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] > pivot) i++;
      while (a[j] < pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (want <= j) hi = j;
    else if (want >= i) lo = i;
    else return a[want];
  }
  return a[want];
}

/** Puts a teacher's soft labels for batch `hb` on it, dense or top-k, shaped like its labels. */
export function attachSoftLabels(hb: HostBatch, s: SoftLabels, source: string): HostBatch {
  const lead = hb.labelShape ?? [hb.xShape[0]];
  const rows = lead.reduce((a, b) => a * b, 1);
  if (s.rows !== rows) throw new Error(`${source}: soft labels for ${s.rows} rows, the batch has ${rows}`);
  if (s.kind === "dense") return { ...hb, teacherLogits: s.logits, teacherShape: [...lead, s.classes] };
  const logTail = s.logTail ?? logTailOf(s.logprobs, rows, s.k);
  return { ...hb, teacherTopK: { k: s.k, ids: s.ids, logprobs: s.logprobs, logTail } };
}

/**
 * A batch source whose batches carry an external teacher's soft labels for their inputs (LM
 * windows, generated text, augmented views): the trainer then needs no teacher of its own.
 */
export function withSoftLabels(source: BatchSource, teacher: ExternalTeacher): BatchSource {
  return withLabelsFrom(source, teacher.source, (hb) => teacher.softLabels(hb.x, hb.xShape));
}

/** A batch source whose batches carry the soft labels `labelsOf` gives for each (`name` for errors). */
export function withLabelsFrom(source: BatchSource, name: string, labelsOf: (hb: HostBatch) => Promise<SoftLabels>): BatchSource {
  const { rebuild: _workersCannotRunIt, ...rest } = source;
  return {
    ...rest,
    async batch(epoch, step, params) {
      const hb = await source.batch(epoch, step, params);
      teacherCounter.examples += hb.xShape[0];
      return attachSoftLabels(hb, await labelsOf(hb), name);
    },
  };
}

/** Windows per call when an external language model is evaluated. */
const EXTERNAL_WINDOWS = 32;

/**
 * An external language model's log-probabilities [windows·context, vocab] over evaluation
 * windows `x` ([windows, context]) with next tokens `y`. A top-k teacher gives no probability
 * outside its k: there each token gets an equal share of its tail mass, log(tail / (V − k)), so
 * top-1 accuracy and agreement are exact but the held-out NLL is an estimate wherever the true
 * next token is not among the k; `coverage` is the share of positions where it is (the NLL is
 * exact there).
 */
export async function externalLMLogProbs(teacher: ExternalTeacher, x: Int32Array, context: number, y: Int32Array): Promise<{ logits: Float32Array; coverage?: number }> {
  return lmLogProbsOf(
    async (w, n) => {
      const s = await teacher.softLabels(x.subarray(w * context, (w + n) * context), [n, context]);
      checkRows(teacher, s, n * context);
      return s;
    },
    x.length / context,
    context,
    teacher.classes,
    y,
  );
}

/**
 * The same from any source of soft labels for windows [w, w + n) (an external teacher, a
 * soft-label cache's held-out split): dense rows are copied, top-k rows expanded as above.
 */
export async function lmLogProbsOf(
  labels: (w: number, n: number) => Promise<SoftLabels>,
  windows: number,
  context: number,
  V: number,
  y: Int32Array,
): Promise<{ logits: Float32Array; coverage?: number }> {
  const out = new Float32Array(windows * context * V);
  let covered = 0;
  let topk = false;
  for (let w = 0; w < windows; w += EXTERNAL_WINDOWS) {
    const n = Math.min(EXTERNAL_WINDOWS, windows - w);
    const s = await labels(w, n);
    const base = w * context * V;
    if (s.kind === "dense") {
      out.set(s.logits, base);
      continue;
    }
    topk = true;
    const tail = s.logTail ?? logTailOf(s.logprobs, s.rows, s.k);
    for (let r = 0; r < s.rows; r++) {
      const row = out.subarray(base + r * V, base + (r + 1) * V);
      row.fill(s.k < V ? tail[r] - Math.log(V - s.k) : -Infinity);
      for (let j = 0; j < s.k; j++) {
        const id = s.ids[r * s.k + j];
        row[id] = s.logprobs[r * s.k + j];
        if (id === y[w * context + r]) covered++;
      }
    }
  }
  return topk ? { logits: out, coverage: covered / y.length } : { logits: out };
}
