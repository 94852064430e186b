// DistilBERT's cosine embedding loss (Sanh et al. 2019): 1 − cos(h_s, h_t) per token, averaged
// over the unpadded tokens, on the last layer pair; the student goes through a learned projection
// when the widths differ. cos = a·b / max(‖a‖‖b‖, 1e-8), as torch.nn.functional.cosine_similarity.
import { np, type Arr } from "../../engine/index.js";
import { constant, project, tokenMean, type Projection } from "./common.js";

const EPS = 1e-8;

/** hs [B, L, Hs], ht [B, L, Ht], mask [B, L]; a scalar. Consumes its arguments. */
export function hiddenCosine(hs: Arr, ht: Arr, mask: Arr, proj?: Projection): Arr {
  const a = project(hs, proj);
  const b = constant(ht);
  const dot = a.ref.mul(b.ref).sum(-1);
  // Squared norms clamped before the square root: sqrt's gradient at 0 is infinite.
  const norms = np.sqrt(np.maximum(np.square(a).sum(-1).mul(np.square(b).sum(-1)), EPS * EPS));
  return tokenMean(dot.div(norms).neg().add(1), mask);
}
