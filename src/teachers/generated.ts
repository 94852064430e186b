// Model-generated language-model batches: continuations of corpus prompts by the teacher
// (sequence-level KD) or by the student being trained (on-policy). They live beside the teachers
// because they run models; src/data/text-source.ts lays them out as batches without knowing one.
import { generate, type SampleOptions } from "../nn/generate.js";
import type { LanguageModel } from "../nn/llama.js";
import type { Params } from "../nn/models.js";
import { textSource, type Continuations, type TextSourceOptions } from "../data/text-source.js";
import type { BatchSource } from "../train/trainer.js";

/** A teacher that generates outside the engine (a server): its continuations of each prompt. */
export interface RemoteGenerator {
  continuations(prompts: Int32Array[], tokens: number, seed: number, sampling?: Omit<SampleOptions, "seed">): Promise<Int32Array[]>;
}

export interface GeneratingModels {
  /** A teacher that generates (distill's own Llama, or a server); absent for teachers that only score. */
  teacher?: { model: LanguageModel; params: Params } | RemoteGenerator;
  student: LanguageModel;
  sampling?: Omit<SampleOptions, "seed">;
}

/** Continuations by the teacher or by the student (with the parameters the trainer passes). */
export function modelContinuations(g: GeneratingModels): Continuations {
  return (mode, prompts, tokens, seed, studentParams) => {
    const by = mode === "teacher" ? g.teacher : { model: g.student, params: studentParams };
    if (!by) throw new Error("teacher-generated batches need a teacher that generates");
    if ("continuations" in by) return by.continuations(prompts, tokens, seed, g.sampling);
    return generate(by.model, by.params, prompts, tokens, { ...g.sampling, seed });
  };
}

/** `textSource` whose generated batches come from these models. */
export function modelTextSource(o: Omit<TextSourceOptions, "continuations"> & GeneratingModels): BatchSource {
  const { teacher, student, sampling, ...rest } = o;
  return textSource({ ...rest, continuations: modelContinuations({ teacher, student, sampling }) });
}
