// The divergence family (src/losses/divergences.ts) against the float64 reference values of the
// divergences sheet and an independent float64 implementation
// below; finite-difference gradients; −∞ logits; masking; top-k sparse teachers; the registry.
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { np, grad, jit, vmap, valueAndGrad, initDevice, liveBuffers, type Arr } from "../src/engine/index.js";
import {
  DIVERGENCES,
  buildLoss,
  divergence,
  forwardKL,
  lossInfo,
  sparseDivergence,
  topKTeacher,
  type DivergenceName,
  type DivergenceSpec,
} from "../src/losses/index.js";
import { validateRecipe } from "../src/recipe/recipe.js";
import { UserError } from "../src/util/errors.js";
import { close, FKL_T1, FKL_T2, rng, S_SHEET, scalar, T_SHEET, vals } from "./helpers/numeric.js";

before(async () => {
  await initDevice("wasm");
});

// ---------------------------------------------------------------------------------------------
// Helpers

function randomLogits(rand: () => number, rows: number, classes: number, scale = 2): number[][] {
  return Array.from({ length: rows }, () => Array.from({ length: classes }, () => (rand() * 2 - 1) * scale));
}
const ints = (xs: number[], shape?: number[]): Arr => {
  const a = np.array(new Int32Array(xs), { dtype: np.int32 });
  return shape ? a.reshape(shape) : a;
};

/** The divergences tested, with the parameters that pick a sheet row. */
const SHEET_CASES: { label: string; spec: Omit<DivergenceSpec, "temperature">; T1: number; T2: number }[] = [
  { label: "forward KL", spec: { name: "forward-kl" }, T1: FKL_T1, T2: FKL_T2 },
  { label: "reverse KL", spec: { name: "reverse-kl" }, T1: 0.4459923341, T2: 0.1152960996 },
  { label: "JSD β=0.1", spec: { name: "jsd", beta: 0.1 }, T1: 0.0405209327, T2: 0.0106304362 },
  { label: "JSD β=0.5 (default)", spec: { name: "jsd" }, T1: 0.1079752072, T2: 0.0288997495 },
  { label: "JSD β=0.9", spec: { name: "jsd", beta: 0.9 }, T1: 0.0395425946, T2: 0.0103597529 },
  { label: "skew KL α=0.1 (default)", spec: { name: "skew-kl" }, T1: 0.3578163732, T2: 0.0949342802 },
  { label: "skew reverse KL α=0.1 (default)", spec: { name: "skew-reverse-kl" }, T1: 0.3514789059, T2: 0.0931378603 },
  { label: "total variation", spec: { name: "tv" }, T1: 0.4299220802, T2: 0.2180625376 },
];

/** One spec per divergence, with non-default parameters where there are any. */
const ALL: Omit<DivergenceSpec, "temperature">[] = [
  { name: "forward-kl" },
  { name: "reverse-kl" },
  { name: "jsd", beta: 0.3 },
  { name: "skew-kl", alpha: 0.2 },
  { name: "skew-reverse-kl", alpha: 0.2 },
  { name: "tv" },
];

// ---------------------------------------------------------------------------------------------
// An independent float64 implementation of the sheet's definitions.

function softmax64(x: number[], T: number): number[] {
  const z = x.map((v) => v / T);
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}
function kl64(a: number[], b: number[]): number {
  let r = 0;
  for (let i = 0; i < a.length; i++) if (a[i] > 0) r += a[i] * (Math.log(a[i]) - Math.log(b[i]));
  return r;
}
function div64(spec: Omit<DivergenceSpec, "temperature">, p: number[], q: number[]): number {
  const beta = spec.beta ?? 0.5;
  const alpha = spec.alpha ?? 0.1;
  const mix = (wp: number, wq: number) => p.map((v, i) => wp * v + wq * q[i]);
  switch (spec.name) {
    case "forward-kl":
      return kl64(p, q);
    case "reverse-kl":
      return kl64(q, p);
    case "jsd": {
      if (beta === 0) return kl64(p, q);
      if (beta === 1) return kl64(q, p);
      const m = mix(beta, 1 - beta);
      return beta * kl64(p, m) + (1 - beta) * kl64(q, m);
    }
    case "skew-kl":
      return kl64(p, mix(alpha, 1 - alpha));
    case "skew-reverse-kl":
      return kl64(q, mix(1 - alpha, alpha));
    case "tv":
      return 0.5 * p.reduce((a, v, i) => a + Math.abs(v - q[i]), 0);
  }
}
/**
 * The k largest teacher probabilities (stable: lower index first on ties) plus a tail bucket,
 * both tails summed over the classes not kept (= 1 − Σ_k, without float64's rounding of a tiny
 * tail to 0).
 */
