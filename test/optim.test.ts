// Learning-rate schedules and Adam/AdamW against a float64 reference of PyTorch's update rules.
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { np, grad, jit, initDevice, type Arr } from "../src/engine/index.js";
import {
  adamInit,
  adamScalars,
  adamUpdate,
  checkOptimizer,
  learningRate,
  type AdamState,
  type OptimizerSpec,
} from "../src/optim/index.js";
import type { Params } from "../src/nn/models.js";
import { UserError } from "../src/util/errors.js";

before(async () => {
  await initDevice("wasm");
});

function close(actual: number, expected: number, tol: number, what = ""): void {
  assert.ok(
    Number.isFinite(actual) && Math.abs(actual - expected) <= tol,
    `${what} got ${actual}, expected ${expected} (|diff| ${Math.abs(actual - expected)} > ${tol})`,
  );
}
function closeAll(actual: number[], expected: number[], tol: number, what = ""): void {
  assert.equal(actual.length, expected.length, `${what} length`);
  actual.forEach((a, i) => close(a, expected[i], tol, `${what}[${i}]`));
}
async function vals(a: Arr): Promise<number[]> {
  return Array.from((await a.data()) as ArrayLike<number>, Number);
}
async function host(p: Params): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const k of Object.keys(p)) out[k] = await vals(p[k]);
  return out;
}
function toParams(h: Record<string, number[]>): Params {
  const out: Params = {};
  for (const k of Object.keys(h)) out[k] = np.array(h[k]);
  return out;
}

describe("learningRate", () => {
  test("constant: lr at every step", () => {
    const spec: OptimizerSpec = { name: "adam", lr: 3e-3 };
    for (const t of [0, 1, 50, 99]) assert.equal(learningRate(spec, t, 100), 3e-3);
    assert.equal(learningRate({ ...spec, schedule: "constant" }, 7, 10), 3e-3);
  });

  test("warmup: linear from lr/warm at t = 0 to lr at t = warm − 1, then constant", () => {
    const lr = 0.1;
    const warm = 4;
    const spec: OptimizerSpec = { name: "adam", lr, warmupSteps: warm };
    close(learningRate(spec, 0, 100), lr / warm, 1e-15, "t=0");
    close(learningRate(spec, 1, 100), lr / 2, 1e-15, "midpoint of warmup");
    close(learningRate(spec, warm - 1, 100), lr, 1e-15, "t=warm-1");
    // Linear: equal increments.
    const xs = [0, 1, 2, 3].map((t) => learningRate(spec, t, 100));
    for (let i = 1; i < xs.length; i++) close(xs[i] - xs[i - 1], lr / warm, 1e-15, `increment ${i}`);
    for (const t of [warm, 20, 99]) assert.equal(learningRate(spec, t, 100), lr);
  });

  test("cosine: lr at the end of warmup, lr/2 at the midpoint, ~0 at the last step, monotone", () => {
    const lr = 0.01;
    const warm = 10;
    const total = 110;
    const spec: OptimizerSpec = { name: "adamw", lr, schedule: "cosine", warmupSteps: warm };
    close(learningRate(spec, warm - 1, total), lr, 1e-15, "end of warmup");
    close(learningRate(spec, warm, total), lr, 1e-15, "first cosine step");
    const mid = warm + (total - warm) / 2;
    close(learningRate(spec, mid, total), lr / 2, 1e-12, "midpoint");
    const last = learningRate(spec, total - 1, total);
    assert.ok(last >= 0 && last < 1e-3 * lr, `last step lr ${last}`);
    let prev = Infinity;
    for (let t = warm; t < total; t++) {
      const v = learningRate(spec, t, total);
      assert.ok(v <= prev, `cosine not monotone at ${t}`);
      prev = v;
    }
    // Without warmup: starts at lr, lr/2 halfway.
    const plain: OptimizerSpec = { name: "adam", lr, schedule: "cosine" };
    close(learningRate(plain, 0, 50), lr, 1e-15, "cosine t=0");
    close(learningRate(plain, 25, 50), lr / 2, 1e-12, "cosine midpoint");
    assert.ok(learningRate(plain, 49, 50) < 1e-2 * lr);
  });

  test("checkOptimizer rejects a non-positive lr", () => {
    assert.throws(() => checkOptimizer({ name: "adam", lr: 0 }, "train.optimizer"), UserError);
    checkOptimizer({ name: "adam", lr: 1e-3 }, "train.optimizer");
  });
});

