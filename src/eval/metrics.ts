// Classification metrics on host logits [N, C].

export interface ClassMetrics {
  accuracy: number;
  agreement: number;
  ece: number;
  loss: number;
  /**
   * The unweighted mean over classes of F1 = 2·TP / (2·TP + FP + FN); a class that is neither
   * present nor predicted scores 1 (nothing to get wrong). With imbalanced classes it shows what
   * accuracy hides: a model that never predicts the rare class loses that class's whole F1.
   */
  macroF1: number;
}

export function argmaxRows(logits: Float32Array, classes: number): Int32Array {
  const n = logits.length / classes;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (logits[i * classes + c] > logits[i * classes + best]) best = c;
    out[i] = best;
  }
  return out;
}

/** Softmax of one row, in float64. */
function softmaxRow(logits: Float32Array, offset: number, classes: number): Float64Array {
  let max = -Infinity;
  for (let c = 0; c < classes; c++) max = Math.max(max, logits[offset + c]);
  const p = new Float64Array(classes);
  let sum = 0;
  for (let c = 0; c < classes; c++) sum += p[c] = Math.exp(logits[offset + c] - max);
  for (let c = 0; c < classes; c++) p[c] /= sum;
  return p;
}

/** One confidence bin of a reliability diagram. */
export interface ReliabilityBin {
  /** Predictions whose top softmax probability falls in this bin. */
  count: number;
  /** Their mean top softmax probability (0 when the bin is empty). */
  confidence: number;
  /** The fraction of them that are correct (0 when the bin is empty). */
  accuracy: number;
}

/** The bin count of every reliability diagram and ECE in distill. */
export const CALIBRATION_BINS = 15;

/**
 * Reliability bins: `bins` equal-width bins of the top softmax probability over (0, 1] (bin b
 * holds (b/bins, (b+1)/bins]), each with its count, mean confidence and accuracy.
 */
export function reliabilityBins(logits: Float32Array, labels: Int32Array, classes: number, bins = CALIBRATION_BINS): ReliabilityBin[] {
  const count = new Float64Array(bins);
  const correct = new Float64Array(bins);
  const conf = new Float64Array(bins);
  for (let i = 0; i < labels.length; i++) {
    const p = softmaxRow(logits, i * classes, classes);
    let best = 0;
    for (let c = 1; c < classes; c++) if (p[c] > p[best]) best = c;
    const b = Math.min(bins - 1, Math.max(0, Math.ceil(p[best] * bins) - 1));
    count[b]++;
    conf[b] += p[best];
    if (best === labels[i]) correct[b]++;
  }
  return Array.from({ length: bins }, (_, b) => ({
    count: count[b],
    confidence: count[b] > 0 ? conf[b] / count[b] : 0,
    accuracy: count[b] > 0 ? correct[b] / count[b] : 0,
  }));
}

/** Σ_b (n_b / N)·|accuracy_b − mean confidence_b| over reliability bins. */
export function eceFromBins(bins: ReliabilityBin[]): number {
  const n = bins.reduce((a, b) => a + b.count, 0);
  if (n === 0) return NaN;
  return bins.reduce((a, b) => a + (b.count / n) * Math.abs(b.accuracy - b.confidence), 0);
}

/**
 * Expected calibration error with `bins` equal-width confidence bins over (0, 1]:
 * Σ_b (n_b / N)·|accuracy_b − mean confidence_b|, confidence = the top softmax probability.
 */
export function expectedCalibrationError(logits: Float32Array, labels: Int32Array, classes: number, bins = CALIBRATION_BINS): number {
  return eceFromBins(reliabilityBins(logits, labels, classes, bins));
}

/**
 * The confusion matrix: `m[t][p]` counts test examples of true class t predicted as p (rows
 * are true classes, as in scikit-learn's confusion_matrix).
 */
export function confusionMatrix(logits: Float32Array, labels: Int32Array, classes: number): number[][] {
  const top = argmaxRows(logits, classes);
  const m = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  for (let i = 0; i < labels.length; i++) m[labels[i]][top[i]]++;
  return m;
}

/** Mean cross-entropy in nats. */
export function meanCrossEntropy(logits: Float32Array, labels: Int32Array, classes: number): number {
  let total = 0;
  for (let i = 0; i < labels.length; i++) {
    const o = i * classes;
    let max = -Infinity;
    for (let c = 0; c < classes; c++) max = Math.max(max, logits[o + c]);
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp(logits[o + c] - max);
    total += Math.log(sum) + max - logits[o + labels[i]];
  }
  return total / labels.length;
}

/** Accuracy, agreement with the teacher's top class, 15-bin ECE and test loss. */
export function classificationMetrics(
  logits: Float32Array,
  labels: Int32Array,
  classes: number,
  teacherTop: Int32Array | null,
): ClassMetrics {
  const top = argmaxRows(logits, classes);
  let right = 0;
  let agree = 0;
  for (let i = 0; i < labels.length; i++) {
    if (top[i] === labels[i]) right++;
    if (teacherTop && top[i] === teacherTop[i]) agree++;
  }
  return {
    accuracy: right / labels.length,
    agreement: teacherTop ? agree / labels.length : NaN,
    ece: expectedCalibrationError(logits, labels, classes),
    loss: meanCrossEntropy(logits, labels, classes),
    macroF1: macroF1(top, labels, classes),
  };
}

export function macroF1(predicted: Int32Array, labels: Int32Array, classes: number): number {
  const tp = new Float64Array(classes);
  const fp = new Float64Array(classes);
  const fn = new Float64Array(classes);
  for (let i = 0; i < labels.length; i++) {
    if (predicted[i] === labels[i]) tp[labels[i]]++;
    else {
      fp[predicted[i]]++;
      fn[labels[i]]++;
    }
  }
  let sum = 0;
  for (let c = 0; c < classes; c++) {
    const d = 2 * tp[c] + fp[c] + fn[c];
    sum += d === 0 ? 1 : (2 * tp[c]) / d;
  }
  return sum / classes;
}
