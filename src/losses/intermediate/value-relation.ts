// MiniLM's self-attention value-relation transfer (Wang et al. 2020): the values of all heads are
// concatenated and regrouped into R relation heads of width d_r = hidden / R (so the two models'
// widths and head counts may differ), VR = softmax(V·Vᵀ/√d_r) over the unpadded keys, and the loss
// is KL(VR_t ‖ VR_s) summed over keys, averaged over relation heads and unpadded query rows.
// MiniLM applies it to the last layer pair only (the trainer does).
import { np, nn, type Arr } from "../../engine/index.js";
import { constant, rowKL } from "./common.js";

/** [B, heads, L, d] → [B, R, L, heads·d / R]: concatenate the heads, split into R. */
function regroup(v: Arr, relationHeads: number): Arr {
  const [B, H, L, d] = v.shape;
  return v
    .transpose([0, 2, 1, 3])
    .reshape([B, L, relationHeads, (H * d) / relationHeads])
    .transpose([0, 2, 1, 3]);
}

/** log softmax(V·Vᵀ/√d_r) over the unpadded keys: [B, R, L, L]. Consumes v and mask. */
function logRelation(v: Arr, mask: Arr, relationHeads: number): Arr {
  const g = regroup(v, relationHeads);
  const [B, , L, dr] = g.shape;
  const s = np.matmul(g.ref, g.transpose([0, 1, 3, 2])).mul(1 / Math.sqrt(dr));
  // Padded keys get −1e9 added (HF's additive mask): exp underflows to exactly 0 there.
  const keyBias = mask.reshape([B, 1, 1, L]).sub(1).mul(1e9);
  return nn.logSoftmax(s.add(keyBias), -1);
}

/**
 * vs [B, Hs, L, ds], vt [B, Ht, L, dt] (each model's values), mask [B, L]; relationHeads divides
 * both Hs·ds and Ht·dt. A scalar; consumes its arguments.
 */
export function valueRelation(vs: Arr, vt: Arr, mask: Arr, relationHeads: number): Arr {
  const lt = logRelation(constant(vt), mask.ref, relationHeads);
  const ls = logRelation(vs, mask.ref, relationHeads);
  return rowKL(lt, ls, mask);
}