function sparse64(spec: Omit<DivergenceSpec, "temperature">, p: number[], q: number[], k: number): number {
  const order = p.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, k).map((x) => x[1]);
  const P = order.map((i) => p[i]);
  const Q = order.map((i) => q[i]);
  if (k < p.length) {
    P.push(p.reduce((a, v, i) => a + (order.includes(i) ? 0 : v), 0));
    Q.push(q.reduce((a, v, i) => a + (order.includes(i) ? 0 : v), 0));
  }
  return div64(spec, P, Q);
}
/** Mean over the rows with mask 1 of the per-row divergence, × T². */
function ref64(
  spec: Omit<DivergenceSpec, "temperature">,
  s: number[][],
  t: number[][],
  T: number,
  mask?: number[],
  k?: number,
): number {
  let sum = 0;
  let n = 0;
  s.forEach((row, i) => {
    if (mask && !mask[i]) return;
    const p = softmax64(t[i], T);
    const q = softmax64(row, T);
    sum += k === undefined ? div64(spec, p, q) : sparse64(spec, p, q, k);
    n++;
  });
  return n ? (sum / n) * T * T : 0;
}

/** Central finite differences of a float32 scalar function at `x` ([rows][V]). */
/** Every ±h nudge of `x` evaluated in one `vmap`ped call (one call per nudge is ~20× slower). */
async function finiteDiff(f: (x: Arr) => Arr, x: number[][], h = 1e-2): Promise<number[]> {
  const nudged: number[][][] = [];
  for (let i = 0; i < x.length; i++) {
    for (let j = 0; j < x[i].length; j++) {
      for (const d of [h, -h]) nudged.push(x.map((r, ii) => r.map((u, jj) => (ii === i && jj === j ? u + d : u))));
    }
  }
  const fx = await vals(vmap(f)(np.array(nudged)));
  // A −∞ logit stays −∞ when nudged (its probability is 0 either way): (−∞ − −∞) is NaN, so 0.
  return x.flat().map((v, n) => (Number.isFinite(v) ? (fx[2 * n] - fx[2 * n + 1]) / (2 * h) : 0));
}
/**
 * Central finite differences (float64, h = 1e-6) of the float64 reference at `x`: the exact
 * gradient of the sheet's definition, cheap enough for every case. A −∞ logit stays −∞ when
 * nudged, so its entry is 0.
 */
function refGrad(f: (x: number[][]) => number, x: number[][], h = 1e-6): number[] {
  return x.flatMap((row, i) =>
    row.map((v, j) => {
      if (!Number.isFinite(v)) return 0;
      const at = (d: number) => f(x.map((r, ii) => r.map((u, jj) => (ii === i && jj === j ? u + d : u))));
      return (at(h) - at(-h)) / (2 * h);
    }),
  );
}
function closeGrad(name: string, analytic: number[], expected: number[]): void {
  assert.equal(analytic.length, expected.length);
  analytic.forEach((a, i) => {
    assert.ok(Number.isFinite(a), `${name}: grad[${i}] = ${a}`);
    assert.ok(Math.abs(a - expected[i]) <= 2e-4 + 1e-3 * Math.abs(expected[i]), `${name}: grad[${i}] ${a} vs float64 ${expected[i]}`);
  });
}

async function checkGrad(name: string, f: (x: Arr) => Arr, x: number[][]): Promise<void> {
  const analytic = await vals(grad(f)(np.array(x)));
  const numeric = await finiteDiff(f, x);
  assert.equal(analytic.length, numeric.length);
  analytic.forEach((a, i) => {
    assert.ok(Number.isFinite(a), `${name}: grad[${i}] = ${a}`);
    assert.ok(Math.abs(a - numeric[i]) <= 2e-3, `${name}: grad[${i}] analytic ${a} vs numeric ${numeric[i]}`);
  });
  assert.ok(analytic.some((a) => Math.abs(a) > 1e-2), `${name}: gradient is trivially zero`);
}

const specAt = (spec: Omit<DivergenceSpec, "temperature">, T: number): DivergenceSpec => ({ ...spec, temperature: T });
const tag = (spec: Omit<DivergenceSpec, "temperature">) =>
  `${spec.name}${spec.beta !== undefined ? ` β=${spec.beta}` : ""}${spec.alpha !== undefined ? ` α=${spec.alpha}` : ""}`;

// ---------------------------------------------------------------------------------------------

