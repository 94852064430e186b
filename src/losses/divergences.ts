// The LM-distillation divergence family as pure functions of logits, as the project's
// divergences sheet defines them.
//
// Conventions (fixed by the divergences sheet):
// - p = softmax(t/T) is the teacher, q = softmax(s/T) the student, over the last axis [..., V];
//   any number of leading axes: [B, C] for classifiers, [B, T, V] for language models.
// - Each divergence is summed over V per position, averaged over the unmasked leading positions
//   (per example / per token), then multiplied by T² (Hinton's convention, so λ keeps its meaning
//   across temperatures; at T = 1 it changes nothing).
// - Values are true divergences (≥ 0, = 0 iff p = q), not DistiLLM's cross-entropies.
// - 0·log 0 = 0 everywhere: a −∞ logit (probability 0) gives neither a NaN value nor a NaN
//   gradient. Every `where` below feeds safe values to its untaken branch, because the gradient
//   of the untaken branch is multiplied by 0, and 0·∞ = NaN.
import { np, lax, type Arr } from "../engine/index.js";
import { UserError } from "../util/errors.js";

export const DIVERGENCES = ["forward-kl", "reverse-kl", "jsd", "skew-kl", "skew-reverse-kl", "tv"] as const;
export type DivergenceName = (typeof DIVERGENCES)[number];

export interface DivergenceSpec {
  name: DivergenceName;
  /** Softmax temperature T (default 1); the result is multiplied by T². */
  temperature?: number;
  /** Generalised JSD mixture weight of the teacher, m = β·p + (1−β)·q (default 0.5). */
  beta?: number;
  /** Skew of skew-kl / skew-reverse-kl (default 0.1). */
  alpha?: number;
}

/** A top-k teacher: the k largest teacher probabilities, the rest lumped in one tail bucket. */
export interface SparseTeacher {
  /** [..., k] int32 class indices. */
  indices: Arr;
  /** [..., k] log softmax(t/T) at those indices. */
  logprobs: Arr;
  /**
   * Optional [...] (the leading shape): log of the teacher's tail mass, log Σ_{j ∉ k} p_j,
   * computed exactly (`topKTeacher` fills it in). Without it the tail is 1 − Σ exp(logprobs),
   * which float32 rounds to 0 below ~6e-8: a tiny but real teacher tail then counts as empty,
   * and reverse KL, say, becomes +∞ wherever the student puts mass there.
   */
  logTail?: Arr;
}

/** Checks a divergence spec (name, T > 0, β and α in [0, 1]); throws a UserError naming the field. */
export function checkDivergenceSpec(spec: DivergenceSpec): void {
  if (!(DIVERGENCES as readonly string[]).includes(spec.name)) {
    throw new UserError(`loss.divergence: unknown divergence "${spec.name}" (known: ${DIVERGENCES.join(", ")})`);
  }
  const T = spec.temperature ?? 1;
  if (!(T > 0) || !Number.isFinite(T)) throw new UserError(`loss.temperature: must be > 0, got ${T}`);
  for (const [field, v] of [
    ["beta", spec.beta],
    ["alpha", spec.alpha],
  ] as const) {
    if (v !== undefined && !(v >= 0 && v <= 1)) throw new UserError(`loss.${field}: must be in [0, 1], got ${v}`);
  }
}

/**
 * log x, for x ≥ 1e-30 (e^(−y) must not overflow; every caller passes a sum ≥ 1 or a tail
 * ≥ 2^−24). jax-js's wasm `log` errs by up to ~1.3e-5 (absolute) just below powers of two,
 * which is 10% of a divergence of 1e-4; one Newton step on e^y = x, y ← y + x·e^(−y) − 1,
 * brings it to float32 rounding (its exp is accurate). The autodiff gradient is still 1/x.
 * Consumes `x`.
 */
function preciseLog(x: Arr): Arr {
  const y = np.log(x.ref);
  return y.ref.add(x.mul(np.exp(y.neg()))).sub(1);
}

/**
 * log Σ exp over the last axis (keepdims), −∞ for a row that is all −∞, with finite gradients
 * everywhere (a row of −∞ is computed on zeros and then replaced). Consumes `x`.
 */
function logSumExp(x: Arr): Arr {
  const hi = lax.stopGradient(x.ref.max(-1, { keepdims: true }));
  const finite = hi.ref.greater(-Infinity);
  const hiSafe = np.where(finite.ref, hi, 0);
  const xSafe = np.where(finite.ref, x, 0);
  // The sum is ≥ 1 (the max term is e^0), so the log is safe.
  const r = hiSafe.ref.add(preciseLog(np.exp(xSafe.sub(hiSafe)).sum(-1, { keepdims: true })));
  return np.where(finite, r, -Infinity);
}

