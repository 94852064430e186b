// Where language-model batches come from, as given in a recipe's `modes` (fractions by source).
// Its own small module so that recipe validation and the report read the same rule as the batch
// source without importing the engine.

export interface ModeFractions {
  corpus?: number;
  teacher?: number;
  student?: number;
}

/** The weights as the batch source draws them: corpus defaults to 1 unless another mode is given. */
export function modeWeights(f: ModeFractions): { corpus: number; teacher: number; student: number } {
  return { corpus: f.corpus ?? (f.teacher || f.student ? 0 : 1), teacher: f.teacher ?? 0, student: f.student ?? 0 };
}
