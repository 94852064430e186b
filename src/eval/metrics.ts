// Classification metrics on host logits [N, C].

export interface ClassMetrics {
  accuracy: number;
  agreement: number;
  ece: number;
  loss: number;
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

/**
 * Expected calibration error with `bins` equal-width confidence bins over (0, 1]:
 * Σ_b (n_b / N)·|accuracy_b − mean confidence_b|, confidence = the top softmax probability.
 */
export function expectedCalibrationError(logits: Float32Array, labels: Int32Array, classes: number, bins = 15): number {
  const n = labels.length;
  const count = new Float64Array(bins);
  const correct = new Float64Array(bins);
  const conf = new Float64Array(bins);
  for (let i = 0; i < n; i++) {
    const p = softmaxRow(logits, i * classes, classes);
    let best = 0;
    for (let c = 1; c < classes; c++) if (p[c] > p[best]) best = c;
    const b = Math.min(bins - 1, Math.max(0, Math.ceil(p[best] * bins) - 1));
    count[b]++;
    conf[b] += p[best];
    if (best === labels[i]) correct[b]++;
  }
  let ece = 0;
  for (let b = 0; b < bins; b++) if (count[b] > 0) ece += Math.abs(correct[b] - conf[b]) / n;
  return ece;
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
  };
}