describe("sheet reference values (× T²)", () => {
  test("the names", () => {
    assert.deepEqual([...DIVERGENCES], ["forward-kl", "reverse-kl", "jsd", "skew-kl", "skew-reverse-kl", "tv"]);
  });

  for (const c of SHEET_CASES) {
    test(`${c.label}: T = 1 and T = 2`, async () => {
      const v1 = await scalar(divergence(specAt(c.spec, 1), np.array([S_SHEET]), np.array([T_SHEET])));
      close(v1, c.T1, 1e-5, 1e-7, `${c.label} T=1`);
      const v2 = await scalar(divergence(specAt(c.spec, 2), np.array([S_SHEET]), np.array([T_SHEET])));
      close(v2, c.T2 * 4, 1e-5, 1e-7, `${c.label} T=2 (×T²)`);
      // The independent float64 implementation agrees with the sheet.
      close(ref64(c.spec, [S_SHEET], [T_SHEET], 1), c.T1, 1e-9, 1e-10, `${c.label} ref64`);
    });
  }

  test("forwardKL in the registry module is the forward-kl divergence", async () => {
    const rand = rng(21);
    const s = randomLogits(rand, 3, 5);
    const t = randomLogits(rand, 3, 5);
    const a = await scalar(forwardKL(np.array(s), np.array(t), 2));
    const b = await scalar(divergence({ name: "forward-kl", temperature: 2 }, np.array(s), np.array(t)));
    assert.equal(a, b);
  });

  test("every divergence is 0 for p = q and > 0 otherwise (random batch)", async () => {
    const rand = rng(22);
    const s = randomLogits(rand, 3, 6);
    const t = randomLogits(rand, 3, 6);
    for (const spec of ALL) {
      for (const T of [1, 3]) {
        const same = await scalar(divergence(specAt(spec, T), np.array(t), np.array(t)));
        assert.ok(Math.abs(same) < 1e-5, `${tag(spec)} D(p‖p) T=${T} = ${same}`);
        const v = await scalar(divergence(specAt(spec, T), np.array(s), np.array(t)));
        close(v, ref64(spec, s, t, T), 1e-4, 1e-6, `${tag(spec)} random T=${T}`);
        assert.ok(v > 0);
      }
    }
  });
});

describe("generalised JSD: the β limits", () => {
  test("β = 0 is exactly forward KL and β = 1 exactly reverse KL (special cases)", async () => {
    const rand = rng(31);
    const s = randomLogits(rand, 2, 5);
    const t = randomLogits(rand, 2, 5);
    for (const T of [1, 2]) {
      const run = (spec: DivergenceSpec) => divergence(spec, np.array(s), np.array(t)).data();
      const [j0, fkl, j1, rkl] = await Promise.all([
        run({ name: "jsd", beta: 0, temperature: T }),
        run({ name: "forward-kl", temperature: T }),
        run({ name: "jsd", beta: 1, temperature: T }),
        run({ name: "reverse-kl", temperature: T }),
      ]);
      assert.equal(j0[0], fkl[0], `JSD β=0 vs forward KL at T=${T}`);
      assert.equal(j1[0], rkl[0], `JSD β=1 vs reverse KL at T=${T}`);
      assert.ok(fkl[0] > 0.01 && rkl[0] > 0.01);
    }
    // On the sheet's vectors too.
    const sheet0 = await scalar(divergence({ name: "jsd", beta: 0 }, np.array([S_SHEET]), np.array([T_SHEET])));
    close(sheet0, 0.4600413634, 1e-5, 1e-7, "JSD β=0 sheet");
    const sheet1 = await scalar(divergence({ name: "jsd", beta: 1 }, np.array([S_SHEET]), np.array([T_SHEET])));
    close(sheet1, 0.4459923341, 1e-5, 1e-7, "JSD β=1 sheet");
  });

  test("β → 0.001 and β → 0.999: the formula itself tends to 0", async () => {
    for (const beta of [0.001, 0.999]) {
      const v = await scalar(divergence({ name: "jsd", beta }, np.array([S_SHEET]), np.array([T_SHEET])));
      const ref = ref64({ name: "jsd", beta }, [S_SHEET], [T_SHEET], 1);
      assert.ok(ref > 0 && ref < 1e-3, `float64 JSD β=${beta} = ${ref}`);
      assert.ok(v >= 0 && v < 1e-3, `JSD β=${beta} = ${v}, expected close to 0`);
      close(v, ref, 1e-3, 1e-7, `JSD β=${beta}`);
    }
  });
});

