// Hidden-state MSE (FitNets' hints, Romero et al. 2015; TinyBERT's hidden loss, Jiao et al.
// 2020): MSE(h_s·Wᵀ + b, h_t), W a learned [Ht, Hs] projection applied to the STUDENT (absent when
// the widths are equal). Convention: the squared error is averaged over the teacher's width, then
// over the unpadded tokens; the trainer averages over the mapped layer pairs.
import { np, type Arr } from "../../engine/index.js";
import { constant, project, tokenMean, type Projection } from "./common.js";

/** hs [B, L, Hs], ht [B, L, Ht], mask [B, L] (1 = token); a scalar. Consumes its arguments. */
export function hiddenMSE(hs: Arr, ht: Arr, mask: Arr, proj?: Projection): Arr {
  const d = project(hs, proj).sub(constant(ht));
  return tokenMean(np.square(d).mean(-1), mask);
}
