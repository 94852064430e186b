// Distillation losses against the float64 reference values of the project's divergences sheet,
// plus finite-difference gradient checks and edge cases.
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { np, grad, jit, valueAndGrad, initDevice, type Arr } from "../src/engine/index.js";
import {
  articleKLDiv,
  buildLoss,
  crossEntropy,
  forwardKL,
  lossInfo,
  type LossBatch,
  type LossFn,
} from "../src/losses/index.js";
import { UserError } from "../src/util/errors.js";
import { close, FKL_T1, FKL_T2, rng, S_SHEET, scalar, T_SHEET, vals } from "./helpers/numeric.js";

before(async () => {
  await initDevice("wasm");
});

function closeAll(actual: number[], expected: number[], rel = 1e-5, abs = 1e-7, what = ""): void {
  assert.equal(actual.length, expected.length, `${what} length`);
  actual.forEach((a, i) => close(a, expected[i], rel, abs, `${what}[${i}]`));
}

function randomLogits(rand: () => number, batch: number, classes: number, scale = 3): number[][] {
  return Array.from({ length: batch }, () => Array.from({ length: classes }, () => (rand() * 2 - 1) * scale));
}
const labelsOf = (xs: number[]): Arr => np.array(new Int32Array(xs), { dtype: np.int32 });

describe("forwardKL: sheet values", () => {
  test("T = 1 equals the sheet's forward KL", async () => {
    const v = await scalar(forwardKL(np.array([S_SHEET]), np.array([T_SHEET]), 1));
    close(v, FKL_T1, 1e-5, 1e-7, "KL T=1");
  });

  test("T = 2 equals the sheet's forward KL × T²", async () => {
    const v = await scalar(forwardKL(np.array([S_SHEET]), np.array([T_SHEET]), 2));
    close(v, FKL_T2 * 4, 1e-5, 1e-7, "KL·T² T=2");
  });

  test("KL is 0 when student == teacher logits and > 0 otherwise", async () => {
    const rand = rng(11);
    const x = randomLogits(rand, 3, 6);
    for (const T of [1, 2, 5]) {
      const same = await scalar(forwardKL(np.array(x), np.array(x), T));
      assert.ok(Math.abs(same) < 1e-6, `KL(p‖p) at T=${T} = ${same}`);
      const y = x.map((r) => r.map((v, j) => v + (j === 0 ? 0.5 : 0)));
      const diff = await scalar(forwardKL(np.array(y), np.array(x), T));
      assert.ok(diff > 0, `KL(p‖q) at T=${T} = ${diff}, expected > 0`);
    }
    // A constant shift of the logits changes neither distribution.
    const shifted = x.map((r) => r.map((v) => v + 3));
    const z = await scalar(forwardKL(np.array(shifted), np.array(x), 2));
    assert.ok(Math.abs(z) < 1e-5, `KL after a constant shift = ${z}`);
  });
});

describe("hinton / cross-entropy: sheet values", () => {
  test("hinton(T=2, λ=0.5, label 0) = 1.0198266869", async () => {
    const loss = buildLoss({ name: "hinton", temperature: 2, lambda: 0.5 });
    const v = await scalar(loss(np.array([S_SHEET]), { labels: labelsOf([0]), teacherLogits: np.array([T_SHEET]) }));
    close(v, 1.0198266869, 1e-5, 1e-7, "hinton");
  });

  test("crossEntropy alone = 1.5632141572 (unscaled student logits)", async () => {
    const v = await scalar(crossEntropy(np.array([S_SHEET]), labelsOf([0])));
    close(v, 1.5632141572, 1e-5, 1e-7, "CE");
  });

  test("ce loss from the registry ignores (and disposes) teacher logits", async () => {
    const loss = buildLoss({ name: "ce" });
    const v = await scalar(loss(np.array([S_SHEET]), { labels: labelsOf([0]), teacherLogits: np.array([T_SHEET]) }));
    close(v, 1.5632141572, 1e-5, 1e-7, "ce");
  });
});

