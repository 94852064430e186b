// Models as pure functions over flat parameter records: `init(key) → params`,
// `apply(params, x, ctx) → logits`. Names and weight layouts follow PyTorch (`weight` is
// [out, in] or [out, in, kh, kw]) so checkpoints map one-to-one onto `nn.Linear`/`nn.Conv2d`.
import { np, nn, random, type Arr } from "../engine/index.js";
import { UserError } from "../util/errors.js";
import { numel } from "../util/shape.js";
import { bert, type BertSpec } from "./bert.js";

export type Params = Record<string, Arr>;

export interface ApplyCtx {
  /** Dropout is active only when training. */
  train: boolean;
  /** PRNG key for dropout; required when training a model with dropout > 0. */
  key?: Arr;
}

export type ModelSpec =
  | { type: "mlp"; hidden: number[]; dropout?: number }
  | { type: "cnn"; channels: number[]; dense: number; kernel?: number; dropout?: number }
  | BertSpec;

// The data's shape, defined with the data (src/data/ knows no model; models are built for data).
import type { InputShape } from "../data/datasets.js";
export type { InputShape };

export interface Model {
  /** Short name shown in reports, e.g. "mlp 784-512-256-10". */
  name: string;
  spec: ModelSpec;
  input: InputShape;
  /** Parameter names and shapes, in a fixed order. */
  shapes: [string, number[]][];
  init(key: Arr): Params;
  /** Consumes `params` and `x` (jax-js move semantics); x is [B, H*W*C] or [B, H, W, C]. */
  apply(params: Params, x: Arr, ctx: ApplyCtx): Arr;
}

export function paramCount(model: Model): number {
  return model.shapes.reduce((n, [, s]) => n + numel(s), 0);
}

/** PyTorch's default for nn.Linear and nn.Conv2d: weight and bias uniform in ±1/√fan_in. */
function initUniform(shapes: [string, number[]][], fanIn: Record<string, number>, key: Arr): Params {
  const keys = np.unstack(random.split(key, shapes.length));
  const params: Params = {};
  shapes.forEach(([name, shape], i) => {
    const bound = 1 / Math.sqrt(fanIn[name]);
    params[name] = random.uniform(keys[i], shape, { minval: -bound, maxval: bound });
  });
  return params;
}

function dropout(x: Arr, rate: number, ctx: ApplyCtx, salt: number): Arr {
  if (!ctx.train || rate <= 0) return x;
  if (!ctx.key) throw new Error("dropout needs ctx.key when training");
  const k = np.unstack(random.split(ctx.key.ref, salt + 1))[salt];
  const keep = random.bernoulli(k, 1 - rate, x.shape);
  return np.where(keep, x.mul(1 / (1 - rate)), 0);
}

/** x @ W.T + b with W stored [out, in], as nn.Linear. */
function linear(x: Arr, w: Arr, b: Arr): Arr {
  return np.dot(x, w.transpose()).add(b);
}

export function mlp(spec: Extract<ModelSpec, { type: "mlp" }>, input: InputShape): Model {
  const inDim = input.height * input.width * input.channels;
  const widths = [inDim, ...spec.hidden, input.classes];
  const shapes: [string, number[]][] = [];
  const fanIn: Record<string, number> = {};
  for (let i = 0; i + 1 < widths.length; i++) {
    shapes.push([`layers.${i}.weight`, [widths[i + 1], widths[i]]], [`layers.${i}.bias`, [widths[i + 1]]]);
    fanIn[`layers.${i}.weight`] = fanIn[`layers.${i}.bias`] = widths[i];
  }
  const rate = spec.dropout ?? 0;
  return {
    name: `mlp ${widths.join("-")}`,
    spec,
    input,
    shapes,
    init: (key) => initUniform(shapes, fanIn, key),
    apply(params, x, ctx) {
      let h = x.reshape([x.shape[0], inDim]);
      const n = widths.length - 1;
      for (let i = 0; i < n; i++) {
        h = linear(h, params[`layers.${i}.weight`], params[`layers.${i}.bias`]);
        if (i < n - 1) h = dropout(nn.relu(h), rate, ctx, i);
      }
      ctx.key?.dispose();
      return h;
    },
  };
}

/**
 * A materialised copy of a strided view, made by a trivial reduction (jax-js fuses views into
 * their consumers; a matmul reading a shifted window of the padded input through index
 * arithmetic loses its vector path and runs ~80× slower than on a contiguous copy).
 */
export function contiguous(x: Arr): Arr {
  return x.reshape([...x.shape, 1]).sum(x.shape.length);
}

