// Reads the real Fashion-MNIST from Debian's dataset-fashion-mnist package (installed by
// .ci/run). Skipped, loudly, where the package is absent.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { DEBIAN_FASHION_MNIST, loadFashionMnist } from "../src/data/fashion-mnist.js";

const present = existsSync(`${DEBIAN_FASHION_MNIST}/train-images-idx3-ubyte.gz`);

test("real Fashion-MNIST: 60,000 + 10,000 images of 28×28, balanced classes, pixels in [0, 1]", { skip: present ? false : `not installed: apt-get install dataset-fashion-mnist` }, () => {
  const { train, test: t } = loadFashionMnist(DEBIAN_FASHION_MNIST);
  assert.equal(train.n, 60000);
  assert.equal(t.n, 10000);
  assert.equal(train.height, 28);
  assert.equal(train.width, 28);
  const counts = new Array(10).fill(0);
  for (const l of train.labels) counts[l]++;
  assert.deepEqual(counts, new Array(10).fill(6000));
  let max = 0;
  let min = 1;
  for (const v of train.images) {
    if (v > max) max = v;
    if (v < min) min = v;
  }
  assert.equal(min, 0);
  assert.equal(max, 1);
  // The first test label of the official files is 9 (ankle boot).
  assert.equal(t.labels[0], 9);
});