describe("top-k sparse teacher", () => {
  test("top-2 + tail: the sheet's forward and reverse KL at T = 1 and T = 2", async () => {
    const rows = [
      { spec: { name: "forward-kl" as const }, T1: 0.4323896413, T2: 0.1027762875 },
      { spec: { name: "reverse-kl" as const }, T1: 0.393532748, T2: 0.0938178991 },
    ];
    for (const r of rows) {
      for (const [T, want] of [
        [1, r.T1],
        [2, r.T2 * 4],
      ]) {
        const teacher = topKTeacher(np.array([T_SHEET]), 2, T);
        const v = await scalar(sparseDivergence(specAt(r.spec, T), np.array([S_SHEET]), teacher));
        close(v, want, 1e-5, 1e-7, `top-2 ${r.spec.name} T=${T}`);
        // Without the exact tail: 1 − Σ_k p (precomputed top-k log-probabilities, say).
        const { indices, logprobs, logTail } = topKTeacher(np.array([T_SHEET]), 2, T);
        logTail?.dispose();
        const w = await scalar(sparseDivergence(specAt(r.spec, T), np.array([S_SHEET]), { indices, logprobs }));
        close(w, want, 1e-5, 1e-7, `top-2 ${r.spec.name} T=${T}, tail 1 − Σ`);
      }
      close(ref64(r.spec, [S_SHEET], [T_SHEET], 1, undefined, 2), r.T1, 1e-9, 1e-10, "ref64 top-2");
    }
  });

  test("topKTeacher: indices and teacher log-probabilities of the k largest", async () => {
    const { indices, logprobs, logTail } = topKTeacher(np.array([T_SHEET, [0, 3, -1, 2]]), 2, 2);
    assert.ok(logTail);
    assert.deepEqual(logTail.shape, [2]);
    const tail = await vals(logTail);
    close(tail[0], Math.log(softmax64(T_SHEET, 2)[2] + softmax64(T_SHEET, 2)[3]), 1e-5, 1e-6, "logTail[0]");
    close(tail[1], Math.log(softmax64([0, 3, -1, 2], 2)[0] + softmax64([0, 3, -1, 2], 2)[2]), 1e-5, 1e-6, "logTail[1]");
    assert.equal(indices.dtype, np.int32);
    assert.deepEqual(indices.shape, [2, 2]);
    assert.deepEqual(await vals(indices), [0, 1, 1, 3]);
    const lp = await vals(logprobs);
    const p0 = softmax64(T_SHEET, 2);
    const p1 = softmax64([0, 3, -1, 2], 2);
    [Math.log(p0[0]), Math.log(p0[1]), Math.log(p1[1]), Math.log(p1[3])].forEach((v, i) => close(lp[i], v, 1e-5, 1e-6, `logprob[${i}]`));
  });

  test("k = V equals the dense divergence, for every divergence", async () => {
    const rand = rng(41);
    const s = randomLogits(rand, 3, 6);
    const t = randomLogits(rand, 3, 6);
    for (const spec of ALL) {
      for (const T of [1, 2]) {
        const dense = await scalar(divergence(specAt(spec, T), np.array(s), np.array(t)));
        const sparse = await scalar(sparseDivergence(specAt(spec, T), np.array(s), topKTeacher(np.array(t), 6, T)));
        close(sparse, dense, 1e-5, 1e-7, `${tag(spec)} k=V T=${T}`);
      }
    }
  });

  test("k < V against the float64 top-k + tail reference, for every divergence", async () => {
    const rand = rng(42);
    const s = randomLogits(rand, 3, 6);
    const t = randomLogits(rand, 3, 6);
    for (const spec of ALL) {
      for (const [k, T] of [
        [1, 1],
        [3, 2],
        [5, 1],
      ]) {
        const v = await scalar(sparseDivergence(specAt(spec, T), np.array(s), topKTeacher(np.array(t), k, T)));
        close(v, ref64(spec, s, t, T, undefined, k), 1e-4, 1e-6, `${tag(spec)} k=${k} T=${T}`);
      }
    }
  });

  test("k > V is a UserError naming k and the vocabulary size", () => {
    assert.throws(
      () => topKTeacher(np.array([T_SHEET]), 7, 1),
      (e: unknown) => e instanceof UserError && /\b7\b/.test(e.message) && /\b4\b/.test(e.message) && /vocabulary/.test(e.message),
    );
    assert.throws(() => topKTeacher(np.array([T_SHEET]), 0, 1), (e: unknown) => e instanceof UserError);
    // Through the registry, when the loss runs on a batch with a smaller vocabulary.
    const loss = buildLoss({ name: "soft-kd", topK: 9 });
    assert.throws(
      () => loss(np.array([S_SHEET]), { teacherLogits: np.array([T_SHEET]) }),
      (e: unknown) => e instanceof UserError && /\b9\b/.test(e.message) && /\b4\b/.test(e.message),
    );
  });
});

