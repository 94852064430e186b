// Confusion matrix and reliability bins against hand-computed cases.
import { test } from "node:test";
import assert from "node:assert/strict";
import { confusionMatrix, eceFromBins, expectedCalibrationError, reliabilityBins } from "../src/eval/metrics.js";

const L3 = Math.log(3);
const L9 = Math.log(9);

test("confusionMatrix: rows are true classes, columns predictions", () => {
  // 3 classes; predictions (argmax): 2, 0, 1, 1, 2.
  const logits = Float32Array.from([0, 0, 5, 4, 1, 0, 0, 3, 1, 0, 2, 0, 1, 0, 9]);
  const labels = Int32Array.from([2, 0, 0, 1, 1]);
  assert.deepEqual(confusionMatrix(logits, labels, 3), [
    [1, 1, 0], // class 0: once right, once taken for 1
    [0, 1, 1], // class 1: once right, once taken for 2
    [0, 0, 1],
  ]);
});

test("reliabilityBins: 15 equal-width bins of the top probability, with count, mean confidence and accuracy", () => {
  // Two classes. Top probabilities: 0.75 (right), 0.75 (wrong), 0.9 (right), 0.5 (a tie: class 0, wrong).
  const logits = Float32Array.from([0, L3, L3, 0, 0, L9, 0, 0]);
  const labels = Int32Array.from([1, 1, 1, 1]);
  const bins = reliabilityBins(logits, labels, 2);
  assert.equal(bins.length, 15);
  const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-6, `${a} vs ${b}`);
  // 0.75 lies in (11/15, 12/15], bin 11; 0.9 in (13/15, 14/15], bin 13; 0.5 in (7/15, 8/15], bin 7.
  assert.deepEqual(bins.map((b) => b.count), [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 1, 0]);
  close(bins[11].confidence, 0.75);
  close(bins[11].accuracy, 0.5);
  close(bins[13].confidence, 0.9);
  close(bins[13].accuracy, 1);
  close(bins[7].confidence, 0.5);
  close(bins[7].accuracy, 0);
  // ECE = 2/4·|0.5 − 0.75| + 1/4·|1 − 0.9| + 1/4·|0 − 0.5| = 0.275, the same both ways.
  close(eceFromBins(bins), 0.275);
  close(expectedCalibrationError(logits, labels, 2), 0.275);
});
