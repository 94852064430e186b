// Every distillation loss as a pure function of logits, looked up by name from a recipe.
// Conventions (docs: divergences sheet): p = softmax(t/T) is the teacher, q = softmax(s/T)
// the student; divergences are summed over classes and averaged per example ("batchmean"),
// then multiplied by T² (Hinton's convention, so λ keeps its meaning across temperatures).
import { np, nn, type Arr } from "../engine/index.js";
import { UserError } from "../util/errors.js";

/** What a loss may read: integer labels (−1 = unlabelled) and the teacher's logits. */
export interface LossBatch {
  labels?: Arr;
  teacherLogits?: Arr;
}

/** Returns a scalar; consumes its arguments. */
export type LossFn = (studentLogits: Arr, batch: LossBatch) => Arr;

export interface LossSpec {
  name: string;
  temperature?: number;
  lambda?: number;
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
  const T = temperature;
  const logp = nn.logSoftmax(teacherLogits.div(T), -1);
  const logq = nn.logSoftmax(studentLogits.div(T), -1);
  // p·(log p − log q) with p = 0 contributing 0 even where log p = −∞.
  const p = np.exp(logp.ref);
  const terms = np.where(p.ref.greater(0), p.mul(logp.sub(logq)), 0);
  const batch = studentLogits.shape[0];
  return terms.sum().mul((T * T) / batch);
}

/**
 * The article's `nn.KLDivLoss()` default reduction: the mean over every element, so the KL is
 * also divided by the class count. Kept only to show the bug; never used for training.
 */
export function articleKLDiv(studentLogits: Arr, teacherLogits: Arr, temperature = 1): Arr {
  const classes = studentLogits.shape[studentLogits.shape.length - 1];
  return forwardKL(studentLogits, teacherLogits, temperature).div(classes);
}

/** Hinton et al. 2015: λ·KL(p‖q)·T² + (1−λ)·CE(s, y), CE on the unscaled student logits. */
export function hintonKD(lambda: number, temperature: number): LossFn {
  return (s, { labels, teacherLogits }) => {
    if (!teacherLogits) throw new Error("hinton loss needs teacher logits");
    if (lambda >= 1) {
      labels?.dispose();
      return forwardKL(s, teacherLogits, temperature);
    }
    if (!labels) throw new Error("hinton loss with lambda < 1 needs labels");
    const kd = forwardKL(s.ref, teacherLogits, temperature).mul(lambda);
    return kd.add(crossEntropy(s, labels).mul(1 - lambda));
  };
}

export interface LossInfo {
  needsTeacher: boolean;
  needsLabels: boolean;
  build(spec: LossSpec): LossFn;
}

function ce(): LossFn {
  return (s, { labels, teacherLogits }) => {
    teacherLogits?.dispose();
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
    build: (s) => hintonKD(s.lambda ?? 0.5, s.temperature ?? 1),
  },
  // Pure soft-label KD: λ = 1, no labels read.
  "soft-kd": { needsTeacher: true, needsLabels: false, build: (s) => hintonKD(1, s.temperature ?? 1) },
};

export function lossInfo(spec: LossSpec): LossInfo & { needsLabels: boolean } {
  const info = LOSSES[spec.name];
  if (!info) throw new UserError(`loss.name: unknown loss "${spec.name}" (known: ${Object.keys(LOSSES).join(", ")})`);
  // Hinton with λ = 1 reads no labels.
  const needsLabels = spec.name === "hinton" ? (spec.lambda ?? 0.5) < 1 : info.needsLabels;
  return { ...info, needsLabels };
}

export function buildLoss(spec: LossSpec): LossFn {
  return lossInfo(spec).build(spec);
}