/**
 * 'Same'-padded k×k convolution as a sum of k² matmuls over shifted views of the padded input
 * (no im2col copy). jax-js's lax.convGeneralDilated is ~30× slower on Wasm, and im2col's
 * concatenate (and its gradient) cost more than the matmuls here. With one input channel the
 * matmul degenerates (K = 1), so the sum becomes broadcast multiplies that jit fuses into one
 * kernel. x is NHWC, w is [O, C, k, k] as in PyTorch.
 */
export function conv2dSame(x: Arr, w: Arr, b: Arr): Arr {
  const [B, H, W, C] = x.shape;
  const [O, , k] = w.shape;
  const p = (k - 1) / 2;
  const xp = np.pad(x, [[0, 0], [p, p], [p, p], [0, 0]]);
  // [k, k, O, C] with C contiguous, materialised by a (trivial) reduction: sliced straight out
  // of [O, C, k, k], each tap's weights have stride k² along C, and the matmul over C then
  // loses its vector path (10× slower in inference, where nothing else materialises them).
  const wt = w.transpose([2, 3, 0, 1]).reshape([k, k, O, C, 1]).sum(4);
  let acc: Arr | null = null;
  for (let dy = 0; dy < k; dy++) {
    for (let dx = 0; dx < k; dx++) {
      const view = xp.ref.slice([], [dy, dy + H], [dx, dx + W], []);
      const wk = wt.ref.slice(dy, dx); // [O, C]
      const y =
        C === 1
          ? view.mul(wk.reshape([O]))
          : np.dot(contiguous(view.reshape([B * H * W, C])), wk.transpose()).reshape([B, H, W, O]);
      acc = acc ? acc.add(y) : y;
    }
  }
  xp.dispose();
  wt.dispose();
  return acc!.add(b);
}

/** 2×2 max-pool, stride 2, NHWC. */
export function maxPool2(x: Arr): Arr {
  const [B, H, W, C] = x.shape;
  return x.reshape([B, H / 2, 2, W / 2, 2, C]).max([2, 4]);
}

export function cnn(spec: Extract<ModelSpec, { type: "cnn" }>, input: InputShape): Model {
  const k = spec.kernel ?? 3;
  if (k % 2 !== 1) throw new UserError(`model.kernel: must be odd, got ${k}`);
  const shapes: [string, number[]][] = [];
  const fanIn: Record<string, number> = {};
  let c = input.channels;
  let h = input.height;
  let w = input.width;
  spec.channels.forEach((o, i) => {
    if (h % 2 || w % 2) throw new UserError(`model.channels: ${spec.channels.length} pooling stages do not fit a ${input.height}×${input.width} input`);
    shapes.push([`convs.${i}.weight`, [o, c, k, k]], [`convs.${i}.bias`, [o]]);
    fanIn[`convs.${i}.weight`] = fanIn[`convs.${i}.bias`] = c * k * k;
    c = o;
    h /= 2;
    w /= 2;
  });
  const flat = c * h * w;
  shapes.push(["fc.weight", [spec.dense, flat]], ["fc.bias", [spec.dense]]);
  shapes.push(["head.weight", [input.classes, spec.dense]], ["head.bias", [input.classes]]);
  fanIn["fc.weight"] = fanIn["fc.bias"] = flat;
  fanIn["head.weight"] = fanIn["head.bias"] = spec.dense;
  const rate = spec.dropout ?? 0;
  return {
    name: `cnn ${spec.channels.join("-")}-${spec.dense}`,
    spec,
    input,
    shapes,
    init: (key) => initUniform(shapes, fanIn, key),
    apply(params, x, ctx) {
      const B = x.shape[0];
      let a = x.reshape([B, input.height, input.width, input.channels]);
      for (let i = 0; i < spec.channels.length; i++) {
        a = maxPool2(nn.relu(conv2dSame(a, params[`convs.${i}.weight`], params[`convs.${i}.bias`])));
      }
      let z = nn.relu(linear(a.reshape([B, flat]), params["fc.weight"], params["fc.bias"]));
      z = dropout(z, rate, ctx, 0);
      ctx.key?.dispose();
      return linear(z, params["head.weight"], params["head.bias"]);
    },
  };
}

/** Models looked up by `model.type` in a recipe. */
export function buildModel(spec: ModelSpec, input: InputShape): Model {
  switch (spec.type) {
    case "mlp":
      return mlp(spec, input);
    case "cnn":
      return cnn(spec, input);
    case "bert":
      return bert(spec, input);
  }
}