describe("reductions", () => {
  test("articleKLDiv = forwardKL / C (C = 4 and C = 10, batch > 1)", async () => {
    const rand = rng(1);
    for (const [batch, C] of [
      [3, 4],
      [5, 10],
    ]) {
      for (const T of [1, 2]) {
        const s = randomLogits(rand, batch, C);
        const t = randomLogits(rand, batch, C);
        const fkl = await scalar(forwardKL(np.array(s), np.array(t), T));
        const art = await scalar(articleKLDiv(np.array(s), np.array(t), T));
        assert.ok(fkl > 0);
        close(art, fkl / C, 1e-6, 0, `article C=${C} T=${T}`);
        close(art * C, fkl, 1e-6, 0, `article×C C=${C} T=${T}`);
      }
    }
    // The sheet: the article's reduction gives 0.1191098041 for the first term at T = 2 (÷ 4).
    const sheet = await scalar(articleKLDiv(np.array([S_SHEET]), np.array([T_SHEET]), 2));
    close(sheet, 0.1191098041, 1e-5, 1e-7, "article sheet");
  });

  test("batchmean: batch KL = mean of the per-example KLs (not the sum, not per element)", async () => {
    const rand = rng(2);
    const C = 5;
    const s = randomLogits(rand, 3, C);
    const t = randomLogits(rand, 3, C);
    for (const T of [1, 3]) {
      const singles: number[] = [];
      for (let i = 0; i < 3; i++) singles.push(await scalar(forwardKL(np.array([s[i]]), np.array([t[i]]), T)));
      const batch = await scalar(forwardKL(np.array(s), np.array(t), T));
      const mean = singles.reduce((a, b) => a + b, 0) / 3;
      const sum = mean * 3;
      close(batch, mean, 1e-5, 1e-7, `batchmean T=${T}`);
      assert.ok(Math.abs(batch - sum) > 1e-3 * sum, "batch KL must not be the sum");
      assert.ok(Math.abs(batch - mean / C) > 1e-3 * mean, "batch KL must not be the per-element mean");
    }
  });
});

/** Central finite difference of a float32 scalar loss at `x` along each coordinate. */
async function finiteDiff(f: (x: Arr) => Arr, x: number[][], h = 1e-2): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < x.length; i++) {
    for (let j = 0; j < x[i].length; j++) {
      const plus = x.map((r) => r.slice());
      const minus = x.map((r) => r.slice());
      plus[i][j] += h;
      minus[i][j] -= h;
      const fp = await scalar(f(np.array(plus)));
      const fm = await scalar(f(np.array(minus)));
      out.push((fp - fm) / (2 * h));
    }
  }
  return out;
}

describe("gradients", () => {
  test("∂(KL·T²)/∂s at T = 2 equals the sheet's T·(q − p)", async () => {
    const t = np.array([T_SHEET]);
    const g = grad((s: Arr) => forwardKL(s, t.ref, 2))(np.array([S_SHEET]));
    t.dispose();
    closeAll(await vals(g), [-0.4143016904, 0.2573666993, -0.0218233848, 0.1787583760], 1e-5, 1e-6, "grad");
  });

  test("finite differences: forwardKL, crossEntropy, hinton, soft-kd (batch 3, 5 classes)", async () => {
    const rand = rng(3);
    const s = randomLogits(rand, 3, 5, 2);
    const tl = randomLogits(rand, 3, 5, 2);
    const labels = [4, 0, 2];
    const hinton = buildLoss({ name: "hinton", temperature: 2, lambda: 0.3 });
    const softKd = buildLoss({ name: "soft-kd", temperature: 3 });
    const cases: [string, (x: Arr) => Arr][] = [
      ["forwardKL T=1", (x) => forwardKL(x, np.array(tl), 1)],
      ["forwardKL T=2", (x) => forwardKL(x, np.array(tl), 2)],
      ["crossEntropy", (x) => crossEntropy(x, labelsOf(labels))],
      ["hinton", (x) => hinton(x, { labels: labelsOf(labels), teacherLogits: np.array(tl) })],
      ["soft-kd", (x) => softKd(x, { teacherLogits: np.array(tl) })],
    ];
    for (const [name, f] of cases) {
      const analytic = await vals(grad(f)(np.array(s)));
      const numeric = await finiteDiff(f, s);
      assert.equal(analytic.length, 15);
      analytic.forEach((a, i) => {
        assert.ok(Number.isFinite(a), `${name}: grad[${i}] = ${a}`);
        assert.ok(Math.abs(a - numeric[i]) <= 2e-3, `${name}: grad[${i}] analytic ${a} vs numeric ${numeric[i]}`);
      });
      assert.ok(analytic.some((a) => Math.abs(a) > 1e-2), `${name}: gradient is trivially zero`);
    }
  });
});

