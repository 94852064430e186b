import { test } from "node:test";
import assert from "node:assert/strict";
import { epochOrder, gatherRows, makeBatch, shiftImage, stepsPerEpoch } from "../src/data/batches.js";
import { trainingView } from "../src/data/datasets.js";
import { syntheticExamples } from "./helpers/synthetic.js";
import { argmaxRows, classificationMetrics, expectedCalibrationError } from "../src/eval/metrics.js";

test("epoch order: a permutation, fixed by (seed, epoch), different across epochs", () => {
  const a = epochOrder(100, 7, 0);
  assert.deepEqual([...a].sort((x, y) => x - y), Array.from({ length: 100 }, (_, i) => i));
  assert.deepEqual(epochOrder(100, 7, 0), a);
  assert.notDeepEqual(epochOrder(100, 7, 1), a);
  assert.notDeepEqual(epochOrder(100, 8, 0), a);
});

test("fixed-shape batches; the last partial batch is dropped", () => {
  const data = syntheticExamples(70, { h: 2, w: 3 });
  assert.equal(stepsPerEpoch(70, 32), 2);
  const order = epochOrder(70, 0, 0);
  const b = makeBatch(data, order, 1, 32);
  assert.equal(b.x.length, 32 * 6);
  for (let i = 0; i < 32; i++) {
    const src = order[32 + i];
    assert.equal(b.index[i], src);
    assert.equal(b.labels[i], data.labels[src]);
    assert.deepEqual(Array.from(b.x.subarray(i * 6, i * 6 + 6)), Array.from(data.x.subarray(src * 6, src * 6 + 6)));
  }
});

test("shiftImage translates with zero fill", () => {
  const src = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]); // 3×3
  const out = new Float32Array(9);
  shiftImage(src, out, 3, 3, 1, 0); // down by one
  assert.deepEqual(Array.from(out), [0, 0, 0, 1, 2, 3, 4, 5, 6]);
  shiftImage(src, out, 3, 3, 0, -1); // left by one
  assert.deepEqual(Array.from(out), [2, 3, 0, 5, 6, 0, 8, 9, 0]);
  shiftImage(src, out, 3, 3, -1, 1);
  assert.deepEqual(Array.from(out), [0, 4, 5, 0, 7, 8, 0, 0, 0]);
});

test("random-shift augmentation: shifts within ±s, reproducible per (seed, epoch, step)", () => {
  const data = syntheticExamples(64, { h: 8, w: 8 });
  const order = epochOrder(64, 1, 0);
  const a = makeBatch(data, order, 0, 16, { shift: 2, seed: 1, epoch: 0 });
  assert.deepEqual(makeBatch(data, order, 0, 16, { shift: 2, seed: 1, epoch: 0 }).x, a.x);
  assert.notDeepEqual(makeBatch(data, order, 0, 16, { shift: 2, seed: 1, epoch: 1 }).x, a.x);
  // Each augmented image equals its source shifted by some (dy, dx) in [-2, 2]².
  for (let i = 0; i < 16; i++) {
    const src = data.x.subarray(order[i] * 64, order[i] * 64 + 64);
    const got = Array.from(a.x.subarray(i * 64, i * 64 + 64));
    const out = new Float32Array(64);
    let found = false;
    for (let dy = -2; dy <= 2 && !found; dy++)
      for (let dx = -2; dx <= 2 && !found; dx++) {
        shiftImage(src, out, 8, 8, dy, dx);
        found = Array.from(out).every((v, j) => v === got[j]);
      }
    assert.ok(found, `image ${i} is not a ±2 shift of its source`);
  }
});

test("a slice of a batch (rows [lo, hi)) equals those rows of the whole batch, augmented or not", () => {
  const data = syntheticExamples(64, { h: 8, w: 8 });
  const order = epochOrder(64, 1, 0);
  for (const shift of [0, 2]) {
    const whole = makeBatch(data, order, 1, 16, { shift, seed: 3, epoch: 2 });
    for (const [lo, hi] of [[0, 8], [8, 16], [4, 12]] as [number, number][]) {
      const part = makeBatch(data, order, 1, 16, { shift, seed: 3, epoch: 2, rows: [lo, hi] });
      assert.deepEqual(part.x, whole.x.slice(lo * 64, hi * 64), `shift ${shift}, rows ${lo}–${hi}`);
      assert.deepEqual(part.labels, whole.labels.slice(lo, hi));
      assert.deepEqual(part.index, whole.index.slice(lo, hi));
    }
  }
});

test("labelled subset: scratch sees the first k examples, KD sees all with the rest unlabelled", () => {
  const data = syntheticExamples(50);
  const scratch = trainingView(data, 10, true);
  assert.equal(scratch.n, 10);
  assert.deepEqual(Array.from(scratch.labels), Array.from(data.labels.subarray(0, 10)));
  const kd = trainingView(data, 10, false);
  assert.equal(kd.n, 50);
  assert.deepEqual(Array.from(kd.labels.subarray(0, 10)), Array.from(data.labels.subarray(0, 10)));
  assert.ok(kd.labels.subarray(10).every((l) => l === -1));
  assert.equal(data.labels[20] >= 0, true, "the source labels are untouched");
});

test("gatherRows", () => {
  const src = Float32Array.from([0, 1, 10, 11, 20, 21]);
  assert.deepEqual(Array.from(gatherRows(src, 2, Int32Array.from([2, 0]))), [20, 21, 0, 1]);
});

test("metrics: accuracy, agreement, 15-bin ECE and loss on a hand-made example", () => {
  // Two classes. Confidences: softmax([l, 0]) top prob = 1/(1+e^-l).
  const l = Math.log(3); // top prob 0.75, in bin (0.733, 0.8]
  const logits = Float32Array.from([l, 0, l, 0, 0, l, 0, l]);
  const labels = Int32Array.from([0, 1, 1, 1]); // 3 of 4 right
  const teacherTop = Int32Array.from([0, 0, 1, 0]);
  const m = classificationMetrics(logits, labels, 2, teacherTop);
  assert.equal(m.accuracy, 0.75);
  assert.equal(m.agreement, 0.75);
  // One bin holding everything: |0.75 − 0.75| = 0.
  assert.ok(Math.abs(m.ece) < 1e-6);
  const ce = (-3 * Math.log(0.75) - Math.log(0.25)) / 4;
  assert.ok(Math.abs(m.loss - ce) < 1e-6);
  // All wrong at 0.75 confidence: ECE = 0.75.
  assert.ok(Math.abs(expectedCalibrationError(logits, Int32Array.from([1, 1, 0, 0]), 2) - 0.75) < 1e-6);
  assert.deepEqual(Array.from(argmaxRows(logits, 2)), [0, 0, 1, 1]);
  assert.ok(Number.isNaN(classificationMetrics(logits, labels, 2, null).agreement), "no teacher, no agreement");
});
