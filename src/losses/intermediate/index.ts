// Losses beyond logits for encoders (TinyBERT, MiniLM, DistilBERT, FitNets): pure functions of
// the student's and teacher's EncoderFeatures, one file per loss, looked up by name.
//
// CONTRACT (implemented by the intermediate-loss work):
export const INTERMEDIATE_LOSSES = ["hidden-mse", "attention-kl", "value-relation", "embedding-mse", "hidden-cosine"] as const;
export type IntermediateLossName = (typeof INTERMEDIATE_LOSSES)[number];

export interface IntermediateTerm {
  name: IntermediateLossName;
  /** Added to the logit loss as weight × term. */
  weight: number;
  /** value-relation: relation heads both models' values are regrouped into (default: the student's heads). */
  relationHeads?: number;
}

export interface IntermediateSpec {
  /** [studentLayer, teacherLayer] pairs, 1-based blocks; default uniform (TinyBERT: m → m·N/M). */
  layerMap?: [number, number][];
  terms: IntermediateTerm[];
}