describe("gradients w.r.t. the student logits (central finite differences)", () => {
  const rand = rng(51);
  const s = randomLogits(rand, 2, 5);
  const t = randomLogits(rand, 2, 5);
  // Two kinds of central differences: of the float64 reference (h = 1e-6, the exact gradient of
  // the sheet's definition; cheap, so every divergence × T = 1, 2 × dense and sparse k = 2 or 4) and
  // of the float32 implementation itself (h = 1e-2, slower: every divergence, dense T = 2 and
  // sparse k = 2 at T = 1).
  for (const spec of ALL) {
    test(`${tag(spec)}: against the float64 reference's central differences`, async () => {
      for (const T of [1, 2]) {
        const g = await vals(grad((x: Arr) => divergence(specAt(spec, T), x, np.array(t)))(np.array(s)));
        closeGrad(`${tag(spec)} dense T=${T}`, g, refGrad((x) => ref64(spec, x, t, T), s));
        for (const k of [T === 1 ? 2 : 4]) {
          const sg = await vals(grad((x: Arr) => sparseDivergence(specAt(spec, T), x, topKTeacher(np.array(t), k, T)))(np.array(s)));
          closeGrad(`${tag(spec)} sparse k=${k} T=${T}`, sg, refGrad((x) => ref64(spec, x, t, T, undefined, k), s));
        }
      }
    });
  }
  test("every divergence: against central differences of the implementation (dense and sparse k = 2)", async () => {
    for (const spec of ALL) {
      await checkGrad(`${tag(spec)} dense T=2`, (x) => divergence(specAt(spec, 2), x, np.array(t)), s);
      await checkGrad(`${tag(spec)} sparse k=2 T=1`, (x) => sparseDivergence(specAt(spec, 1), x, topKTeacher(np.array(t), 2, 1)), s);
    }
  });

  test("forward KL: ∂(KL·T²)/∂s at T = 2 is the sheet's T·(q − p)", async () => {
    const g = await vals(grad((x: Arr) => divergence({ name: "forward-kl", temperature: 2 }, x, np.array([T_SHEET])))(np.array([S_SHEET])));
    [-0.4143016904, 0.2573666993, -0.0218233848, 0.178758376].forEach((v, i) => close(g[i], v, 1e-5, 1e-6, `grad[${i}]`));
  });
});