// ---------------------------------------------------------------------------------------------
// float64 reference: PyTorch Adam / AdamW.
//   Adam(weight_decay=wd):  g ← g + wd·p, then the step
//   AdamW(weight_decay=wd): p ← p − lr·wd·p (old p), then the step
//   step: m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²; m̂ = m/(1−β1^t); v̂ = v/(1−β2^t);
//         p ← p − lr·m̂/(√v̂ + ε)
type Ref = { p: number[]; m: number[]; v: number[]; t: number };
function refInit(p: number[]): Ref {
  return { p: p.slice(), m: p.map(() => 0), v: p.map(() => 0), t: 0 };
}
function refStep(r: Ref, g0: number[], lr: number, kind: "adam" | "adamw", wd: number, b1 = 0.9, b2 = 0.999, eps = 1e-8): void {
  r.t++;
  const g = kind === "adam" ? g0.map((gi, i) => gi + wd * r.p[i]) : g0.slice();
  if (kind === "adamw") r.p = r.p.map((pi) => pi - lr * wd * pi);
  for (let i = 0; i < r.p.length; i++) {
    r.m[i] = b1 * r.m[i] + (1 - b1) * g[i];
    r.v[i] = b2 * r.v[i] + (1 - b2) * g[i] * g[i];
    const mhat = r.m[i] / (1 - Math.pow(b1, r.t));
    const vhat = r.v[i] / (1 - Math.pow(b2, r.t));
    r.p[i] -= (lr * mhat) / (Math.sqrt(vhat) + eps);
  }
}

const P0: Record<string, number[]> = { w: [0.5, -1.25, 2.0, 0.0, -0.3, 1.1], b: [0.1, -0.2] };
/** Hand-made gradients for step k: varied magnitudes and signs, one exact zero. */
function gradsAt(k: number): Record<string, number[]> {
  return {
    w: [0.3 - 0.1 * k, -1.5 + 0.4 * k, 0.02 * (k + 1), 0, 4 * Math.sin(k + 1), -0.7 * Math.cos(2 * k)],
    b: [1e-3 * (k + 1), -2 + k],
  };
}

/** Runs `steps` steps of adamUpdate eagerly with hand-made grads and the same steps on the reference. */
async function runBoth(spec: OptimizerSpec, steps: number, total = steps) {
  let params = toParams(P0);
  let state: AdamState = adamInit(params);
  const refs: Record<string, Ref> = { w: refInit(P0.w), b: refInit(P0.b) };
  const wd = spec.weightDecay ?? (spec.name === "adamw" ? 0.01 : 0);
  for (let t = 0; t < steps; t++) {
    const g = gradsAt(t);
    [params, state] = adamUpdate(spec, params, toParams(g), state, np.array(adamScalars(spec, t, total)));
    const lr = learningRate(spec, t, total);
    for (const k of Object.keys(refs)) refStep(refs[k], g[k], lr, spec.name, wd, spec.beta1, spec.beta2, spec.eps);
  }
  return { params: await host(params), m: await host(state.m), v: await host(state.v), refs };
}

function checkAgainstRef(got: Awaited<ReturnType<typeof runBoth>>, tol = 1e-5): void {
  for (const k of Object.keys(got.refs)) {
    closeAll(got.params[k], got.refs[k].p, tol, `params.${k}`);
    closeAll(got.m[k], got.refs[k].m, tol, `m.${k}`);
    closeAll(got.v[k], got.refs[k].v, tol, `v.${k}`);
  }
}

