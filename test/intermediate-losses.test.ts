// The intermediate-layer losses against hand-computed values and an independent float64
// reference written here with plain loops (which skips padded tokens and keys instead of masking
// them), padding invariance, and central-difference gradients of that reference against jax-js's
// `grad` on the student's side and the projection.
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { grad, initDevice, liveBuffers, np, type Arr } from "../src/engine/index.js";
import {
  attentionKL,
  checkIntermediate,
  defaultLayerMap,
  embeddingMSE,
  hiddenCosine,
  hiddenMSE,
  intermediateLoss,
  projectionShapes,
  resolveLayerMap,
  valueRelation,
  type IntermediateSpec,
} from "../src/losses/intermediate/index.js";
import { splitProjections } from "../src/losses/intermediate/projections.js";
import { IntermediateSchema } from "../src/losses/intermediate/schema.js";
import type { BertSpec } from "../src/nn/bert.js";
import { UserError } from "../src/util/errors.js";
import { close, rng, scalar, vals } from "./helpers/numeric.js";

before(async () => {
  await initDevice("wasm");
});

const B = 2;
const L = 4;
/** Row 0 has 3 tokens, row 1 has 2: padded positions at the end. */
const MASK = [1, 1, 1, 0, 1, 1, 0, 0];
const on = (b: number, l: number) => MASK[b * L + l] === 1;
const arr = (data: ArrayLike<number>, shape: number[]): Arr => np.array(Float32Array.from(data)).reshape(shape);
const mask = () => arr(MASK, [B, L]);

function random(n: number, seed: number, scale = 1): Float64Array {
  const r = rng(seed);
  // Rounded to float32, so the float64 reference sees exactly what jax-js sees.
  return Float64Array.from({ length: n }, () => Math.fround((r() * 2 - 1) * scale));
}

// ---- float64 references ----

/** p = h·Wᵀ + b per token: h [B, L, Hs], W [Ht, Hs]. */
function refProject(h: Float64Array, Hs: number, w?: Float64Array, bias?: Float64Array, Ht = Hs): Float64Array {
  if (!w) return h;
  const out = new Float64Array(B * L * Ht);
  for (let t = 0; t < B * L; t++) {
    for (let j = 0; j < Ht; j++) {
      let s = bias![j];
      for (let i = 0; i < Hs; i++) s += h[t * Hs + i] * w[j * Hs + i];
      out[t * Ht + j] = s;
    }
  }
  return out;
}

function refHiddenMSE(hs: Float64Array, ht: Float64Array, Hs: number, Ht: number, w?: Float64Array, bias?: Float64Array): number {
  const p = refProject(hs, Hs, w, bias, Ht);
  let sum = 0;
  let n = 0;
  for (let b = 0; b < B; b++) {
    for (let l = 0; l < L; l++) {
      if (!on(b, l)) continue;
      let se = 0;
      for (let j = 0; j < Ht; j++) se += (p[(b * L + l) * Ht + j] - ht[(b * L + l) * Ht + j]) ** 2;
      sum += se / Ht;
      n++;
    }
  }
  return sum / n;
}

function refCosine(hs: Float64Array, ht: Float64Array, Hs: number, Ht: number, w?: Float64Array, bias?: Float64Array): number {
  const p = refProject(hs, Hs, w, bias, Ht);
  let sum = 0;
  let n = 0;
  for (let b = 0; b < B; b++) {
    for (let l = 0; l < L; l++) {
      if (!on(b, l)) continue;
      let dot = 0;
      let na = 0;
      let nb = 0;
      for (let j = 0; j < Ht; j++) {
        const x = p[(b * L + l) * Ht + j];
        const y = ht[(b * L + l) * Ht + j];
        dot += x * y;
        na += x * x;
        nb += y * y;
      }
      sum += 1 - dot / Math.sqrt(na * nb);
      n++;
    }
  }
  return sum / n;
}

