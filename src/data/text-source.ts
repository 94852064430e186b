// Language-model batches, mixed by fraction as in GKD: corpus windows (token-level KD),
// teacher-generated continuations of corpus prompts (sequence-level KD), and student-generated
// continuations that the teacher scores (on-policy). Every batch is [B, context] tokens with
// next-token labels (−1 = not trained on) and a mask for the divergence, whatever its mode,
// so one compiled step serves all three. This module knows no model: generated batches take
// their continuations from `continuations` (src/teachers/generated.ts makes it from models).
import type { BatchSource, HostBatch } from "../train/trainer.js";
import { sampleWindows } from "../text/corpus.js";
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
  return {
    stepsPerEpoch: o.steps,
    readsParams: (o.modes?.student ?? 0) > 0,
    async batch(_epoch, step, params): Promise<HostBatch> {
      const rng = new Rng(deriveSeed(o.seed, "windows", step));
      const { x, y } = sampleWindows(o.ids, C, B, rng);
      const mode = modeOf(o.modes ?? {}, o.seed, step);
      if (o.counts) o.counts[mode]++;
      const shape = [B, C];
      if (mode === "corpus") return { x, xShape: shape, labels: y, labelShape: shape, mask: new Float32Array(B * C).fill(1) };

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
      return { x: xs, xShape: shape, labels, labelShape: shape, mask };
    },
  };
}