describe("Adam / AdamW vs a float64 PyTorch reference", () => {
  test("adamScalars packs [lr/(1−β1^(t+1)), 1/√(1−β2^(t+1)), lr·wd]", () => {
    const s = adamScalars({ name: "adamw", lr: 0.01, weightDecay: 0.1 }, 2, 10);
    close(s[0], 0.01 / (1 - 0.9 ** 3), 1e-8, "stepSize");
    close(s[1], 1 / Math.sqrt(1 - 0.999 ** 3), 1e-5, "invSqrtBc2");
    close(s[2], 0.01 * 0.1, 1e-10, "decay");
    // Plain Adam never decays the weights directly.
    assert.equal(adamScalars({ name: "adam", lr: 0.01, weightDecay: 0.1 }, 0, 10)[2], 0);
  });

  test("Adam: 5 steps with hand-made grads", async () => {
    const got = await runBoth({ name: "adam", lr: 0.05 }, 5);
    checkAgainstRef(got);
    // The parameters really moved (by about lr per step).
    assert.ok(Math.abs(got.params.w[0] - P0.w[0]) > 0.05);
  });

  test("Adam: non-default betas and eps", async () => {
    checkAgainstRef(await runBoth({ name: "adam", lr: 0.02, beta1: 0.8, beta2: 0.95, eps: 1e-3 }, 5));
  });

  test("AdamW (weightDecay 0.1): decoupled decay p ← p − lr·wd·p before the Adam step", async () => {
    const spec: OptimizerSpec = { name: "adamw", lr: 0.05, weightDecay: 0.1 };
    const got = await runBoth(spec, 5);
    checkAgainstRef(got);
    // The decay matters: without it the result differs by more than the tolerance.
    const noDecay = await runBoth({ ...spec, weightDecay: 0 }, 5);
    assert.ok(Math.abs(noDecay.params.w[2] - got.params.w[2]) > 1e-4);
  });

  test("AdamW with a warmup + cosine schedule", async () => {
    checkAgainstRef(await runBoth({ name: "adamw", lr: 0.1, weightDecay: 0.1, schedule: "cosine", warmupSteps: 2 }, 5, 8));
  });

  test("Adam with weightDecay: L2 term wd·p added to the gradient", async () => {
    const spec: OptimizerSpec = { name: "adam", lr: 0.05, weightDecay: 0.1 };
    const got = await runBoth(spec, 5);
    checkAgainstRef(got);
    // The zero-gradient coordinate w[3] = 0 stays 0; w[2] (positive, small grads) is pulled down
    // differently than without decay.
    close(got.params.w[3], 0, 1e-7, "w[3]");
    const noDecay = await runBoth({ ...spec, weightDecay: 0 }, 5);
    assert.ok(Math.abs(noDecay.params.w[2] - got.params.w[2]) > 1e-4);
  });

  test("Adam on a quadratic, gradients from grad(): 5 steps", async () => {
    const target = [1, -2, 0.5];
    const loss = (p: Params) => {
      const d = p.x.sub(np.array(target));
      return d.ref.mul(d).sum();
    };
    const spec: OptimizerSpec = { name: "adam", lr: 0.1 };
    let params: Params = { x: np.array([0, 0, 0]) };
    let state = adamInit(params);
    const ref = refInit([0, 0, 0]);
    for (let t = 0; t < 5; t++) {
      const g = grad(loss)({ x: params.x.ref }) as Params;
      [params, state] = adamUpdate(spec, params, g, state, np.array(adamScalars(spec, t, 5)));
      refStep(ref, ref.p.map((p, i) => 2 * (p - target[i])), 0.1, "adam", 0);
    }
    closeAll(await vals(params.x), ref.p, 1e-5, "x");
    tree_dispose(state);
  });
});

function tree_dispose(state: AdamState): void {
  for (const k of Object.keys(state.m)) state.m[k].dispose();
  for (const k of Object.keys(state.v)) state.v[k].dispose();
}

describe("adamUpdate under jit", () => {
  for (const spec of [
    { name: "adam", lr: 0.05, weightDecay: 0.1 },
    { name: "adamw", lr: 0.05, weightDecay: 0.1, schedule: "cosine", warmupSteps: 1 },
  ] as OptimizerSpec[]) {
    test(`${spec.name}: jitted update equals the eager one over 4 steps`, async () => {
      const step = jit((p: Params, g: Params, s: AdamState, sc: Arr) => adamUpdate(spec, p, g, s, sc));
      const run = step as unknown as (p: Params, g: Params, s: AdamState, sc: Arr) => [Params, AdamState];
      let pj = toParams(P0);
      let sj = adamInit(pj);
      let pe = toParams(P0);
      let se = adamInit(pe);
      for (let t = 0; t < 4; t++) {
        const sc = adamScalars(spec, t, 6);
        [pj, sj] = run(pj, toParams(gradsAt(t)), sj, np.array(sc));
        [pe, se] = adamUpdate(spec, pe, toParams(gradsAt(t)), se, np.array(sc));
      }
      step.dispose();
      const [hj, he] = [await host(pj), await host(pe)];
      const [mj, me] = [await host(sj.m), await host(se.m)];
      const [vj, ve] = [await host(sj.v), await host(se.v)];
      for (const k of Object.keys(P0)) {
        closeAll(hj[k], he[k], 1e-6, `params.${k}`);
        closeAll(mj[k], me[k], 1e-6, `m.${k}`);
        closeAll(vj[k], ve[k], 1e-7, `v.${k}`);
      }
      // And both match the float64 reference.
      const refs: Record<string, Ref> = { w: refInit(P0.w), b: refInit(P0.b) };
      for (let t = 0; t < 4; t++) {
        const g = gradsAt(t);
        for (const k of Object.keys(refs)) refStep(refs[k], g[k], learningRate(spec, t, 6), spec.name, spec.weightDecay ?? 0);
      }
      for (const k of Object.keys(refs)) closeAll(hj[k], refs[k].p, 1e-5, `jit vs ref ${k}`);
    });
  }
});