/** KL(t ‖ s) over the unpadded keys of each unpadded query row, mean over heads and rows: [B, H, L, L]. */
function refAttentionKL(as: Float64Array, at: Float64Array, H: number): number {
  let sum = 0;
  let n = 0;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let q = 0; q < L; q++) {
        if (!on(b, q)) continue;
        for (let k = 0; k < L; k++) {
          if (!on(b, k)) continue;
          const i = ((b * H + h) * L + q) * L + k;
          sum += at[i] * Math.log(at[i] / as[i]);
        }
        n++;
      }
    }
  }
  return sum / n;
}

/** Softmax(V·Vᵀ/√d_r) over unpadded keys per relation head; [B, R, L, L] (0 elsewhere). */
function refRelation(v: Float64Array, H: number, d: number, R: number): Float64Array {
  const W = H * d;
  const dr = W / R;
  // concat[b, l, h·d + j] = v[b, h, l, j]; relation head r reads columns [r·dr, (r+1)·dr).
  const c = (b: number, l: number, col: number) => v[((b * H + Math.floor(col / d)) * L + l) * d + (col % d)];
  const out = new Float64Array(B * R * L * L);
  for (let b = 0; b < B; b++) {
    for (let r = 0; r < R; r++) {
      for (let q = 0; q < L; q++) {
        const s: number[] = [];
        for (let k = 0; k < L; k++) {
          let dot = 0;
          for (let i = 0; i < dr; i++) dot += c(b, q, r * dr + i) * c(b, k, r * dr + i);
          s.push(dot / Math.sqrt(dr));
        }
        const keys = s.map((_, k) => k).filter((k) => on(b, k));
        const mx = Math.max(...keys.map((k) => s[k]));
        const z = keys.reduce((a, k) => a + Math.exp(s[k] - mx), 0);
        for (const k of keys) out[((b * R + r) * L + q) * L + k] = Math.exp(s[k] - mx) / z;
      }
    }
  }
  return out;
}

function refValueRelation(vs: Float64Array, Hs: number, ds: number, vt: Float64Array, Ht: number, dt: number, R: number): number {
  return refAttentionKL(refRelation(vs, Hs, ds, R), refRelation(vt, Ht, dt, R), R);
}

/** Attention rows: a softmax over the unpadded keys, and large garbage at padded keys and rows. */
function attention(H: number, seed: number): Float64Array {
  const g = random(B * H * L * L, seed, 2);
  const out = new Float64Array(g.length);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let q = 0; q < L; q++) {
        const base = ((b * H + h) * L + q) * L;
        let z = 0;
        for (let k = 0; k < L; k++) if (on(b, k)) z += Math.exp(g[base + k]);
        for (let k = 0; k < L; k++) out[base + k] = Math.fround(on(b, q) && on(b, k) ? Math.exp(g[base + k]) / z : 0.3 + Math.abs(g[base + k]));
      }
    }
  }
  return out;
}

/** A copy with every padded token's row of a [B, (H,) L, D] tensor replaced. */
function scramblePadded(a: Float64Array, H: number, D: number, seed: number): Float64Array {
  const out = Float64Array.from(a);
  const g = random(a.length, seed, 5);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let l = 0; l < L; l++) {
    if (on(b, l)) continue;
    for (let j = 0; j < D; j++) out[((b * H + h) * L + l) * D + j] = g[((b * H + h) * L + l) * D + j];
  }
  return out;
}

/** Attention [B, H, L, L]: padded query rows and padded keys replaced. */
function scrambleAttention(a: Float64Array, H: number, seed: number): Float64Array {
  const out = Float64Array.from(a);
  const g = random(a.length, seed, 5);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let q = 0; q < L; q++) for (let k = 0; k < L; k++) {
    const i = ((b * H + h) * L + q) * L + k;
    if (!on(b, q) || !on(b, k)) out[i] = Math.abs(g[i]) + 0.01;
  }
  return out;
}

/** Central differences of a float64 function at x, every coordinate. */
function numericGrad(f: (x: Float64Array) => number, x: Float64Array, h = 1e-6): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const p = Float64Array.from(x);
    const m = Float64Array.from(x);
    p[i] += h;
    m[i] -= h;
    g[i] = (f(p) - f(m)) / (2 * h);
  }
  return g;
}

