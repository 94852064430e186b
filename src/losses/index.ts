// Every distillation loss as a pure function of logits, looked up by name from a recipe.
// Conventions (docs: divergences sheet): p = softmax(t/T) is the teacher, q = softmax(s/T)
// the student; divergences are summed over classes and averaged per example ("batchmean"),
// then multiplied by T² (Hinton's convention, so λ keeps its meaning across temperatures).
import { np, nn, type Arr } from "../engine/index.js";
import { UserError } from "../util/errors.js";
import {
  checkDivergenceSpec,
  divergence,
  sparseDivergence,
  topKTeacher,
  type DivergenceName,
  type DivergenceSpec,
  type SparseTeacher,
} from "./divergences.js";

export * from "./divergences.js";

/**
 * What a loss may read: integer labels (−1 = unlabelled), the teacher's logits, and a mask over
 * the leading positions (1 = counts, 0 = padding) that the divergence term honours.
 */
export interface LossBatch {
  labels?: Arr;
  teacherLogits?: Arr;
  /**
   * A teacher that gives only its top k (e.g. llama.cpp): its k most probable classes per
   * position with log-probabilities at T = 1 and, when known, its exact log tail mass. Used in
   * place of `teacherLogits`.
   */
  teacherTopK?: SparseTeacher;
  mask?: Arr;
}

/** Returns a scalar; consumes its arguments. */
export type LossFn = (studentLogits: Arr, batch: LossBatch) => Arr;

export interface LossSpec {
  name: string;
  temperature?: number;
  lambda?: number;
  /** The KD term's divergence (hinton, soft-kd); default forward-kl. */
  divergence?: DivergenceName;
  /** Generalised JSD weight β (default 0.5). */
  beta?: number;
  /** Skew α of skew-kl / skew-reverse-kl (default 0.1). */
  alpha?: number;
  /** Keep only the teacher's k largest probabilities plus a tail bucket. */
  topK?: number;
}

/** The divergence options of a KD loss. */
export interface KDOptions {
  divergence?: DivergenceName;
  beta?: number;
  alpha?: number;
  topK?: number;
}

/**
 * Mean cross-entropy over the labelled examples of the batch. Label −1 marks an unlabelled
 * example: its one-hot row is all zeros, so it adds nothing and is not counted.
 */
export function crossEntropy(logits: Arr, labels: Arr): Arr {
  const classes = logits.shape[logits.shape.length - 1];
  // Compare against 0..C−1 rather than nn.oneHot: jax-js's oneHot gathers a row of eye(C), and
  // for index −1 that row is all ones, not all zeros, so unlabelled rows would count as labelled.
  const onehot = np
    .equal(labels.reshape([...labels.shape, 1]), np.arange(classes, undefined, 1, { dtype: np.int32 }))
    .astype(np.float32);
  const count = np.maximum(onehot.ref.sum(), 1);
  return nn.logSoftmax(logits, -1).mul(onehot).sum().neg().div(count);
}

/** KL(softmax(t/T) ‖ softmax(s/T)) per example, averaged over the batch ("batchmean"), × T². */
export function forwardKL(studentLogits: Arr, teacherLogits: Arr, temperature = 1): Arr {
  return divergence({ name: "forward-kl", temperature }, studentLogits, teacherLogits);
}

/**
 * The article's `nn.KLDivLoss()` default reduction: the mean over every element, so the KL is
 * also divided by the class count. Kept only to show the bug; never used for training.
 */
export function articleKLDiv(studentLogits: Arr, teacherLogits: Arr, temperature = 1): Arr {
  const classes = studentLogits.shape[studentLogits.shape.length - 1];
  return forwardKL(studentLogits, teacherLogits, temperature).div(classes);
}

/**
 * Hinton et al. 2015, generalised: λ·D(p‖q)·T² + (1−λ)·CE(s, y), CE on the unscaled student
 * logits. D is `opts.divergence` (default forward KL, Hinton's own), dense, or over the teacher's
 * top-k classes plus a tail bucket when `opts.topK` is set (the sparse teacher is built here from
 * the teacher logits) or when the batch brings a top-k teacher (`batch.teacherTopK`, T = 1 only).
 * `batch.mask` applies to D; CE already skips label −1.
 */