/** log softmax over the last axis (with `preciseLog`). Consumes `x`. */
function logSoftmax(x: Arr): Arr {
  return x.ref.sub(logSumExp(x));
}

/**
 * log(wa·e^la + wb·e^lb) elementwise, in log space: no tiny probabilities are formed, so no
 * 1/m overflows in the gradient; −∞ where both are −∞. wa, wb > 0. Consumes la and lb.
 */
function logMix(wa: number, la: Arr, wb: number, lb: Arr): Arr {
  const a = la.add(Math.log(wa));
  const b = lb.add(Math.log(wb));
  return np.squeeze(logSumExp(np.stack([a, b], -1)), -1);
}

/** log m where m ≥ 0 is 0 or ≥ 1e-30: −∞ where m = 0, never a NaN gradient. Consumes `m`. */
function safeLog(m: Arr): Arr {
  const pos = m.ref.greater(0);
  return np.where(pos.ref, preciseLog(np.where(pos, m, 1)), -Infinity);
}

/**
 * Σ_last a·(log a − log b), with a = 0 terms exactly 0 (also in the gradient). A term with
 * a > 0 and b = 0 is +∞: that divergence really is infinite. Consumes all three.
 */
function klSum(a: Arr, logA: Arr, logB: Arr): Arr {
  const pos = a.ref.greater(0);
  const la = np.where(pos.ref, logA, 0);
  const lb = np.where(pos.ref, logB, 0);
  return np.where(pos, a.mul(la.sub(lb)), 0).sum(-1);
}

/**
 * The per-position divergence over the last axis, from the student's and the teacher's
 * log-probabilities (either may hold −∞). Returns the leading shape. Consumes both.
 */
function perPosition(spec: DivergenceSpec, logq: Arr, logp: Arr): Arr {
  const beta = spec.beta ?? 0.5;
  const alpha = spec.alpha ?? 0.1;
  const p = () => np.exp(logp.ref);
  const q = () => np.exp(logq.ref);
  switch (spec.name) {
    case "forward-kl":
      return klSum(p(), logp, logq);
    case "reverse-kl":
      return klSum(q(), logq, logp);
    case "jsd": {
      // β = 0 and β = 1 are defined as forward and reverse KL (as TRL does); the formula itself
      // tends to 0 at both ends.
      if (beta === 0) return klSum(p(), logp, logq);
      if (beta === 1) return klSum(q(), logq, logp);
      const logm = logMix(beta, logp.ref, 1 - beta, logq.ref);
      const toTeacher = klSum(p(), logp, logm.ref).mul(beta);
      return toTeacher.add(klSum(q(), logq, logm).mul(1 - beta));
    }
    case "skew-kl": {
      // KL(p ‖ α·p + (1−α)·q); α = 0 is forward KL.
      if (alpha === 0) return klSum(p(), logp, logq);
      const logm = alpha === 1 ? logp.ref : logMix(alpha, logp.ref, 1 - alpha, logq);
      if (alpha === 1) logq.dispose();
      return klSum(p(), logp, logm);
    }
    case "skew-reverse-kl": {
      // KL(q ‖ (1−α)·p + α·q); α = 0 is reverse KL.
      if (alpha === 0) return klSum(q(), logq, logp);
      const logm = alpha === 1 ? logq.ref : logMix(1 - alpha, logp, alpha, logq.ref);
      if (alpha === 1) logp.dispose();
      return klSum(q(), logq, logm);
    }
    case "tv": {
      // ½·Σ|p − q|, as d·sign(d): its gradient is sign(d), 0 at the kink (np.abs gives 1 there).
      const d = p().sub(q());
      logp.dispose();
      logq.dispose();
      return d.ref.mul(np.sign(d)).sum(-1).mul(0.5);
    }
    default: {
      logp.dispose();
      logq.dispose();
      throw new UserError(`unknown divergence "${(spec as { name: string }).name}" (known: ${DIVERGENCES.join(", ")})`);
    }
  }
}

/** The mask's shape must be the logits' leading shape; returns the error message, if any. */
function maskShapeError(mask: Arr | undefined, lead: number[]): string | null {
  if (!mask) return null;
  if (mask.shape.length === lead.length && mask.shape.every((n, i) => n === lead[i])) return null;
  return `divergence mask shape [${mask.shape}] does not match the logits' leading shape [${lead}]`;
}

