// The recipe's `train.intermediate` field. Only the shape is checked here; what depends on the two
// models (layer ranges, head counts, relation heads) is `checkIntermediate`, run when both are known.
import { z } from "zod";
import { INTERMEDIATE_LOSSES } from "./index.js";

export const IntermediateTermSchema = z.strictObject({
  name: z.enum(INTERMEDIATE_LOSSES),
  weight: z.number().min(0),
  /** value-relation only: the relation heads (default: the student's heads). */
  relationHeads: z.number().int().positive().optional(),
});

export const IntermediateSchema = z.strictObject({
  /** [[studentLayer, teacherLayer], ...], 1-based blocks; default uniform (TinyBERT). */
  layerMap: z.array(z.tuple([z.number().int().positive(), z.number().int().positive()])).min(1).optional(),
  terms: z.array(IntermediateTermSchema).min(1),
});
