// Language-model batches, mixed by fraction as in GKD: corpus windows (token-level KD),
// teacher-generated continuations of corpus prompts (sequence-level KD), and student-generated
// continuations that the teacher scores (on-policy). Every batch is [B, context] tokens with
// next-token labels (−1 = not trained on) and a mask for the divergence, whatever its mode,
// so one compiled step serves all three. This module knows no model: generated batches take
// their continuations from `continuations` (src/teachers/generated.ts makes it from models).
import type { BatchSource, HostBatch } from "../train/trainer.js";
import { sampleWindows } from "../text/corpus.js";
import { WINDOWS_PER_CHUNK, chunkCount, chunkSize } from "../cache/types.js";
import { Rng, deriveSeed } from "../util/rng.js";
import { modeWeights, type ModeFractions } from "./modes.js";

export type Mode = "corpus" | "teacher" | "student";

export type { ModeFractions };

/** The student's current parameters, as the trainer passes them to a batch source. */
export type StudentParams = Parameters<BatchSource["batch"]>[2];

/**
 * Continues each prompt to `prompts[i].length + tokens` tokens, by the teacher or by the student
 * (with its current parameters), sampling with the seeded stream `seed`.
 */
export type Continuations = (mode: "teacher" | "student", prompts: Int32Array[], tokens: number, seed: number, student: StudentParams) => Promise<Int32Array[]>;

export interface TextSourceOptions {
  ids: Int32Array;
  context: number;
  batchSize: number;
  steps: number;
  seed: number;
  modes?: ModeFractions;
  /** Prompt tokens of generated batches; default half the context. */
  promptLength?: number;
  /** Needed when `modes` asks for generated batches. */
  continuations?: Continuations;
  /** Counts batches per mode, for logs and tests. */
  counts?: Record<Mode, number>;
  /**
   * "random" (default): B windows at seeded random offsets per step. "aligned": the consecutive
   * non-overlapping windows of `context` tokens a soft-label cache scores (evalWindows), in
   * `alignedWindows` order; each batch says which (`HostBatch.windows`).
   */
  windows?: "random" | "aligned";
}

/**
 * Window ids of step `step`'s batch of `batch` windows, out of `total` consecutive windows, in
 * the aligned order: per pass over the windows, the cache's chunks (at most WINDOWS_PER_CHUNK
 * windows each, strided over the text: src/cache/types.ts chunkCount) in a seeded permutation and
 * the windows inside each chunk in another, so a reader of a chunked cache holds at most two
 * chunks at a time; passes continue across steps. A pure function of (seed, step): a resumed run
 * replays the uninterrupted one.
 */
export function alignedWindows(seed: number, step: number, batch: number, total: number, perChunk = WINDOWS_PER_CHUNK): Int32Array {
  if (!Number.isInteger(total) || total < 1) throw new Error(`aligned windows: no whole window to draw (total ${total})`);
  const chunks = chunkCount(total, perChunk);
  const out = new Int32Array(batch);
  for (let b = 0; b < batch; b++) {
    // Positions counted in float64: exact up to 2^53 windows drawn.
    const p = step * batch + b;
    const pass = Math.floor(p / total);
    let r = p - pass * total;
    const order = passOrder(seed, pass, chunks);
    // The last chunk may be short: walk the pass's chunk order to the one holding position r.
    let j = 0;
    for (; ; j++) {
      const size = chunkSize(order[j], total, perChunk);
      if (r < size) break;
      r -= size;
    }
    const c = order[j];
    const size = chunkSize(c, total, perChunk);
    out[b] = c + withinOrder(seed, pass, c, size)[r] * chunks;
  }
  return out;
}