async function checkGrad(f: (x: Arr) => Arr, x: Float64Array, shape: number[], ref: (x: Float64Array) => number, what: string): Promise<void> {
  const got = await vals(grad(f)(arr(x, shape)));
  const want = numericGrad(ref, x);
  let nonzero = 0;
  want.forEach((w, i) => {
    close(got[i], w, 2e-3, 2e-5, `${what} d/dx[${i}]`);
    if (Math.abs(w) > 1e-4) nonzero++;
  });
  assert.ok(nonzero > x.length / 4, `${what}: the gradient is mostly zero, the check proves little`);
}

// ---- hand-computed values ----

describe("closed forms on hand-computable inputs", () => {
  test("hidden-mse: tokens [1, 2] vs [0, 0] and a padded token of 9s → (1 + 4) / 2", async () => {
    const v = await scalar(hiddenMSE(arr([1, 2, 9, 9], [1, 2, 2]), arr([0, 0, 0, 0], [1, 2, 2]), arr([1, 0], [1, 2])));
    close(v, 2.5, 1e-6, 1e-7, "hidden-mse");
  });

  test("hidden-mse through a projection: W = [[2, 0]], b = [1]: (2·3 + 1 − 4)² = 9", async () => {
    const v = await scalar(hiddenMSE(arr([3, 5], [1, 1, 2]), arr([4], [1, 1, 1]), arr([1], [1, 1]), { weight: arr([2, 0], [1, 2]), bias: arr([1], [1]) }));
    close(v, 9, 1e-6, 1e-7, "projected hidden-mse");
  });

  test("hidden-cosine: [1, 0] vs [1, 1] → 1 − 1/√2; a padded opposite token adds nothing", async () => {
    const v = await scalar(hiddenCosine(arr([1, 0, 1, 0], [1, 2, 2]), arr([1, 1, -1, 0], [1, 2, 2]), arr([1, 0], [1, 2])));
    close(v, 1 - Math.SQRT1_2, 1e-6, 1e-7, "hidden-cosine");
  });

  test("attention-kl: teacher rows [½, ½], student rows [¼, ¾] → KL(t‖s) = ½ ln(4/3), not KL(s‖t)", async () => {
    const at = arr([0.5, 0.5, 0.5, 0.5], [1, 1, 2, 2]);
    const as = arr([0.25, 0.75, 0.25, 0.75], [1, 1, 2, 2]);
    const v = await scalar(attentionKL(as, at, arr([1, 1], [1, 2])));
    close(v, 0.5 * Math.log(4 / 3), 1e-6, 1e-7, "attention-kl");
    const reverse = 0.25 * Math.log(0.5) + 0.75 * Math.log(1.5);
    assert.ok(Math.abs(v - reverse) > 1e-3, "the swapped direction would give the same number");
  });

  test("value-relation: v_s = [1, 0], v_t = [0, 0] (d = 1): row 0 is KL(uniform ‖ softmax[1, 0]), row 1 is 0", async () => {
    const v = await scalar(valueRelation(arr([1, 0], [1, 1, 2, 1]), arr([0, 0], [1, 1, 2, 1]), arr([1, 1], [1, 2]), 1));
    const p0 = Math.E / (1 + Math.E);
    const row0 = 0.5 * Math.log(0.5 / p0) + 0.5 * Math.log(0.5 / (1 - p0));
    close(v, row0 / 2, 1e-6, 1e-7, "value-relation");
  });
});

// ---- random inputs against the float64 reference, padding, gradients ----

