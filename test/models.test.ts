import { before, test } from "node:test";
import assert from "node:assert/strict";
import { initDevice, np, random, tree } from "../src/engine/index.js";
import { buildModel, conv2dSame, maxPool2, paramCount } from "../src/nn/models.js";
import { Rng } from "../src/util/rng.js";

before(async () => {
  await initDevice("wasm");
});

const FMNIST = { height: 28, width: 28, channels: 1, classes: 10 };

test("parameter counts of the article's and the recipes' models", () => {
  assert.equal(paramCount(buildModel({ type: "mlp", hidden: [512, 256] }, FMNIST)), 535_818);
  assert.equal(paramCount(buildModel({ type: "mlp", hidden: [128] }, FMNIST)), 101_770);
  const teacher = paramCount(buildModel({ type: "cnn", channels: [32, 64], dense: 128 }, FMNIST));
  const student = paramCount(buildModel({ type: "cnn", channels: [8, 16], dense: 32 }, FMNIST));
  assert.equal(teacher, 421_642);
  assert.equal(student, 26_698);
  assert.ok(Math.abs(teacher / student - 16) < 0.5, `ratio ${teacher / student}`);
});

test("PyTorch default init: weights and biases uniform in ±1/√fan_in", async () => {
  const m = buildModel({ type: "cnn", channels: [4], dense: 8 }, { height: 4, width: 4, channels: 2, classes: 3 });
  const p = m.init(random.key(3));
  const bounds: Record<string, number> = {
    "convs.0.weight": 1 / Math.sqrt(2 * 9),
    "convs.0.bias": 1 / Math.sqrt(2 * 9),
    "fc.weight": 1 / Math.sqrt(4 * 2 * 2),
    "head.weight": 1 / Math.sqrt(8),
  };
  for (const [name, bound] of Object.entries(bounds)) {
    const v = (await p[name].ref.data()) as Float32Array;
    const max = Math.max(...v.map(Math.abs));
    assert.ok(max <= bound, `${name}: ${max} > ${bound}`);
    assert.ok(max > bound * 0.5, `${name}: values should spread to the bound, max ${max}`);
  }
  for (const a of Object.values(p)) a.dispose();
});

/** Direct 'same' convolution in float64, NHWC input, [O, C, k, k] weights. */
function naiveConv(x: Float64Array, B: number, H: number, W: number, C: number, w: Float64Array, O: number, k: number, b: Float64Array) {
  const out = new Float64Array(B * H * W * O);
  const p = (k - 1) / 2;
  for (let n = 0; n < B; n++)
    for (let y = 0; y < H; y++)
      for (let xx = 0; xx < W; xx++)
        for (let o = 0; o < O; o++) {
          let acc = b[o];
          for (let dy = 0; dy < k; dy++)
            for (let dx = 0; dx < k; dx++) {
              const sy = y + dy - p;
              const sx = xx + dx - p;
              if (sy < 0 || sy >= H || sx < 0 || sx >= W) continue;
              for (let c = 0; c < C; c++) acc += x[((n * H + sy) * W + sx) * C + c] * w[((o * C + c) * k + dy) * k + dx];
            }
          out[((n * H + y) * W + xx) * O + o] = acc;
        }
  return out;
}

for (const [C, O] of [
  [1, 3],
  [2, 4],
]) {
  test(`conv2dSame (shifted matmuls) equals a direct convolution, C=${C} O=${O}`, async () => {
    const rng = new Rng(C * 10 + O);
    const B = 2, H = 6, W = 4, k = 3;
    const rand = (n: number) => Float64Array.from({ length: n }, () => rng.nextU32() / 4294967296 - 0.5);
    const x = rand(B * H * W * C);
    const w = rand(O * C * k * k);
    const b = rand(O);
    const got = (await conv2dSame(
      np.array(Float32Array.from(x)).reshape([B, H, W, C]),
      np.array(Float32Array.from(w)).reshape([O, C, k, k]),
      np.array(Float32Array.from(b)),
    ).data()) as Float32Array;
    const want = naiveConv(x, B, H, W, C, w, O, k, b);
    assert.equal(got.length, want.length);
    for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) < 1e-5, `at ${i}: ${got[i]} vs ${want[i]}`);
  });
}

test("maxPool2 takes the max of each 2×2 window", async () => {
  const x = np.array(Float32Array.from({ length: 16 }, (_, i) => i)).reshape([1, 4, 4, 1]);
  assert.deepEqual(Array.from((await maxPool2(x).data()) as Float32Array), [5, 7, 13, 15]);
});

test("dropout is active only in training, and the mask is a function of the key", async () => {
  const m = buildModel({ type: "mlp", hidden: [64], dropout: 0.5 }, { height: 1, width: 4, channels: 1, classes: 2 });
  const p = m.init(random.key(0));
  const x = np.ones([8, 4]);
  const run = async (train: boolean, key?: number) =>
    Array.from((await m.apply(tree.ref(p), x.ref, { train, key: key === undefined ? undefined : random.key(key) }).data()) as Float32Array);
  const evalA = await run(false);
  assert.deepEqual(await run(false), evalA);
  const trainA = await run(true, 1);
  assert.deepEqual(await run(true, 1), trainA, "same key, same mask");
  assert.notDeepEqual(await run(true, 2), trainA, "another key, another mask");
  assert.notDeepEqual(trainA, evalA);
  x.dispose();
  tree.dispose(p);
});
