// Fixed-shape batches from host arrays. jax-js's jit retraces per input shape, so every
// training batch has exactly `batchSize` rows: the last partial batch of an epoch is dropped
// (a different one each epoch, since the order is reshuffled).
import { Rng, deriveSeed } from "../util/rng.js";

export interface Examples {
  /** N rows of `dim` floats. */
  x: Float32Array;
  dim: number;
  n: number;
  /** Integer labels, −1 for unlabelled examples. */
  labels: Int32Array;
  /** Image geometry, for augmentation. */
  height: number;
  width: number;
}

export interface Batch {
  x: Float32Array;
  labels: Int32Array;
  /** Indices of the rows in the example set (for cached teacher outputs). */
  index: Int32Array;
}

export function stepsPerEpoch(n: number, batchSize: number): number {
  return Math.floor(n / batchSize);
}

/** The example order of one epoch, from (seed, epoch) alone. */
export function epochOrder(n: number, seed: number, epoch: number): Int32Array {
  return new Rng(deriveSeed(seed, "shuffle", epoch)).permutation(n);
}

/**
 * Batch `step` of `epoch`. With `shift > 0`, each image is translated by a random integer
 * offset in [−shift, shift] on both axes, zero-filled (random-shift augmentation); the
 * offsets come from (seed, epoch, step), so a resumed run sees the same views. `rows` builds
 * only rows [lo, hi) of the batch (a data-parallel worker's slice), with the same shifts.
 */
export function makeBatch(
  data: Examples,
  order: Int32Array,
  step: number,
  batchSize: number,
  opts: { shift?: number; seed?: number; epoch?: number; rows?: [number, number] } = {},
): Batch {
  const { dim } = data;
  const [lo, hi] = opts.rows ?? [0, batchSize];
  const x = new Float32Array((hi - lo) * dim);
  const labels = new Int32Array(hi - lo);
  const index = order.subarray(step * batchSize + lo, step * batchSize + hi);
  const shift = opts.shift ?? 0;
  const rng = shift > 0 ? new Rng(deriveSeed(opts.seed ?? 0, "shift", opts.epoch ?? 0, step)) : null;
  // The rows before the slice still draw (and drop) their offsets, so every row gets the same
  // shift whichever slice builds it.
  for (let b = 0; b < lo && rng; b++) {
    rng.int(2 * shift + 1);
    rng.int(2 * shift + 1);
  }
  for (let r = 0; r < hi - lo; r++) {
    const i = index[r];
    labels[r] = data.labels[i];
    const src = data.x.subarray(i * dim, (i + 1) * dim);
    if (!rng) {
      x.set(src, r * dim);
      continue;
    }
    const dy = rng.int(2 * shift + 1) - shift;
    const dx = rng.int(2 * shift + 1) - shift;
    shiftImage(src, x.subarray(r * dim, (r + 1) * dim), data.height, data.width, dy, dx);
  }
  return { x, labels, index: Int32Array.from(index) };
}

/** out[y][x] = src[y − dy][x − dx], zero outside; single channel. */
export function shiftImage(src: Float32Array, out: Float32Array, h: number, w: number, dy: number, dx: number): void {
  out.fill(0);
  for (let y = Math.max(0, dy); y < Math.min(h, h + dy); y++) {
    const sy = y - dy;
    const x0 = Math.max(0, dx);
    const x1 = Math.min(w, w + dx);
    out.set(src.subarray(sy * w + x0 - dx, sy * w + x1 - dx), y * w + x0);
  }
}

/** Rows of `src` (dim floats each) gathered by `index`. */
export function gatherRows(src: Float32Array, dim: number, index: Int32Array): Float32Array {
  const out = new Float32Array(index.length * dim);
  for (let b = 0; b < index.length; b++) out.set(src.subarray(index[b] * dim, (index[b] + 1) * dim), b * dim);
  return out;
}