describe("hidden-mse, embedding-mse, hidden-cosine against the float64 reference", () => {
  const Hs = 3;
  const Ht = 5;
  const hs = random(B * L * Hs, 1, 2);
  const ht = random(B * L * Ht, 2, 2);
  const hsEq = random(B * L * Ht, 3, 2);
  const w = random(Ht * Hs, 4);
  const bias = random(Ht, 5);
  const proj = (ww: ArrayLike<number> = w) => ({ weight: arr(ww, [Ht, Hs]), bias: arr(bias, [Ht]) });

  for (const [name, fn, ref] of [
    ["hidden-mse", hiddenMSE, refHiddenMSE],
    ["embedding-mse", embeddingMSE, refHiddenMSE],
    ["hidden-cosine", hiddenCosine, refCosine],
  ] as const) {
    test(`${name}: equal widths and through a [Ht, Hs] projection of the student`, async () => {
      close(await scalar(fn(arr(hsEq, [B, L, Ht]), arr(ht, [B, L, Ht]), mask())), ref(hsEq, ht, Ht, Ht), 1e-5, 1e-6, `${name} equal widths`);
      close(await scalar(fn(arr(hs, [B, L, Hs]), arr(ht, [B, L, Ht]), mask(), proj())), ref(hs, ht, Hs, Ht, w, bias), 1e-5, 1e-6, `${name} projected`);
    });

    test(`${name}: padded tokens of student and teacher change nothing`, async () => {
      const a = await scalar(fn(arr(hs, [B, L, Hs]), arr(ht, [B, L, Ht]), mask(), proj()));
      const b = await scalar(fn(arr(scramblePadded(hs, 1, Hs, 7), [B, L, Hs]), arr(scramblePadded(ht, 1, Ht, 8), [B, L, Ht]), mask(), proj()));
      assert.equal(b, a);
    });

    test(`${name}: gradient in the student's hidden states and in W matches central differences`, async () => {
      await checkGrad((x) => fn(x, arr(ht, [B, L, Ht]), mask(), proj()), hs, [B, L, Hs], (x) => ref(x, ht, Hs, Ht, w, bias), `${name} hs`);
      await checkGrad((x) => fn(arr(hs, [B, L, Hs]), arr(ht, [B, L, Ht]), mask(), { weight: x, bias: arr(bias, [Ht]) }), w, [Ht, Hs], (x) => ref(hs, ht, Hs, Ht, x, bias), `${name} W`);
    });
  }
});

describe("attention-kl against the float64 reference", () => {
  const H = 2;
  const shape = [B, H, L, L];
  const as = attention(H, 11);
  const at = attention(H, 12);

  test("value, with garbage at padded rows and keys", async () => {
    close(await scalar(attentionKL(arr(as, shape), arr(at, shape), mask())), refAttentionKL(as, at, H), 1e-5, 1e-6, "attention-kl");
  });

  test("padded query rows and keys of either model change nothing", async () => {
    const a = await scalar(attentionKL(arr(as, shape), arr(at, shape), mask()));
    const b = await scalar(attentionKL(arr(scrambleAttention(as, H, 13), shape), arr(scrambleAttention(at, H, 14), shape), mask()));
    assert.equal(b, a);
  });

  test("gradient in the student's attention probabilities matches central differences", async () => {
    await checkGrad((x) => attentionKL(x, arr(at, shape), mask()), as, shape, (x) => refAttentionKL(x, at, H), "attention-kl");
  });
});

describe("value-relation against the float64 reference", () => {
  // Student 2 heads × 2 = width 4, teacher 3 heads × 4 = width 12, regrouped into 2 relation heads.
  const [Hs, ds, Ht, dt, R] = [2, 2, 3, 4, 2];
  const vs = random(B * Hs * L * ds, 21, 1.5);
  const vt = random(B * Ht * L * dt, 22, 1.5);
  const sShape = [B, Hs, L, ds];
  const tShape = [B, Ht, L, dt];

  test("value, widths and head counts differing, 2 and 1 relation heads", async () => {
    for (const r of [R, 1]) {
      close(await scalar(valueRelation(arr(vs, sShape), arr(vt, tShape), mask(), r)), refValueRelation(vs, Hs, ds, vt, Ht, dt, r), 1e-5, 1e-6, `value-relation R=${r}`);
    }
  });

  test("values at padded tokens change nothing", async () => {
    const a = await scalar(valueRelation(arr(vs, sShape), arr(vt, tShape), mask(), R));
    const b = await scalar(valueRelation(arr(scramblePadded(vs, Hs, ds, 23), sShape), arr(scramblePadded(vt, Ht, dt, 24), tShape), mask(), R));
    close(b, a, 1e-6, 1e-7, "scrambled padding");
  });

  test("gradient in the student's values matches central differences", async () => {
    await checkGrad((x) => valueRelation(x, arr(vt, tShape), mask(), R), vs, sShape, (x) => refValueRelation(x, Hs, ds, vt, Ht, dt, R), "value-relation");
  });
});