/** Boolean [..., 1] "this position counts" from a 0/1 (or boolean) mask. Consumes `mask`. */
function keepOf(mask: Arr): Arr {
  return mask.astype(np.float32).greater(0).reshape([...mask.shape, 1]);
}

/**
 * Padded positions get `fill` instead of their values, so that whatever they hold (∞, NaN, a
 * divergence that is infinite there) cannot reach the value or, through 0·∞, the gradient.
 * Consumes `x`, not `keep`.
 */
function neutralise(x: Arr, keep: Arr | undefined, fill: number): Arr {
  return keep ? np.where(keep.ref, x, fill) : x;
}

/**
 * Mean of the per-position values `d` over the positions kept (all of them without a mask; 0,
 * not NaN, when everything is masked), × T². `keep` is [..., 1] boolean. Consumes both.
 */
function reducePositions(d: Arr, T: number, keep?: Arr): Arr {
  // × T²: Hinton's convention, so λ keeps its meaning across temperatures (the sheet's values
  // are before this factor).
  const T2 = T * T;
  if (!keep) {
    const count = Math.max(d.size, 1);
    return d.sum().mul(T2 / count);
  }
  const k = keep.reshape(d.shape);
  const count = np.maximum(k.ref.astype(np.float32).sum(), 1);
  // `where`, not d·mask: a padded position must not leak in, whatever it holds.
  return np.where(k, d, 0).sum().div(count).mul(T2);
}

/** Runs the input checks; if one throws, frees `inputs` first, since these functions consume them. */
function checkOrDispose(inputs: (Arr | undefined)[], check: () => void): void {
  try {
    check();
  } catch (e) {
    for (const a of inputs) a?.dispose();
    throw e;
  }
}

/**
 * D(p ‖ q) (per `spec.name`) between p = softmax(t/T) and q = softmax(s/T) over the last axis,
 * averaged over the unmasked leading positions, × T². `mask` has the leading shape (1 = counts,
 * 0 = padding). Returns a scalar; consumes its arguments.
 */
export function divergence(spec: DivergenceSpec, studentLogits: Arr, teacherLogits: Arr, mask?: Arr): Arr {
  checkOrDispose([studentLogits, teacherLogits, mask], () => {
    checkDivergenceSpec(spec);
    const sShape = studentLogits.shape;
    const tShape = teacherLogits.shape;
    const badMask = maskShapeError(mask, sShape.slice(0, -1));
    if (badMask || sShape.length !== tShape.length || sShape.some((n, i) => n !== tShape[i])) {
      throw new Error(badMask ?? `divergence: student logits [${sShape}] and teacher logits [${tShape}] differ in shape`);
    }
  });
  const T = spec.temperature ?? 1;
  const keep = mask ? keepOf(mask) : undefined;
  // Padded positions become uniform p = q (logits 0): D = 0 there, gradient 0.
  const logq = logSoftmax(neutralise(studentLogits, keep, 0).div(T));
  const logp = logSoftmax(neutralise(teacherLogits, keep, 0).div(T));
  return reducePositions(perPosition(spec, logq, logp), T, keep);
}

/** onehot[..., i, j] = (indices[..., i] == j), boolean [..., k, V]. Consumes `indices`. */
function oneHotOf(indices: Arr, V: number): Arr {
  const k = indices.shape[indices.shape.length - 1];
  const lead = indices.shape.slice(0, -1);
  return np.equal(indices.reshape([...lead, k, 1]), np.arange(V, undefined, 1, { dtype: np.int32 }));
}

/**
 * The k largest teacher probabilities at temperature T, as indices and log-probabilities
 * (log softmax(t/T), not renormalised over the k), plus the exact log tail mass (a log-sum-exp
 * of the classes not kept; an [..., k, V] one-hot, see `sparseDivergence` on the cost). The
 * teacher is a fixed target, so no gradient flows back to its logits (top-k's gradient would
 * need a scatter, which jax-js cannot jit). Consumes `teacherLogits`.
 */
export function topKTeacher(teacherLogits: Arr, k: number, temperature: number): SparseTeacher {
  const V = teacherLogits.shape[teacherLogits.shape.length - 1];
  if (!Number.isInteger(k) || k < 1) {
    teacherLogits.dispose();
    throw new UserError(`loss.topK: must be a positive integer, got ${k}`);
  }
  if (k > V) {
    teacherLogits.dispose();
    throw new UserError(`loss.topK: k = ${k} is larger than the vocabulary size ${V}`);
  }
  if (!(temperature > 0)) {
    teacherLogits.dispose();
    throw new UserError(`loss.temperature: must be > 0, got ${temperature}`);
  }
  const logp = logSoftmax(lax.stopGradient(teacherLogits).div(temperature));
  const [logprobs, indices] = lax.topK(logp.ref, k, -1);
  const kept = oneHotOf(indices.ref, V).any(-2);
  const logTail = np.squeeze(logSumExp(np.where(kept, -Infinity, logp)), -1);
  return { indices, logprobs, logTail };
}