export function hintonKD(lambda: number, temperature: number, opts: KDOptions = {}): LossFn {
  const spec: DivergenceSpec = {
    name: opts.divergence ?? "forward-kl",
    temperature,
    beta: opts.beta,
    alpha: opts.alpha,
  };
  checkDivergenceSpec(spec);
  const topK = opts.topK;
  if (topK !== undefined && (!Number.isInteger(topK) || topK < 1)) {
    throw new UserError(`loss.topK: must be a positive integer, got ${topK}`);
  }
  // D(p‖q)·T², averaged over the unmasked positions (the T² is applied inside `divergence`).
  // The teacher comes as logits (dense, or cut to its top k here) or already as a top-k teacher.
  const kd = (s: Arr, t: Arr | SparseTeacher, mask?: Arr): Arr => {
    if (!("indices" in t)) {
      if (topK === undefined) return divergence(spec, s, t, mask);
      let teacher;
      try {
        teacher = topKTeacher(t, topK, temperature);
      } catch (e) {
        s.dispose();
        mask?.dispose();
        throw e;
      }
      return sparseDivergence(spec, s, teacher, mask);
    }
    const k = t.indices.shape[t.indices.shape.length - 1];
    // A top-k teacher's log-probabilities are at T = 1. Tempering them would need the classes
    // it did not give (softmax(t/T) renormalises over all of them), so T ≠ 1 is refused rather
    // than approximated.
    const bad =
      temperature !== 1
        ? `loss.temperature: a top-k teacher gives log-probabilities at T = 1 only, got ${temperature}`
        : topK !== undefined && topK !== k
          ? `loss.topK: ${topK} differs from the teacher's own k = ${k}`
          : null;
    if (bad) {
      for (const a of [s, t.indices, t.logprobs, t.logTail, mask]) a?.dispose();
      throw new UserError(bad);
    }
    return sparseDivergence(spec, s, t, mask);
  };
  return (s, { labels, teacherLogits, teacherTopK, mask }) => {
    const teacher = teacherTopK ?? teacherLogits;
    if (teacherTopK) teacherLogits?.dispose();
    if (!teacher) throw new Error("hinton loss needs teacher logits or a top-k teacher");
    if (lambda >= 1) {
      labels?.dispose();
      return kd(s, teacher, mask);
    }
    if (!labels) throw new Error("hinton loss with lambda < 1 needs labels");
    let d: Arr;
    try {
      d = kd(s.ref, teacher, mask).mul(lambda);
    } catch (e) {
      s.dispose();
      labels.dispose();
      throw e;
    }
    return d.add(crossEntropy(s, labels).mul(1 - lambda));
  };
}

function kdOptions(s: LossSpec): KDOptions {
  return { divergence: s.divergence, beta: s.beta, alpha: s.alpha, topK: s.topK };
}

export interface LossInfo {
  needsTeacher: boolean;
  needsLabels: boolean;
  build(spec: LossSpec): LossFn;
}

function ce(): LossFn {
  return (s, { labels, teacherLogits, teacherTopK, mask }) => {
    teacherLogits?.dispose();
    for (const a of [teacherTopK?.indices, teacherTopK?.logprobs, teacherTopK?.logTail, mask]) a?.dispose();
    if (!labels) throw new Error("ce loss needs labels");
    return crossEntropy(s, labels);
  };
}

/** The registry: recipes name a loss, the trainer asks what it needs. */
export const LOSSES: Record<string, LossInfo> = {
  ce: { needsTeacher: false, needsLabels: true, build: () => ce() },
  hinton: {
    needsTeacher: true,
    needsLabels: true,
    build: (s) => hintonKD(s.lambda ?? 0.5, s.temperature ?? 1, kdOptions(s)),
  },
  // Pure soft-label KD: λ = 1, no labels read.
  "soft-kd": { needsTeacher: true, needsLabels: false, build: (s) => hintonKD(1, s.temperature ?? 1, kdOptions(s)) },
};

/**
 * The registry entry for a user-supplied name, or undefined. Own keys only: `LOSSES` is a plain
 * object, so `constructor`, `toString` or `__proto__` would otherwise find Object.prototype's.
 */
export function findLoss(name: string): LossInfo | undefined {
  return Object.hasOwn(LOSSES, name) ? LOSSES[name] : undefined;
}

export function lossInfo(spec: LossSpec): LossInfo & { needsLabels: boolean } {
  const info = findLoss(spec.name);
  if (!info) throw new UserError(`loss.name: unknown loss "${spec.name}" (known: ${Object.keys(LOSSES).join(", ")})`);
  // Hinton with λ = 1 reads no labels.
  const needsLabels = spec.name === "hinton" ? (spec.lambda ?? 0.5) < 1 : info.needsLabels;
  return { ...info, needsLabels };
}

export function buildLoss(spec: LossSpec): LossFn {
  return lossInfo(spec).build(spec);
}
