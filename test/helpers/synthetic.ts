// Small generated classification data for unit tests (no files, no downloads).
import type { Examples } from "../../src/data/batches.js";
import { Rng } from "../../src/util/rng.js";

/** n images of h×w whose class decides which row band is bright, plus noise. */
export function syntheticExamples(n: number, opts: { h?: number; w?: number; classes?: number; seed?: number } = {}): Examples {
  const h = opts.h ?? 8;
  const w = opts.w ?? 8;
  const classes = opts.classes ?? 4;
  const rng = new Rng(opts.seed ?? 1);
  const dim = h * w;
  const x = new Float32Array(n * dim);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % classes;
    labels[i] = c;
    for (let p = 0; p < dim; p++) {
      const row = Math.floor(p / w);
      const band = Math.floor((row * classes) / h) === c ? 0.8 : 0;
      x[i * dim + p] = band + 0.3 * (rng.nextU32() / 4294967296);
    }
  }
  return { x, dim, n, labels, height: h, width: w };
}
