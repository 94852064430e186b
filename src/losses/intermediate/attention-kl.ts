// Attention-distribution transfer. TinyBERT (Jiao et al. 2020) takes the MSE of the unnormalised
// scores; we take MiniLM's form (Wang et al. 2020) on the probabilities: KL(A_t ‖ A_s) per head
// per unpadded query row, summed over the unpadded keys, averaged over heads and unpadded rows
// (the trainer then averages over the mapped layer pairs). Heads are compared one to one, so the
// two models must have the same head count.
import { np, type Arr } from "../../engine/index.js";
import { constant, rowKL } from "./common.js";

// Attention probabilities are softmax outputs: a key can underflow to exactly 0 in float32, and
// log 0 would make 0·(−∞) = NaN. The floor is far below any probability that matters.
const FLOOR = 1e-30;
const safeLog = (p: Arr): Arr => np.log(np.maximum(p, FLOOR));

/** as, at [B, heads, L, L] (rows sum to 1 over unpadded keys), mask [B, L]; a scalar. Consumes its arguments. */
export function attentionKL(as: Arr, at: Arr, mask: Arr): Arr {
  return rowKL(safeLog(constant(at)), safeLog(as), mask);
}