describe("−∞ logits (probability 0): no NaN", () => {
  // A −∞ teacher logit is p = 0; a −∞ student logit is q = 0. 0·log 0 = 0, so most divergences
  // stay finite. Two are legitimately +∞ and are only checked to be +∞, not NaN:
  // - forward KL when q = 0 where p > 0 (KL(p‖q) puts p·log(p/0) = ∞ there);
  // - reverse KL when p = 0 where q > 0 (likewise KL(q‖p)).
  // JSD (0 < β < 1) and the skew KLs (0 < α) compare against a mixture that is > 0 wherever
  // their first argument is, and TV is bounded by 1, so those stay finite in both cases.
  const tInf = [
    [0, -Infinity, 1, 0.5, -0.5],
    [-Infinity, 2, 0.3, -Infinity, 0],
  ];
  const sFin = [
    [0.3, 0.1, -0.2, 0.7, 0],
    [1.0, -0.5, 0.25, 0.2, -1],
  ];
  const sInf = [
    [0.3, 0.1, -Infinity, 0.7, 0],
    [-Infinity, -0.5, 0.25, 0.2, -1],
  ];
  const tFin = [
    [0, 0.4, 1, 0.5, -0.5],
    [0.2, 2, 0.3, -0.7, 0],
  ];
  const cases: { what: string; s: number[][]; t: number[][]; infinite: DivergenceName[] }[] = [
    { what: "teacher −∞", s: sFin, t: tInf, infinite: ["reverse-kl"] },
    { what: "student −∞", s: sInf, t: tFin, infinite: ["forward-kl"] },
    // Both −∞ at the same class: p = q = 0 there; every divergence is finite.
    { what: "both −∞ at the same classes", s: sFin.map((r, i) => r.map((v, j) => (tInf[i][j] === -Infinity ? -Infinity : v))), t: tInf, infinite: [] },
  ];
  for (const c of cases) {
    test(`${c.what}: values and gradients, dense (T = 1, 2) and sparse (k = 3 and k = V, T = 2)`, async () => {
      for (const spec of ALL) {
        for (const T of [1, 2]) {
          const name = `${tag(spec)} ${c.what} T=${T}`;
          const dense = (x: Arr) => divergence(specAt(spec, T), x, np.array(c.t));
          const v = await scalar(dense(np.array(c.s)));
          assert.ok(!Number.isNaN(v), `${name}: NaN`);
          if (c.infinite.includes(spec.name)) {
            assert.equal(v, Infinity, `${name}: expected +∞`);
            continue;
          }
          close(v, ref64(spec, c.s, c.t, T), 1e-4, 1e-6, name);
          // Gradient: finite, and the float64 reference's central differences (0 at a −∞ logit).
          const g = await vals(grad(dense)(np.array(c.s)));
          closeGrad(name, g, refGrad((x) => ref64(spec, x, c.t, T), c.s));

          for (const k of T === 2 ? [3, 5] : []) {
            const sparse = (x: Arr) => sparseDivergence(specAt(spec, T), x, topKTeacher(np.array(c.t), k, T));
            const [sv, sg] = valueAndGrad(sparse)(np.array(c.s));
            const svv = await scalar(sv);
            assert.ok(Number.isFinite(svv), `${name} sparse k=${k}: ${svv}`);
            close(svv, ref64(spec, c.s, c.t, T, undefined, k), 1e-4, 1e-6, `${name} sparse k=${k}`);
            closeGrad(`${name} sparse k=${k}`, await vals(sg), refGrad((x) => ref64(spec, x, c.t, T, undefined, k), c.s));
          }
        }
      }
    });
  }

  test("extreme finite logits (probabilities that underflow float32): finite values and gradients", async () => {
    // Row 2's teacher keeps ~1 − 2e-22 in its top 2: the tail is real but below float32's
    // resolution of 1 − Σ. topKTeacher carries it exactly, so reverse KL stays finite.
    const s = [
      [0, -150, -300, 5, 40],
      [-90, 60, 0, -200, 1],
    ];
    const t = [
      [-200, 0, 10, -100, 30],
      [50, -300, 0, 2, -80],
    ];
    for (const spec of ALL) {
      for (const T of [1, 2]) {
        const name = `${tag(spec)} extreme T=${T}`;
        const dense = (x: Arr) => divergence(specAt(spec, T), x, np.array(t));
        close(await scalar(dense(np.array(s))), ref64(spec, s, t, T), 1e-4, 1e-5, name);
        const g = await vals(grad(dense)(np.array(s)));
        closeGrad(name, g, refGrad((x) => ref64(spec, x, t, T), s));
        const sparse = (x: Arr) => sparseDivergence(specAt(spec, T), x, topKTeacher(np.array(t), 2, T));
        close(await scalar(sparse(np.array(s))), ref64(spec, s, t, T, undefined, 2), 1e-4, 1e-5, `${name} sparse`);
        const sg = await vals(grad(sparse)(np.array(s)));
        closeGrad(`${name} sparse`, sg, refGrad((x) => ref64(spec, x, t, T, undefined, 2), s));
      }
    }
  });

  test("forward KL with a −∞ teacher logit: the gradient is T·(q − p)/batch", async () => {
    const g = await vals(grad((x: Arr) => divergence({ name: "forward-kl", temperature: 2 }, x, np.array(tInf)))(np.array(sFin)));
    const expected = sFin.flatMap((row, i) => {
      const p = softmax64(tInf[i], 2);
      const q = softmax64(row, 2);
      return q.map((v, j) => (2 * (v - p[j])) / 2);
    });
    g.forEach((v, i) => close(v, expected[i], 1e-5, 1e-6, `grad[${i}]`));
  });
});

