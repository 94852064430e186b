// Datasets by name, as the trainer sees them: flat example rows plus integer labels.
import type { Examples } from "./batches.js";
import { loadFashionMnist, locateFashionMnist } from "./fashion-mnist.js";
import { UserError } from "../util/errors.js";

/** What a model is built for: the image geometry (channels last) and the number of classes. */
export interface InputShape {
  height: number;
  width: number;
  channels: number;
  classes: number;
  /**
   * Text classification: rows are `length` token ids (as float32) of a `vocab`-sized
   * vocabulary, padded with `padId`; height = 1, width = length, channels = 1.
   */
  text?: { vocab: number; length: number; padId: number };
}

export interface Dataset {
  name: string;
  dir: string;
  input: InputShape;
  train: Examples;
  test: Examples;
}

/** Loads a dataset; `dir` is the recipe's or the --data flag's directory, if any. */
export function loadDataset(name: string, dir?: string): Dataset {
  if (name !== "fashion-mnist") throw new UserError(`data.dataset: unknown dataset "${name}"`);
  const found = locateFashionMnist(dir);
  const { train, test } = loadFashionMnist(found);
  const toExamples = (s: typeof train): Examples => ({
    x: s.images,
    dim: s.height * s.width,
    n: s.n,
    labels: s.labels,
    height: s.height,
    width: s.width,
  });
  return {
    name,
    dir: found,
    input: { height: train.height, width: train.width, channels: 1, classes: 10 },
    train: toExamples(train),
    test: toExamples(test),
  };
}

/**
 * The training set as one run sees it. With `labels: k`, only the first k images keep their
 * labels: a loss that needs labels and nothing else trains on those k alone; a loss that reads
 * the teacher trains on every image, the rest marked unlabelled (−1).
 */
export function trainingView(train: Examples, labels: number | undefined, labelledOnly: boolean): Examples {
  if (labels === undefined || labels >= train.n) return train;
  if (labelledOnly) {
    return { ...train, n: labels, x: train.x.subarray(0, labels * train.dim), labels: train.labels.subarray(0, labels) };
  }
  const masked = Int32Array.from(train.labels);
  masked.fill(-1, labels);
  return { ...train, labels: masked };
}

/**
 * `data.validation: n`: the last n training examples are held out (never trained on, never in
 * the soft-label cache) and the rest train. The last rows, not a seeded draw, so the split is
 * the same for every seed and run, and it never meets `labels: k` (the first k) while
 * k + n ≤ the training set.
 */
export function splitValidation(train: Examples, n: number): { train: Examples; validation: Examples } {
  const keep = train.n - n;
  const rows = (lo: number, hi: number): Examples => ({
    ...train,
    n: hi - lo,
    x: train.x.subarray(lo * train.dim, hi * train.dim),
    labels: train.labels.subarray(lo, hi),
  });
  return { train: rows(0, keep), validation: rows(keep, train.n) };
}