/**
 * The divergence over k + 1 outcomes: the teacher's k kept classes plus one tail bucket,
 * p_tail = 1 − Σ_k p_i and q_tail = 1 − Σ_k q_i over the same indices (the sheet's top-k
 * convention; both computed as the mass of the classes not kept when known, see
 * `SparseTeacher.logTail`). With k = V it equals `divergence`. Averaged over unmasked
 * positions, × T². Consumes its arguments (the teacher's arrays included).
 *
 * Cost: jax-js's gather (`np.takeAlongAxis`) differentiates through a scatter that `jit` cannot
 * compile, so the student's log-probabilities at the k indices are read through a one-hot
 * [..., k, V] comparison (a `where`, so a −∞ logit never meets a 0): O(k·V) memory and work per
 * position, fine for classifiers and small vocabularies, heavy for k·V in the millions.
 */
export function sparseDivergence(spec: DivergenceSpec, studentLogits: Arr, teacher: SparseTeacher, mask?: Arr): Arr {
  const { indices, logprobs, logTail } = teacher;
  const sShape = studentLogits.shape;
  const lead = sShape.slice(0, -1);
  const V = sShape[sShape.length - 1];
  const k = indices.shape[indices.shape.length - 1];
  checkOrDispose([studentLogits, indices, logprobs, logTail, mask], () => {
    checkDivergenceSpec(spec);
    const want = [...lead, k];
    const same = (a: number[]) => a.length === want.length && a.every((n, i) => n === want[i]);
    const tailOk = !logTail || (logTail.shape.length === lead.length && logTail.shape.every((n, i) => n === lead[i]));
    if (!same(indices.shape) || !same(logprobs.shape) || !tailOk) {
      throw new Error(`sparse teacher shapes [${indices.shape}] / [${logprobs.shape}]${logTail ? ` / tail [${logTail.shape}]` : ""} do not match the student's [${lead}] × k`);
    }
    const badMask = maskShapeError(mask, lead);
    if (badMask) throw new Error(badMask);
    if (k > V) throw new UserError(`loss.topK: k = ${k} is larger than the vocabulary size ${V}`);
  });
  const T = spec.temperature ?? 1;
  const keep = mask ? keepOf(mask) : undefined;
  // Padded positions become a uniform student and a teacher with p = 1/k on its k classes (and
  // an empty tail): finite, so nothing there reaches the value or the gradient.
  const logqFull = logSoftmax(neutralise(studentLogits, keep, 0).div(T));
  const teacherLogp = neutralise(logprobs, keep, -Math.log(k));
  const onehot = oneHotOf(indices, V);
  const logqK = np.where(onehot.ref, logqFull.ref.reshape([...lead, 1, V]), 0).sum(-1);
  let logP: Arr;
  let logQ: Arr;
  if (k === V) {
    // No tail bucket: it is empty by construction. (Computing it would give 1 − Σ p rounding
    // noise on the teacher's side against an exact 0 on the student's.)
    onehot.dispose();
    logqFull.dispose();
    logTail?.dispose();
    logP = teacherLogp;
    logQ = logqK;
  } else {
    // Student tail: the log-sum-exp of the classes *not* kept, rather than log(1 − Σ_k q),
    // which cancels catastrophically when the tail is small (float32 noise ~1e-7 could make it
    // 0 and a forward KL infinite). −∞ only when the student gives the rest probability 0.
    const kept = onehot.any(-2);
    const logQTail = logSumExp(np.where(kept, -Infinity, logqFull));
    // Teacher tail: exact when the teacher carries it (topKTeacher); else only the k
    // log-probabilities are known, so 1 − Σ_k p, clipped at 0 (a tail of exactly 0 contributes
    // 0·log 0 = 0; a non-zero one is ≥ 2^−24 in float32).
    const logPTail = logTail
      ? neutralise(logTail.reshape([...lead, 1]), keep, -Infinity)
      : safeLog(np.maximum(np.exp(teacherLogp.ref).sum(-1, { keepdims: true }).neg().add(1), 0));
    logP = np.concatenate([teacherLogp, logPTail], -1);
    logQ = np.concatenate([logqK, logQTail], -1);
  }
  return reducePositions(perPosition(spec, logQ, logP), T, keep);
}
