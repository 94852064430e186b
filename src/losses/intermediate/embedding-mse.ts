// Embedding-layer transfer (TinyBERT's embedding loss, Jiao et al. 2020): hidden-state MSE on
// hidden[0], the embedding layer's output (after its LayerNorm), through its own projection when
// the widths differ. Same convention as hidden-mse: mean over the teacher's width, then over the
// unpadded tokens.
import type { Arr } from "../../engine/index.js";
import { hiddenMSE } from "./hidden-mse.js";
import type { Projection } from "./common.js";

/** es [B, L, Hs], et [B, L, Ht], mask [B, L]; a scalar. Consumes its arguments. */
export function embeddingMSE(es: Arr, et: Arr, mask: Arr, proj?: Projection): Arr {
  return hiddenMSE(es, et, mask, proj);
}