// The permutations are pure functions of their arguments; the last ones are kept so consecutive
// steps do not recompute them.
let lastPass: { key: string; order: Int32Array } | null = null;
function passOrder(seed: number, pass: number, chunks: number): Int32Array {
  const key = `${seed}:${pass}:${chunks}`;
  if (lastPass?.key !== key) lastPass = { key, order: new Rng(deriveSeed(seed, "aligned-chunks", pass)).permutation(chunks) };
  return lastPass.order;
}
const lastWithin = new Map<string, Int32Array>();
function withinOrder(seed: number, pass: number, chunk: number, size: number): Int32Array {
  const key = `${seed}:${pass}:${chunk}:${size}`;
  let o = lastWithin.get(key);
  if (!o) {
    if (lastWithin.size >= 4) lastWithin.delete(lastWithin.keys().next().value!);
    o = new Rng(deriveSeed(seed, "aligned-windows", pass, chunk)).permutation(size);
    lastWithin.set(key, o);
  }
  return o;
}

/** The mode of step `step`, drawn from the fractions with a per-step seeded stream. */
export function modeOf(fractions: ModeFractions, seed: number, step: number): Mode {
  const { corpus: c, teacher: t, student: s } = modeWeights(fractions);
  const u = (new Rng(deriveSeed(seed, "mode", step)).nextU32() / 4294967296) * (c + t + s);
  return u < c ? "corpus" : u < c + t ? "teacher" : "student";
}

export function textSource(o: TextSourceOptions): BatchSource {
  const C = o.context;
  const B = o.batchSize;
  const P = o.promptLength ?? Math.floor(C / 2);
  const total = Math.floor((o.ids.length - 1) / C);
  if (o.windows === "aligned" && total < 1) throw new Error(`aligned windows: ${o.ids.length} tokens hold no window of ${C}`);
  return {
    stepsPerEpoch: o.steps,
    readsParams: (o.modes?.student ?? 0) > 0,
    async batch(_epoch, step, params): Promise<HostBatch> {
      const windows = o.windows === "aligned" ? alignedWindows(o.seed, step, B, total) : undefined;
      const { x, y } = windows ? windowsOf(o.ids, C, windows) : sampleWindows(o.ids, C, B, new Rng(deriveSeed(o.seed, "windows", step)));
      const mode = modeOf(o.modes ?? {}, o.seed, step);
      if (o.counts) o.counts[mode]++;
      const shape = [B, C];
      const ids = windows ? { windows } : {};
      if (mode === "corpus") return { x, xShape: shape, labels: y, labelShape: shape, mask: new Float32Array(B * C).fill(1), ...ids };

      // Generated batch: corpus prompts of P tokens, continued to the full context.
      if (!o.continuations) throw new Error(`${mode}-generated batches need a model that generates`);
      const prompts = Array.from({ length: B }, (_, b) => x.slice(b * C, b * C + P));
      const seqs = await o.continuations(mode, prompts, C - P, deriveSeed(o.seed, "generate", step), params);
      const xs = new Int32Array(B * C);
      const labels = new Int32Array(B * C).fill(-1);
      const mask = new Float32Array(B * C);
      seqs.forEach((seq, b) => {
        xs.set(seq, b * C);
        // Train on predicting the generated tokens: positions P−1 .. C−2 predict P .. C−1.
        for (let t = P - 1; t < C - 1; t++) {
          mask[b * C + t] = 1;
          // Sequence-level KD learns the teacher's text; on-policy learns only from the
          // teacher's distributions over the student's own text (no label term).
          if (mode === "teacher") labels[b * C + t] = seq[t + 1];
        }
      });
      return { x: xs, xShape: shape, labels, labelShape: shape, mask, ...ids };
    },
  };
}

/** Inputs and next-token targets of consecutive windows `windows` (window w starts at w·context), as evalWindows cuts them. */
function windowsOf(ids: Int32Array, context: number, windows: Int32Array): { x: Int32Array; y: Int32Array } {
  const x = new Int32Array(windows.length * context);
  const y = new Int32Array(windows.length * context);
  windows.forEach((w, b) => {
    x.set(ids.subarray(w * context, w * context + context), b * context);
    y.set(ids.subarray(w * context + 1, w * context + context + 1), b * context);
  });
  return { x, y };
}