describe("masks and [B, T, V] logits", () => {
  // B = 2 sequences of T = 3 tokens over V = 5; the mask pads the last token(s).
  const rand = rng(61);
  const B = 2;
  const L = 3;
  const V = 5;
  const s = randomLogits(rand, B * L, V);
  const t = randomLogits(rand, B * L, V);
  const maskRows = [1, 1, 0, 1, 0, 0];
  const asBTV = (x: number[][]) => np.array(x).reshape([B, L, V]);
  const maskArr = (m: number[]) => np.array(m).reshape([B, L]);

  test("[B, T, V] averages over the unmasked tokens (dense and sparse, every divergence)", async () => {
    for (const spec of ALL) {
      const T = 2;
      const all = await scalar(divergence(specAt(spec, T), asBTV(s), asBTV(t)));
      close(all, ref64(spec, s, t, T), 1e-4, 1e-6, `${tag(spec)} no mask`);
      const masked = await scalar(divergence(specAt(spec, T), asBTV(s), asBTV(t), maskArr(maskRows)));
      close(masked, ref64(spec, s, t, T, maskRows), 1e-4, 1e-6, `${tag(spec)} masked`);
      const sp = await scalar(sparseDivergence(specAt(spec, T), asBTV(s), topKTeacher(asBTV(t), 2, T), maskArr(maskRows)));
      close(sp, ref64(spec, s, t, T, maskRows, 2), 1e-4, 1e-6, `${tag(spec)} sparse masked`);
    }
  });

  test("masked positions change nothing: value, gradient (0 there), even with extreme logits", async () => {
    const junk = (x: number[][]) => x.map((r, i) => (maskRows[i] ? r : r.map((_, j) => (j % 2 ? -Infinity : 1e4))));
    for (const spec of ALL) {
      const T = 2;
      const f = (tl: number[][]) => (x: Arr) => divergence(specAt(spec, T), x, asBTV(tl), maskArr(maskRows));
      const a = await scalar(f(t)(asBTV(s)));
      const b = await scalar(f(junk(t))(asBTV(junk(s.map((r) => r.map((v) => v + 3))))));
      close(b, a, 1e-5, 1e-7, `${tag(spec)} junk in padding`);
      const g = await vals(grad(f(junk(t)))(asBTV(s)));
      assert.ok(g.every(Number.isFinite), `${tag(spec)} gradient ${g}`);
      maskRows.forEach((m, i) => {
        if (!m) assert.ok(g.slice(i * V, (i + 1) * V).every((v) => v === 0), `${tag(spec)} masked row ${i} gradient`);
      });
      // A boolean mask works the same.
      const boolMask = np.array(maskRows.map((m) => m === 1)).reshape([B, L]);
      const c = await scalar(divergence(specAt(spec, T), asBTV(s), asBTV(t), boolMask));
      close(c, a, 1e-6, 1e-7, `${tag(spec)} boolean mask`);
    }
  });

  test("all masked gives 0 (not NaN), and a zero gradient", async () => {
    for (const spec of ALL) {
      const zero = [0, 0, 0, 0, 0, 0];
      const v = await scalar(divergence(specAt(spec, 2), asBTV(s), asBTV(t), maskArr(zero)));
      assert.equal(v, 0, `${tag(spec)} all masked`);
      const sv = await scalar(sparseDivergence(specAt(spec, 2), asBTV(s), topKTeacher(asBTV(t), 2, 2), maskArr(zero)));
      assert.equal(sv, 0, `${tag(spec)} sparse all masked`);
      const g = await vals(grad((x: Arr) => divergence(specAt(spec, 2), x, asBTV(t), maskArr(zero)))(asBTV(s)));
      assert.ok(g.every((x) => x === 0), `${tag(spec)} all-masked gradient ${g}`);
    }
  });

  test("no buffer leaks: every function consumes its inputs (eager, dense and sparse, masked)", async () => {
    await scalar(divergence({ name: "tv" }, asBTV(s), asBTV(t))); // warm-up
    const before = liveBuffers();
    for (const spec of ALL) {
      await scalar(divergence(specAt(spec, 2), asBTV(s), asBTV(t), maskArr(maskRows)));
      await scalar(divergence(specAt(spec, 2), asBTV(s), asBTV(t)));
      await scalar(sparseDivergence(specAt(spec, 2), asBTV(s), topKTeacher(asBTV(t), 2, 2), maskArr(maskRows)));
      await scalar(sparseDivergence(specAt(spec, 1), asBTV(s), topKTeacher(asBTV(t), V, 1)));
      await vals(grad((x: Arr) => sparseDivergence(specAt(spec, 2), x, topKTeacher(asBTV(t), 3, 2), maskArr(maskRows)))(asBTV(s)));
    }
    assert.throws(() => topKTeacher(asBTV(t), V + 1, 1), UserError);
    assert.equal(liveBuffers(), before, "live device buffers after the calls");
  });

  test("a mask of the wrong shape is an error", () => {
    assert.throws(() => divergence({ name: "tv" }, asBTV(s), asBTV(t), np.array([1, 0])), /mask shape/);
  });
});

