// Helpers shared by the intermediate-layer losses: the optional student-side projection and
// masked means over unpadded tokens / query rows.
import { np, lax, type Arr } from "../../engine/index.js";

/** A learned map of the student's width onto the teacher's: y = h·Wᵀ + b, W stored [Ht, Hs] as nn.Linear. */
export interface Projection {
  weight: Arr;
  bias: Arr;
}

/** h·Wᵀ + b on the last axis (the student's side only: the teacher is the target). */
export function project(h: Arr, p?: Projection): Arr {
  if (!p) return h;
  return np.matmul(h, p.weight.transpose()).add(p.bias);
}

/** The teacher side of every loss: a constant, whatever the caller did. */
export const constant = (a: Arr): Arr => lax.stopGradient(a);

/** Mean of a [B, L] per-token value over the unpadded tokens (mask 1); consumes both. */
export function tokenMean(perToken: Arr, mask: Arr): Arr {
  const count = np.maximum(mask.ref.sum(), 1);
  return perToken.mul(mask).sum().div(count);
}

/**
 * KL(p_t ‖ p_s) summed over unpadded keys, averaged over heads and unpadded query rows, from
 * log-probabilities [B, H, L, L]; consumes all three. Padded keys are zeroed by the mask (not by
 * the probabilities), so whatever sits there adds nothing.
 */
export function rowKL(logPt: Arr, logPs: Arr, mask: Arr): Arr {
  const [B, H, L] = logPt.shape;
  const keys = mask.ref.reshape([B, 1, 1, L]);
  const perRow = np.exp(logPt.ref).mul(logPt.sub(logPs)).mul(keys).sum(-1); // [B, H, L]
  const rows = mask.reshape([B, 1, L]);
  const count = np.maximum(rows.ref.sum().mul(H), 1);
  return perRow.mul(rows).sum().div(count);
}
