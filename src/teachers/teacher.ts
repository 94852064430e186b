// Teacher adapters. A teacher is frozen: its outputs are computed once per training example
// and reused every epoch (the soft-label cache), unless augmentation makes every view new,
// in which case the trainer runs it inside the step on the student's exact view.
import { predictLogits } from "../eval/predict.js";
import type { Model, Params } from "../nn/models.js";
import type { Examples } from "../data/batches.js";

/** Examples the teacher has been run on (cached passes and live passes), for tests and logs. */
export const teacherCounter = { examples: 0 };

export interface Teacher {
  model: Model;
  params: Params;
}

/** Teacher logits [N, classes] for every training example, computed in one pass. */
export async function cacheTeacherLogits(teacher: Teacher, data: Examples, workers = 1): Promise<Float32Array> {
  teacherCounter.examples += data.n;
  return predictLogits(teacher.model, teacher.params, data.x, data.dim, workers);
}