// ---- layer map, checks, projections, the weighted sum ----

const student: BertSpec = { type: "bert", layers: 2, hidden: 3, heads: 1, intermediate: 8 };
const teacher: BertSpec = { type: "bert", layers: 4, hidden: 5, heads: 1, intermediate: 8 };

describe("layer map and checks", () => {
  test("the default map is TinyBERT's uniform m → m·N/M, 1-based", () => {
    assert.deepEqual(defaultLayerMap(2, 4), [[1, 2], [2, 4]]);
    assert.deepEqual(defaultLayerMap(3, 12), [[1, 4], [2, 8], [3, 12]]);
    assert.deepEqual(defaultLayerMap(6, 6), [[1, 1], [2, 2], [3, 3], [4, 4], [5, 5], [6, 6]]);
  });

  const bad = (spec: IntermediateSpec, s: BertSpec, t: BertSpec, re: RegExp) =>
    assert.throws(() => checkIntermediate(spec, s, t), (e: unknown) => e instanceof UserError && re.test(e.message) && !e.message.includes("\n"));
  const terms = [{ name: "hidden-mse" as const, weight: 1 }];

  test("a bad layer map, term or head count is a one-line UserError naming the field", () => {
    bad({ layerMap: [[1, 2], [3, 4]], terms }, student, teacher, /^intermediate\.layerMap\[1\]: student layer 3 is outside 1\.\.2$/);
    bad({ layerMap: [[1, 5]], terms }, student, teacher, /^intermediate\.layerMap\[0\]: teacher layer 5 is outside 1\.\.4$/);
    bad({ layerMap: [[1, 2], [1, 4]], terms }, student, teacher, /^intermediate\.layerMap\[1\]: student layer 1 is mapped twice$/);
    bad({ layerMap: [[1, 1.5]] as [number, number][], terms }, student, teacher, /^intermediate\.layerMap\[0\]: must be/);
    bad({ terms: [{ name: "__proto__" as never, weight: 1 }] }, student, teacher, /^intermediate\.terms\[0\]\.name: unknown term "__proto__"/);
    bad({ terms: [{ name: "hidden-mse", weight: -1 }] }, student, teacher, /^intermediate\.terms\[0\]\.weight/);
    bad({ terms: [{ name: "attention-kl", weight: 1 }] }, { ...student, heads: 3 }, teacher, /^intermediate\.terms\[0\]: attention-kl .* 3 heads and the teacher 1$/);
    bad({ terms: [{ name: "value-relation", weight: 1, relationHeads: 2 }] }, student, teacher, /^intermediate\.terms\[0\]\.relationHeads: 2 must/);
    assert.deepEqual(resolveLayerMap({ terms }, student, teacher), [[1, 2], [2, 4]]);
  });

  test("projection shapes: [Ht, Hs] per hidden-mse pair, one each for embedding-mse and hidden-cosine, none at equal widths", () => {
    const spec: IntermediateSpec = { terms: [{ name: "hidden-mse", weight: 1 }, { name: "embedding-mse", weight: 1 }, { name: "hidden-cosine", weight: 1 }, { name: "attention-kl", weight: 1 }] };
    assert.deepEqual(projectionShapes(spec, student, teacher), [
      ["distill.proj.hidden-mse.1.weight", [5, 3]], ["distill.proj.hidden-mse.1.bias", [5]],
      ["distill.proj.hidden-mse.2.weight", [5, 3]], ["distill.proj.hidden-mse.2.bias", [5]],
      ["distill.proj.embedding-mse.weight", [5, 3]], ["distill.proj.embedding-mse.bias", [5]],
      ["distill.proj.hidden-cosine.weight", [5, 3]], ["distill.proj.hidden-cosine.bias", [5]],
    ]);
    assert.deepEqual(projectionShapes(spec, student, { ...teacher, hidden: 3 }), []);
    const { student: sp, projections } = splitProjections({ "bert.x": 1, "distill.proj.a.weight": 2 } as never);
    assert.deepEqual([Object.keys(sp), Object.keys(projections)], [["bert.x"], ["distill.proj.a.weight"]]);
  });
});