describe("registry: hinton with divergence, topK and mask", () => {
  const rand = rng(71);
  const B = 2;
  const L = 3;
  const V = 6;
  const s = randomLogits(rand, B * L, V);
  const t = randomLogits(rand, B * L, V);
  const labels = [2, -1, 5, 0, 1, -1];
  const mask = [1, 1, 1, 1, 0, 0];
  const ce64 = (): number => {
    let sum = 0;
    let n = 0;
    s.forEach((row, i) => {
      if (labels[i] < 0) return;
      sum -= Math.log(softmax64(row, 1)[labels[i]]);
      n++;
    });
    return sum / n;
  };
  const batch = () => ({
    labels: ints(labels, [B, L]),
    teacherLogits: np.array(t).reshape([B, L, V]),
    mask: np.array(mask).reshape([B, L]),
  });

  test("λ·D_topk(p‖q)·T² (masked) + (1−λ)·CE (label −1 skipped), eager and under jit + valueAndGrad", async () => {
    const spec = { name: "hinton", temperature: 2, lambda: 0.4, divergence: "jsd" as const, beta: 0.3, topK: 3 };
    const loss = buildLoss(spec);
    const want = 0.4 * ref64({ name: "jsd", beta: 0.3 }, s, t, 2, mask, 3) + 0.6 * ce64();
    const v = await scalar(loss(np.array(s).reshape([B, L, V]), batch()));
    close(v, want, 1e-4, 1e-6, "hinton jsd top-3 masked");

    const f = (x: Arr, y: Arr, tl: Arr, m: Arr) => loss(x, { labels: y, teacherLogits: tl, mask: m });
    const step = jit((x: Arr, y: Arr, tl: Arr, m: Arr) => valueAndGrad(f)(x, y, tl, m));
    const b1 = batch();
    const [v1, g1] = step(np.array(s).reshape([B, L, V]), b1.labels, b1.teacherLogits, b1.mask) as [Arr, Arr];
    const b2 = batch();
    const [v2, g2] = valueAndGrad(f)(np.array(s).reshape([B, L, V]), b2.labels, b2.teacherLogits, b2.mask);
    close(await scalar(v1), want, 1e-4, 1e-6, "jit value");
    close(await scalar(v2), want, 1e-4, 1e-6, "eager value");
    const [a1, a2] = [await vals(g1), await vals(g2)];
    a1.forEach((x, i) => close(x, a2[i], 1e-4, 1e-6, `jit grad[${i}]`));
    assert.ok(a1.every(Number.isFinite));
    step.dispose();
  });

  test("soft-kd (λ = 1) with reverse KL dense and top-k; default divergence stays forward KL", async () => {
    for (const topK of [undefined, 2]) {
      const loss = buildLoss({ name: "soft-kd", temperature: 2, divergence: "reverse-kl", topK });
      const b = batch();
      b.labels.dispose();
      const v = await scalar(loss(np.array(s).reshape([B, L, V]), { teacherLogits: b.teacherLogits, mask: b.mask }));
      close(v, ref64({ name: "reverse-kl" }, s, t, 2, mask, topK), 1e-4, 1e-6, `soft-kd reverse-kl topK=${topK}`);
    }
    const plain = await scalar(buildLoss({ name: "hinton", temperature: 2, lambda: 1 })(np.array([S_SHEET]), { teacherLogits: np.array([T_SHEET]) }));
    close(plain, 0.1191098041 * 4, 1e-5, 1e-7, "default forward KL");
    assert.equal(lossInfo({ name: "hinton", divergence: "tv", topK: 2 }).needsTeacher, true);
  });

  test("ce ignores (and disposes) a mask; bad divergence options are UserErrors at build time", async () => {
    const b = batch();
    const v = await scalar(buildLoss({ name: "ce" })(np.array(s).reshape([B, L, V]), b));
    close(v, ce64(), 1e-5, 1e-6, "ce");
    const bad: [string, Record<string, unknown>][] = [
      ["divergence", { divergence: "kl-ish" }],
      ["beta", { divergence: "jsd", beta: 1.5 }],
      ["alpha", { divergence: "skew-kl", alpha: -0.1 }],
      ["topK", { topK: 0 }],
    ];
    for (const [field, extra] of bad) {
      assert.throws(
        () => buildLoss({ name: "hinton", ...extra } as never),
        (e: unknown) => e instanceof UserError && e.message.includes(field),
        field,
      );
    }
  });

  test("recipe schema accepts divergence, beta, alpha, topK and rejects bad values", () => {
    const recipe = (loss: Record<string, unknown>) => ({
      name: "r",
      data: { dataset: "fashion-mnist" },
      teacher: { model: { type: "mlp", hidden: [8] }, train: { epochs: 1, batchSize: 4, optimizer: { name: "adam", lr: 0.001 }, loss: { name: "ce" } } },
      students: [
        {
          name: "kd",
          role: "distilled",
          model: { type: "mlp", hidden: [4] },
          train: { epochs: 1, batchSize: 4, optimizer: { name: "adam", lr: 0.001 }, loss: { name: "hinton", temperature: 2, ...loss } },
        },
      ],
    });
    const ok = validateRecipe(recipe({ divergence: "jsd", beta: 0.3, alpha: 0.2, topK: 5 }), "r.yaml");
    assert.equal(ok.students[0].train.loss.divergence, "jsd");
    assert.equal(ok.students[0].train.loss.topK, 5);
    for (const bad of [{ divergence: "kl" }, { beta: 2 }, { alpha: -1 }, { topK: 0 }, { topK: 1.5 }]) {
      assert.throws(() => validateRecipe(recipe(bad), "r.yaml"), (e: unknown) => e instanceof UserError && e.message.includes(Object.keys(bad)[0]));
    }
  });
});
