// Adam and AdamW as small pure transformations used inside `jit`, as in optax. The step count
// and the learning-rate schedule live on the host; the compiled step receives the per-step
// scalars as one array argument, so changing the learning rate never retraces.
import { np, tree, type Arr } from "../engine/index.js";
import type { Params } from "../nn/models.js";
import { UserError } from "../util/errors.js";

export interface OptimizerSpec {
  name: "adam" | "adamw";
  lr: number;
  weightDecay?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  schedule?: "constant" | "cosine";
  warmupSteps?: number;
}

export type AdamState = {
  m: Params;
  v: Params;
};

export function adamInit(params: Params): AdamState {
  return {
    m: tree.map((p: Arr) => np.zerosLike(p), tree.ref(params)) as Params,
    v: tree.map((p: Arr) => np.zerosLike(p), tree.ref(params)) as Params,
  };
}

/** Learning rate at 0-based step `t` of `total`: linear warmup, then constant or cosine to 0. */
export function learningRate(spec: OptimizerSpec, t: number, total: number): number {
  const warm = spec.warmupSteps ?? 0;
  if (t < warm) return (spec.lr * (t + 1)) / warm;
  if ((spec.schedule ?? "constant") === "constant") return spec.lr;
  const span = Math.max(1, total - warm);
  const progress = Math.min(1, (t - warm) / span);
  return spec.lr * 0.5 * (1 + Math.cos(Math.PI * progress));
}

/**
 * Host-side scalars for step t (0-based), packed as [lr/(1−β1^(t+1)), 1/√(1−β2^(t+1)), lr·wd].
 * This is PyTorch's Adam: p −= lr·m̂/(√v̂ + ε) with m̂ = m/bc1, v̂ = v/bc2, rearranged so the
 * bias corrections are scalars computed once on the host.
 */
export function adamScalars(spec: OptimizerSpec, t: number, total: number): Float32Array {
  const b1 = spec.beta1 ?? 0.9;
  const b2 = spec.beta2 ?? 0.999;
  const lr = learningRate(spec, t, total);
  const bc1 = 1 - Math.pow(b1, t + 1);
  const bc2 = 1 - Math.pow(b2, t + 1);
  const wd = spec.name === "adamw" ? (spec.weightDecay ?? 0.01) : 0;
  return new Float32Array([lr / bc1, 1 / Math.sqrt(bc2), lr * wd]);
}

/**
 * One Adam(W) update inside jit. Consumes params, grads, state and `scalars` (from
 * adamScalars). Plain Adam adds weight decay to the gradient (PyTorch's `weight_decay`);
 * AdamW decays the weights directly (decoupled).
 */
export function adamUpdate(
  spec: OptimizerSpec,
  params: Params,
  grads: Params,
  state: AdamState,
  scalars: Arr,
): [Params, AdamState] {
  const b1 = spec.beta1 ?? 0.9;
  const b2 = spec.beta2 ?? 0.999;
  const eps = spec.eps ?? 1e-8;
  const stepSize = scalars.ref.slice(0);
  const invSqrtBc2 = scalars.ref.slice(1);
  const decay = scalars.slice(2);
  const l2 = spec.name === "adam" ? (spec.weightDecay ?? 0) : 0;
  const m: Params = {};
  const v: Params = {};
  const out: Params = {};
  for (const name of Object.keys(params)) {
    let g = grads[name];
    let p = params[name];
    if (l2 > 0) g = g.add(p.ref.mul(l2));
    m[name] = state.m[name].mul(b1).add(g.ref.mul(1 - b1));
    v[name] = state.v[name].mul(b2).add(g.ref.mul(g).mul(1 - b2));
    if (spec.name === "adamw") p = p.ref.sub(p.mul(decay.ref));
    const denom = np.sqrt(v[name].ref).mul(invSqrtBc2.ref).add(eps);
    out[name] = p.sub(m[name].ref.mul(stepSize.ref).div(denom));
  }
  stepSize.dispose();
  invSqrtBc2.dispose();
  decay.dispose();
  return [out, { m, v }];
}

export function checkOptimizer(spec: OptimizerSpec, where: string): void {
  if (!(spec.lr > 0)) throw new UserError(`${where}.lr: must be > 0, got ${spec.lr}`);
}