describe("intermediateLoss: the weighted sum over mapped layers", () => {
  test("reads hidden[m] (block m) and attentions/values[m − 1], averages pairs, weights terms, leaks nothing", async () => {
    const map: [number, number][] = [[1, 3], [2, 4]];
    const sp: BertSpec = { ...student, heads: 1 };
    const Hs = sp.hidden;
    const Ht = teacher.hidden;
    const sh = [0, 1, 2].map((i) => random(B * L * Hs, 40 + i, 2));
    const th = [0, 1, 2, 3, 4].map((i) => random(B * L * Ht, 50 + i, 2));
    const sa = [0, 1].map((i) => attention(1, 60 + i));
    const ta = [0, 1, 2, 3].map((i) => attention(1, 70 + i));
    const sv = [0, 1].map((i) => random(B * L * Hs, 80 + i));
    const tv = [0, 1, 2, 3].map((i) => random(B * L * Ht, 90 + i));
    const spec: IntermediateSpec = {
      layerMap: map,
      terms: [
        { name: "hidden-mse", weight: 0.5 },
        { name: "embedding-mse", weight: 2 },
        { name: "attention-kl", weight: 3 },
        { name: "value-relation", weight: 0.25 },
        { name: "hidden-cosine", weight: 1.5 },
      ],
    };
    const shapes = projectionShapes(spec, sp, teacher);
    const host = Object.fromEntries(shapes.map(([n, s], i) => [n, random(s.reduce((a, b) => a * b, 1), 100 + i)]));
    const P = (stem: string) => [host[`distill.proj.${stem}.weight`], host[`distill.proj.${stem}.bias`]] as const;
    const want =
      (0.5 * (refHiddenMSE(sh[1], th[3], Hs, Ht, ...P("hidden-mse.1")) + refHiddenMSE(sh[2], th[4], Hs, Ht, ...P("hidden-mse.2")))) / 2 +
      2 * refHiddenMSE(sh[0], th[0], Hs, Ht, ...P("embedding-mse")) +
      (3 * (refAttentionKL(sa[0], ta[2], 1) + refAttentionKL(sa[1], ta[3], 1))) / 2 +
      0.25 * refValueRelation(sv[1], 1, Hs, tv[3], 1, Ht, 1) +
      1.5 * refCosine(sh[2], th[4], Hs, Ht, ...P("hidden-cosine"));

    const before = liveBuffers();
    const f = (h: Float64Array[], a: Float64Array[], v: Float64Array[], H: number) => ({
      hidden: h.map((x) => arr(x, [B, L, H])),
      attentions: a.map((x) => arr(x, [B, 1, L, L])),
      values: v.map((x) => arr(x, [B, 1, L, H])),
      mask: mask(),
    });
    const proj = Object.fromEntries(shapes.map(([n, s]) => [n, arr(host[n], s)]));
    const got = await scalar(intermediateLoss(spec, sp, teacher)(f(sh, sa, sv, Hs), f(th, ta, tv, Ht), proj));
    close(got, want, 1e-5, 1e-6, "weighted sum");
    assert.equal(liveBuffers(), before, "live device buffers after the call");
  });
});

describe("the recipe field", () => {
  test("IntermediateSchema takes a layer map and terms, and refuses unknown names and fields", () => {
    const ok = IntermediateSchema.parse({ layerMap: [[1, 2], [2, 4]], terms: [{ name: "value-relation", weight: 0.5, relationHeads: 4 }] });
    assert.deepEqual(ok.layerMap, [[1, 2], [2, 4]]);
    for (const bad of [{ terms: [] }, { terms: [{ name: "__proto__", weight: 1 }] }, { terms: [{ name: "hidden-mse", weight: 1, extra: 1 }] }, { layerMap: [[1]], terms: [{ name: "hidden-mse", weight: 1 }] }]) {
      assert.equal(IntermediateSchema.safeParse(bad).success, false, JSON.stringify(bad));
    }
  });
});
