// Reading arrays back and comparing numbers in the loss tests, and the reference inputs and
// values of the project's divergences sheet (one example, 4 classes).
import assert from "node:assert/strict";
import type { Arr } from "../../src/engine/index.js";
import { Rng } from "../../src/util/rng.js";

export const T_SHEET = [2.0, 1.0, 0.1, -1.0];
export const S_SHEET = [0.5, 1.5, -0.3, 0.0];
/** Forward KL(softmax(T_SHEET/T) ‖ softmax(S_SHEET/T)), without the T² factor, at T = 1 and 2. */
export const FKL_T1 = 0.4600413634;
export const FKL_T2 = 0.1191098041;

/** Reads all values of `a` (consumes it) as plain numbers. */
export async function vals(a: Arr): Promise<number[]> {
  return Array.from((await a.data()) as ArrayLike<number>, Number);
}

export async function scalar(a: Arr): Promise<number> {
  const v = await vals(a);
  assert.equal(v.length, 1, "expected a scalar");
  return v[0];
}

/** |actual − expected| ≤ abs + rel·|expected|, and actual finite. */
export function close(actual: number, expected: number, rel = 1e-5, abs = 1e-7, what = ""): void {
  const tol = abs + rel * Math.abs(expected);
  assert.ok(
    Number.isFinite(actual) && Math.abs(actual - expected) <= tol,
    `${what} got ${actual}, expected ${expected} (|diff| ${Math.abs(actual - expected)} > ${tol})`,
  );
}

/** Seeded uniform numbers in [0, 1) from the project's Rng, so "random" logits repeat every run. */
export function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.nextU32() / 4294967296;
}