describe("edge cases", () => {
  test("unlabelled examples (label −1) are skipped by crossEntropy", async () => {
    const logits = [
      [1, 2, 3, 4],
      [0.5, -1, 2, 0],
    ];
    const both = await scalar(crossEntropy(np.array(logits), labelsOf([-1, 2])));
    const second = await scalar(crossEntropy(np.array([logits[1]]), labelsOf([2])));
    close(both, second, 1e-6, 1e-7, "CE [-1, 2]");
    // float64: logsumexp([0.5, −1, 2, 0]) − 2
    const ref = Math.log(Math.exp(0.5) + Math.exp(-1) + Math.exp(2) + Math.exp(0)) - 2;
    close(second, ref, 1e-5, 1e-7, "CE second");

    const none = await scalar(crossEntropy(np.array(logits), labelsOf([-1, -1])));
    assert.ok(!Number.isNaN(none), "CE with all labels −1 is NaN");
    assert.equal(none, 0);

    // Unlabelled rows also contribute no gradient.
    const g = await vals(grad((x: Arr) => crossEntropy(x, labelsOf([-1, 2])))(np.array(logits)));
    closeAll(g.slice(0, 4), [0, 0, 0, 0], 0, 1e-7, "grad of unlabelled row");
    const gAll = await vals(grad((x: Arr) => crossEntropy(x, labelsOf([-1, -1])))(np.array(logits)));
    assert.ok(gAll.every((v) => v === 0), `grad with all −1: ${gAll}`);
  });

  test("hinton under jit + valueAndGrad (as the trainer uses it) matches eager, with −1 labels", async () => {
    const rand = rng(5);
    const s = randomLogits(rand, 3, 4);
    const t = randomLogits(rand, 3, 4);
    const loss = buildLoss({ name: "hinton", temperature: 2, lambda: 0.5 });
    const f = (x: Arr, y: Arr, tl: Arr) => loss(x, { labels: y, teacherLogits: tl });
    const step = jit((x: Arr, y: Arr, tl: Arr) => valueAndGrad(f)(x, y, tl));
    const [v1, g1] = step(np.array(s), labelsOf([0, -1, 3]), np.array(t)) as [Arr, Arr];
    const [v2, g2] = valueAndGrad(f)(np.array(s), labelsOf([0, -1, 3]), np.array(t));
    close(await scalar(v1), await scalar(v2), 1e-6, 1e-7, "jit value");
    closeAll(await vals(g1), await vals(g2), 1e-5, 1e-7, "jit grad");
    step.dispose();
  });

  test("hinton with some unlabelled examples: CE term uses only the labelled ones", async () => {
    const rand = rng(4);
    const s = randomLogits(rand, 2, 4);
    const t = randomLogits(rand, 2, 4);
    const loss = buildLoss({ name: "hinton", temperature: 2, lambda: 0.25 });
    const v = await scalar(loss(np.array(s), { labels: labelsOf([1, -1]), teacherLogits: np.array(t) }));
    const kd = await scalar(forwardKL(np.array(s), np.array(t), 2));
    const ce = await scalar(crossEntropy(np.array([s[0]]), labelsOf([1])));
    close(v, 0.25 * kd + 0.75 * ce, 1e-5, 1e-7, "hinton partial labels");
  });

  test("zero teacher probability (−∞ logit): finite KL and finite gradient", async () => {
    const tl = [
      [0, -Infinity, 1],
      [-Infinity, 2, -Infinity],
    ];
    const s = [
      [0.3, 0.1, -0.2],
      [1.0, -0.5, 0.25],
    ];
    for (const T of [1, 2]) {
      const v = await scalar(forwardKL(np.array(s), np.array(tl), T));
      // float64 reference: per-example KL over the classes with p > 0, averaged, × T².
      let ref = 0;
      for (let i = 0; i < 2; i++) {
        const lse = (xs: number[]) => {
          const m = Math.max(...xs);
          return m + Math.log(xs.reduce((a, x) => a + Math.exp(x - m), 0));
        };
        const tt = tl[i].map((x) => x / T);
        const ss = s[i].map((x) => x / T);
        const lt = lse(tt);
        const ls = lse(ss);
        for (let j = 0; j < 3; j++) {
          const logp = tt[j] - lt;
          if (logp === -Infinity) continue;
          ref += Math.exp(logp) * (logp - (ss[j] - ls));
        }
      }
      ref = (ref / 2) * T * T;
      assert.ok(Number.isFinite(v), `KL with a −∞ teacher logit = ${v}`);
      close(v, ref, 1e-5, 1e-7, `KL −∞ T=${T}`);

      const t = np.array(tl);
      const g = await vals(grad((x: Arr) => forwardKL(x, t.ref, T))(np.array(s)));
      t.dispose();
      assert.ok(g.every(Number.isFinite), `gradient with a −∞ teacher logit: ${g}`);
      // Expected: T·(q − p)/batch per row.
      const expected: number[] = [];
      for (let i = 0; i < 2; i++) {
        const q = s[i].map((x) => Math.exp(x / T));
        const qs = q.reduce((a, b) => a + b, 0);
        const p = tl[i].map((x) => Math.exp(x / T));
        const ps = p.reduce((a, b) => a + b, 0);
        for (let j = 0; j < 3; j++) expected.push((T * (q[j] / qs - p[j] / ps)) / 2);
      }
      closeAll(g, expected, 1e-5, 1e-6, `grad −∞ T=${T}`);
    }
  });
});

