import { jax, jit, np, tree, type Arr } from "../engine/index.js";
import type { Model, Params } from "../nn/models.js";
import { modelRef, paramsToHostArrays, WorkerPool, type ModelRef } from "../parallel/pool.js";
import { UserError } from "../util/errors.js";

const EVAL_BATCH = 500;

const compiled = new WeakMap<Model, (p: Params, x: Arr) => Arr>();

/**
 * Logits of `model` on N rows of `x` (dim floats each), as a host array [N, classes]. Batches
 * have a fixed size (the last is zero-padded and its padding dropped) so jit compiles once.
 * With `workers` > 1, worker threads take contiguous runs of whole batches: the same numbers.
 */
export async function predictLogits(model: Model, params: Params, x: Float32Array, dim: number, workers = 1): Promise<Float32Array> {
  const n = x.length / dim;
  if (workers > 1 && n > EVAL_BATCH) return predictOnWorkers(modelRef(model), params, x, dim, workers, EVAL_BATCH);
  const classes = model.input.classes;
  let f = compiled.get(model);
  if (!f) {
    f = jit((p: Params, xb: Arr) => model.apply(p, xb, { train: false })) as (p: Params, x: Arr) => Arr;
    compiled.set(model, f);
  }
  const out = new Float32Array(n * classes);
  const buf = new Float32Array(EVAL_BATCH * dim);
  for (let start = 0; start < n; start += EVAL_BATCH) {
    const rows = Math.min(EVAL_BATCH, n - start);
    buf.fill(0);
    buf.set(x.subarray(start * dim, (start + rows) * dim));
    const logits = f(tree.ref(params), np.array(buf).reshape([EVAL_BATCH, dim]));
    const data = (await logits.data()) as Float32Array;
    out.set(data.subarray(0, rows * classes), start * classes);
  }
  await jax.blockUntilReady(params);
  return out;
}

/**
 * Logits of a classifier on N rows of x, computed by `workers` pool threads on contiguous
 * parts of whole evaluation batches, so every row's logits are those one thread computes.
 */
async function predictOnWorkers(
  model: ModelRef,
  params: Params,
  x: Float32Array,
  dim: number,
  workers: number,
  evalBatch: number,
): Promise<Float32Array> {
  const n = x.length / dim;
  const classes = model.kind === "classifier" ? model.input.classes : 0;
  const pool = await WorkerPool.get(workers);
  const host = await paramsToHostArrays(params);
  const per = Math.ceil(n / evalBatch / workers) * evalBatch;
  const out = new Float32Array(n * classes);
  const parts: [number, number][] = [];
  for (let r = 0; r < workers && r * per < n; r++) parts.push([r * per, Math.min(n, (r + 1) * per)]);
  let detach = () => {};
  try {
    await new Promise<void>((resolve, reject) => {
      let pending = parts.length;
      detach = pool.attach((_rank, m) => {
        if (m.type === "logits") {
          out.set(m.logits, parts[m.id][0] * classes);
          if (--pending === 0) resolve();
        } else if (m.type === "error") reject(m.user ? new UserError(m.message) : new Error(`inference worker: ${m.message}`));
      });
      parts.forEach(([lo, hi], r) => {
        const xs = x.slice(lo * dim, hi * dim); // moved, not cloned: the worker owns this copy
        pool.post(r, { type: "infer", id: r, model, params: host, x: xs, dim }, [xs.buffer as ArrayBuffer]);
      });
    });
  } catch (e) {
    await pool.discard();
    throw e;
  } finally {
    detach();
  }
  return out;
}