describe("lossInfo registry", () => {
  test("an unknown loss name is a UserError that names it", () => {
    assert.throws(
      () => lossInfo({ name: "no-such-loss" }),
      (e: unknown) => e instanceof UserError && /no-such-loss/.test(e.message),
    );
    assert.throws(() => buildLoss({ name: "klx" }), (e: unknown) => e instanceof UserError && /klx/.test(e.message));
  });

  test("hinton needs labels for λ < 1 (default 0.5) and none for λ = 1", async () => {
    assert.equal(lossInfo({ name: "hinton" }).needsLabels, true);
    assert.equal(lossInfo({ name: "hinton", lambda: 0.9 }).needsLabels, true);
    const info = lossInfo({ name: "hinton", lambda: 1, temperature: 2 });
    assert.equal(info.needsLabels, false);
    assert.equal(info.needsTeacher, true);
    // And it really runs without labels: equals the pure KL·T².
    const loss = buildLoss({ name: "hinton", lambda: 1, temperature: 2 });
    const v = await scalar(loss(np.array([S_SHEET]), { teacherLogits: np.array([T_SHEET]) }));
    close(v, FKL_T2 * 4, 1e-5, 1e-7, "hinton λ=1");
  });

  test("soft-kd needs the teacher, not labels", async () => {
    const info = lossInfo({ name: "soft-kd", temperature: 2 });
    assert.equal(info.needsTeacher, true);
    assert.equal(info.needsLabels, false);
    const loss: LossFn = buildLoss({ name: "soft-kd", temperature: 2 });
    const v = await scalar(loss(np.array([S_SHEET]), { teacherLogits: np.array([T_SHEET]) }));
    close(v, FKL_T2 * 4, 1e-5, 1e-7, "soft-kd");
    const noTeacher: LossBatch = {};
    assert.throws(() => loss(np.array([S_SHEET]), noTeacher), /teacher/);
  });

  test("ce needs labels, not the teacher", () => {
    const info = lossInfo({ name: "ce" });
    assert.equal(info.needsTeacher, false);
    assert.equal(info.needsLabels, true);
  });
});
