// Data-parallel training over the worker pool's threads (src/parallel/pool.ts), so a step uses
// every core.
//
// jax-js on Wasm runs each kernel on one thread, and its own worker mode costs a message round
// trip per kernel. Here N pool threads (src/parallel/worker.ts) each run their own engine on an
// equal slice of every batch, and meet twice per step in shared memory: to exchange gradients,
// and after each has updated its part of the parameters. The calling thread only coordinates:
// it sends each step one step ahead (so the workers never wait), reports progress, handles
// Ctrl-C and writes checkpoints straight from the shared state. Example batches are built by
// the workers themselves from examples in shared memory.
import { availableParallelism } from "node:os";
import { jax, jit, np, random, readInto, valueAndGrad, type Arr } from "../engine/index.js";
import type { Params } from "../nn/models.js";
import { buildLoss, type LossFn, type SparseTeacher } from "../losses/index.js";
import { intermediateLoss, type IntermediateSpec } from "../losses/intermediate/index.js";
import { isProjected, splitProjections } from "../losses/intermediate/projections.js";
import { isEncoder, type EncoderFeatures } from "../nn/bert.js";
import { adamKernel, type AdamKernelArgs } from "../optim/adam-wasm.js";
import { deriveSeed } from "../util/rng.js";
import { UserError } from "../util/errors.js";
import { numel } from "../util/shape.js";
import { modelFromRef, paramsToHostArrays, WorkerPool, type HostParams, type ModelRef } from "../parallel/pool.js";
import type { ExampleSourceSpec, HostBatch, TrainSpec, TrainableModel } from "./trainer.js";

/**
 * How many replicas a step of `batchSize` rows runs on: `requested` if given, else one per
 * core up to 2, when the batch splits into equal slices of at least 16 rows.
 */
export function resolveWorkers(requested: number | "auto" | undefined, batchSize: number, where: string): number {
  if (requested === undefined || requested === "auto") {
    const n = Math.min(2, availableParallelism());
    return n > 1 && batchSize % n === 0 && batchSize / n >= 16 ? n : 1;
  }
  if (!Number.isInteger(requested) || requested < 1) throw new UserError(`${where}: workers must be a positive integer or "auto", got ${requested}`);
  if (batchSize % requested !== 0) throw new UserError(`${where}: batch size ${batchSize} does not split evenly over ${requested} workers`);
  return requested;
}

/** Rows [r·n/N, (r+1)·n/N) of every per-row field of a batch. */
export function shardBatch(b: HostBatch, rank: number, n: number): HostBatch {
  const rows = b.xShape[0];
  const per = rows / n;
  const cut = <T extends Float32Array | Int32Array>(a: T, shape: number[]): T => {
    const w = a.length / shape[0];
    return a.slice(rank * per * w, (rank + 1) * per * w) as T;
  };
  const out: HostBatch = { x: cut(b.x, b.xShape), xShape: [per, ...b.xShape.slice(1)] };
  if (b.labels) {
    const ls = b.labelShape ?? [b.labels.length];
    out.labels = cut(b.labels, ls);
    out.labelShape = [per, ...ls.slice(1)];
  }
  if (b.mask) out.mask = cut(b.mask, b.labelShape ?? [b.mask.length]);
  if (b.teacherLogits) {
    out.teacherLogits = cut(b.teacherLogits, b.teacherShape!);
    out.teacherShape = [per, ...b.teacherShape!.slice(1)];
  }
  if (b.teacherTopK) {
    const ls = b.labelShape ?? [rows];
    const { k, ids, logprobs, logTail } = b.teacherTopK;
    out.teacherTopK = { k, ids: cut(ids, ls), logprobs: cut(logprobs, ls), ...(logTail ? { logTail: cut(logTail, ls) } : {}) };
  }
  return out;
}

export type StepBatch = { x: Arr; labels?: Arr; teacherLogits?: Arr; teacherTopK?: SparseTeacher; mask?: Arr; key?: Arr };

export function batchToDevice(hb: HostBatch): StepBatch {
  const b: StepBatch = {
    x: hb.x instanceof Int32Array ? np.array(hb.x, { dtype: np.int32 }).reshape(hb.xShape) : np.array(hb.x).reshape(hb.xShape),
  };
  if (hb.labels) b.labels = np.array(hb.labels, { dtype: np.int32 }).reshape(hb.labelShape ?? [hb.labels.length]);
  if (hb.teacherLogits) b.teacherLogits = np.array(hb.teacherLogits).reshape(hb.teacherShape!);
  if (hb.mask) b.mask = np.array(hb.mask).reshape(hb.labelShape ?? [hb.mask.length]);
  if (hb.teacherTopK) {
    const { k, ids, logprobs, logTail } = hb.teacherTopK;
    const lead = hb.labelShape ?? [ids.length / k];
    b.teacherTopK = {
      indices: np.array(ids, { dtype: np.int32 }).reshape([...lead, k]),
      logprobs: np.array(logprobs).reshape([...lead, k]),
      ...(logTail ? { logTail: np.array(logTail).reshape(lead) } : {}),
    };
  }
  return b;
}

/**
 * A host batch on the device as the loss sees it: labels dropped when the loss reads none, and
 * a dropout key when the model has dropout.
 */
export function stepBatch(hb: HostBatch, needsLabels: boolean, dropoutSeed: number | null): StepBatch {
  const b = batchToDevice(hb);
  if (!needsLabels && b.labels) {
    b.labels.dispose();
    delete b.labels;
  }
  if (dropoutSeed !== null) b.key = random.key(dropoutSeed & 0x7fffffff);
  return b;
}

/**
 * The loss of a model's training-mode logits and its gradient with respect to the parameters;
 * a teacher (given `tp`, non-empty) first adds its logits to the batch, as constants.
 */
export function lossAndGrad(
  model: TrainableModel,
  loss: TrainSpec["loss"],
  teacher?: TrainableModel,
  intermediate?: IntermediateSpec,
): (p: Params, b: StepBatch, tp: Params) => [Arr, Params] {
  const lossFn = buildLoss(loss);
  if (intermediate) return encoderLossAndGrad(model, lossFn, teacher, intermediate);
  const lossOf = (p: Params, b: StepBatch): Arr =>
    lossFn(model.apply(p, b.x, { train: true, key: b.key }), { labels: b.labels, teacherLogits: b.teacherLogits, teacherTopK: b.teacherTopK, mask: b.mask });
  return (p, b, tp) => {
    if (teacher && Object.keys(tp).length > 0) {
      b = { ...b, teacherLogits: jax.lax.stopGradient(teacher.apply(tp, b.x.ref, { train: false })) };
    }
    return valueAndGrad(lossOf)(p, b) as [Arr, Params];
  };
}

/**
 * lossAndGrad with intermediate-layer terms: the teacher runs live, in eval mode, its features
 * all constants; the student's training-mode features feed the logit loss (with the teacher's
 * logits) plus Σ weight · term. `model` is the student with its projections (withProjections).
 */
function encoderLossAndGrad(model: TrainableModel, lossFn: LossFn, teacher: TrainableModel | undefined, spec: IntermediateSpec): (p: Params, b: StepBatch, tp: Params) => [Arr, Params] {
  if (!isProjected(model) || !teacher || !isEncoder(teacher)) throw new Error("intermediate-layer terms need an encoder student with projections and a live encoder teacher");
  const student = model.student;
  const terms = intermediateLoss(spec, student.spec, teacher.spec);
  type Batch = StepBatch & { tf: EncoderFeatures };
  const lossOf = (p: Params, b: Batch): Arr => {
    const { student: sp, projections } = splitProjections(p);
    const { logits, ...sf } = student.features(sp, b.x, { train: true, key: b.key });
    const { logits: tLogits, ...tf } = b.tf;
    // A source's cached soft labels are ignored: the live teacher's logits are used instead.
    for (const a of [b.teacherLogits, b.teacherTopK?.indices, b.teacherTopK?.logprobs, b.teacherTopK?.logTail]) a?.dispose();
    const kd = lossFn(logits, { labels: b.labels, teacherLogits: tLogits, mask: b.mask });
    return kd.add(terms(sf, tf, projections));
  };
  return (p, b, tp) => {
    const f = teacher.features(tp, b.x.ref, { train: false });
    const c = (a: Arr) => jax.lax.stopGradient(a);
    const tf: EncoderFeatures = { logits: c(f.logits), hidden: f.hidden.map(c), attentions: f.attentions.map(c), values: f.values.map(c), mask: c(f.mask) };
    return valueAndGrad(lossOf)(p, { ...b, tf }) as [Arr, Params];
  };
}

/** Everything a replica needs; the parameters and optimiser state are in `memory`. */
export interface ReplicaConfig {
  workers: number;
  model: ModelRef;
  spec: TrainSpec;
  seed: number;
  needsLabels: boolean;
  teacher?: ModelRef;
  /** Examples in shared memory, from which each replica builds its own slice of every batch. */
  source?: ExampleSourceSpec;
  /** Shared memory laid out as below (see `memoryLayout`). */
  memory: WebAssembly.Memory;
}

const sharedCopies = new WeakMap<object, Float32Array | Int32Array>();

/** `a` itself if it lives in shared memory, else a shared copy (made once per array). */
function shared<T extends Float32Array | Int32Array>(a: T): T {
  if (a.buffer instanceof SharedArrayBuffer) return a;
  let c = sharedCopies.get(a) as T | undefined;
  if (!c) {
    c = new (a.constructor as new (b: SharedArrayBuffer) => T)(new SharedArrayBuffer(a.byteLength));
    c.set(a);
    sharedCopies.set(a, c);
  }
  return c;
}

/** An example source whose arrays worker threads can read without copying them. */
export function sharedSource(s: ExampleSourceSpec): ExampleSourceSpec {
  const t = s.opts.cachedTeacherLogits;
  return { data: { ...s.data, x: shared(s.data.x), labels: shared(s.data.labels) }, opts: { ...s.opts, cachedTeacherLogits: t && shared(t) } };
}

// Shared memory, after a small control block: the parameters and Adam's m and v (the model's
// tensors back to back, padded to a multiple of 4 floats), then N gradient slots, each followed
// by its slice's loss. The state lives here, not on any device: after the gradients are in,
// replica r updates its r-th part of the flat vector with a SIMD kernel (a sharded optimiser:
// no core repeats another's work), and after a second barrier every replica uploads the new
// parameters for its next slice.
const CTRL_INTS = 16; // [arrived, generation, failed]
const ARRIVED = 0;
const GENERATION = 1;
const FAILED = 2;

function memoryLayout(workers: number, shapes: [string, number[]][]) {
  const P = shapes.reduce((n, [, s]) => n + numel(s), 0);
  const Pp = Math.ceil(P / 4) * 4;
  const base = CTRL_INTS * 4;
  const slot = Pp + 4; // floats per gradient slot: gradients, loss, padding
  return { P, Pp, slot, params: base, m: base + 4 * Pp, v: base + 8 * Pp, grads: base + 12 * Pp, bytes: base + 4 * (3 * Pp + workers * slot) };
}

export function sharedMemory(workers: number, shapes: [string, number[]][]): WebAssembly.Memory {
  const pages = Math.ceil(memoryLayout(workers, shapes).bytes / 65536);
  return new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
}

export class ReplicaFailed extends Error {}

/** Views of the shared parameters and optimiser state, per tensor of the model. */
export class SharedState {
  readonly layout: ReturnType<typeof memoryLayout>;
  readonly ctrl: Int32Array;
  readonly params: Float32Array;
  readonly m: Float32Array;
  readonly v: Float32Array;
  readonly grads: Float32Array;
  readonly offsets: [string, number, number[]][] = [];

  constructor(memory: WebAssembly.Memory, workers: number, shapes: [string, number[]][]) {
    let off = 0;
    for (const [name, shape] of shapes) {
      this.offsets.push([name, off, shape]);
      off += numel(shape);
    }
    const L = (this.layout = memoryLayout(workers, shapes));
    const buf = memory.buffer;
    this.ctrl = new Int32Array(buf, 0, CTRL_INTS);
    this.params = new Float32Array(buf, L.params, L.Pp);
    this.m = new Float32Array(buf, L.m, L.Pp);
    this.v = new Float32Array(buf, L.v, L.Pp);
    this.grads = new Float32Array(buf, L.grads, workers * L.slot);
  }

  store(state: { params: HostParams; m: HostParams; v: HostParams }): void {
    for (const [name, off] of this.offsets) {
      this.params.set(state.params[name], off);
      this.m.set(state.m[name], off);
      this.v.set(state.v[name], off);
    }
  }

  /** Copies, per tensor (for checkpoints). */
  host(): { params: HostParams; m: HostParams; v: HostParams } {
    const out = { params: {} as HostParams, m: {} as HostParams, v: {} as HostParams };
    for (const [name, off, shape] of this.offsets) {
      const n = numel(shape);
      out.params[name] = this.params.slice(off, off + n);
      out.m[name] = this.m.slice(off, off + n);
      out.v[name] = this.v.slice(off, off + n);
    }
    return out;
  }

  /** The current parameters as device arrays of the calling thread's engine. */
  deviceParams(): Params {
    const p: Params = {};
    for (const [name, off, shape] of this.offsets) {
      p[name] = np.array(this.params.subarray(off, off + numel(shape))).reshape(shape);
    }
    return p;
  }

  /** Tells every replica waiting at a barrier to give up: one has failed. */
  fail(): void {
    Atomics.store(this.ctrl, FAILED, 1);
    Atomics.notify(this.ctrl, GENERATION);
  }
}

/**
 * One data-parallel replica, on a worker thread: the gradients of its slice of the batch,
 * published to shared memory; its part of the optimiser step; the new parameters read back.
 */
export class Replica {
  readonly model: TrainableModel;
  readonly shared: SharedState;
  private readonly kernel: (a: AdamKernelArgs) => void;
  private readonly grad;

  constructor(
    readonly rank: number,
    readonly cfg: ReplicaConfig,
  ) {
    this.model = modelFromRef(cfg.model);
    this.shared = new SharedState(cfg.memory, cfg.workers, this.model.shapes);
    this.kernel = adamKernel(cfg.memory);
    const teacher = cfg.teacher ? modelFromRef(cfg.teacher) : undefined;
    this.grad = jit(lossAndGrad(this.model, cfg.spec.loss, teacher, cfg.spec.intermediate) as never) as unknown as (p: Params, b: StepBatch, tp: Params) => [Arr, Params];
  }

  /**
   * One training step on this replica's slice `hb`. Consumes `params` (the device copy of the
   * shared parameters); returns the updated device copy and the batch's mean loss (the mean of
   * the slices' losses).
   */
  step(params: Params, hb: HostBatch, scalars: Float32Array, step: number, teacherParams: Params): [Params, number] {
    const dropout = (this.model.spec as { dropout?: number }).dropout
      ? this.rank === 0
        ? deriveSeed(this.cfg.seed, "dropout", step)
        : deriveSeed(this.cfg.seed, "dropout", step, this.rank)
      : null;
    const b = stepBatch(hb, this.cfg.needsLabels, dropout);
    const [loss, grads] = this.grad(params, b, teacherParams);
    const S = this.shared;
    const L = S.layout;
    const mine = this.rank * L.slot;
    for (const [name, off, shape] of S.offsets) readInto(grads[name], S.grads.subarray(mine + off, mine + off + numel(shape)));
    S.grads[mine + L.Pp] = (loss.dataSync() as Float32Array)[0];
    this.barrier();
    let lossSum = 0;
    const n = this.cfg.workers;
    for (let r = 0; r < n; r++) lossSum += S.grads[r * L.slot + L.Pp];
    this.adam(scalars);
    this.barrier();
    return [S.deviceParams(), lossSum / n];
  }

  /**
   * Adam(W) on this replica's part of the flat parameters, with the slot-ordered mean of the
   * gradients: optim.adamUpdate's arithmetic, in float32 SIMD lanes.
   */
  private adam(scalars: Float32Array): void {
    const o = this.cfg.spec.optimizer;
    const L = this.shared.layout;
    const n = this.cfg.workers;
    const part = (r: number) => Math.floor((r * L.Pp) / n / 4) * 4;
    const lo = part(this.rank);
    const hi = this.rank === n - 1 ? L.Pp : part(this.rank + 1);
    this.kernel({
      p: L.params + 4 * lo,
      m: L.m + 4 * lo,
      v: L.v + 4 * lo,
      g: L.grads + 4 * lo,
      stride: 4 * L.slot,
      slots: n,
      count: hi - lo,
      invN: 1 / n,
      l2: o.name === "adam" ? (o.weightDecay ?? 0) : 0,
      b1: o.beta1 ?? 0.9,
      b2: o.beta2 ?? 0.999,
      lr: scalars[0],
      invSqrtBc2: scalars[1],
      eps: o.eps ?? 1e-8,
      decay: scalars[2],
    });
  }

  private barrier(): void {
    const c = this.shared.ctrl;
    const gen = Atomics.load(c, GENERATION);
    if (Atomics.add(c, ARRIVED, 1) === this.cfg.workers - 1) {
      Atomics.store(c, ARRIVED, 0);
      Atomics.add(c, GENERATION, 1);
      Atomics.notify(c, GENERATION);
      return;
    }
    while (Atomics.load(c, GENERATION) === gen) {
      if (Atomics.load(c, FAILED)) throw new ReplicaFailed("a training worker failed");
      Atomics.wait(c, GENERATION, gen, 100);
    }
  }
}

/**
 * N replicas on pool threads and the shared memory holding the parameters and optimiser
 * state. The caller dispatches batches (at most one step ahead) and awaits each step's end.
 */
export class ReplicaGroup {
  private error: Error | null = null;
  private readonly done: { step: number; loss: number }[] = [];
  private waiting: { resolve: (d: { step: number; loss: number }) => void; reject: (e: Error) => void } | null = null;
  private detach: () => void = () => {};
  readonly shared: SharedState;

  private constructor(
    readonly cfg: ReplicaConfig,
    shapes: [string, number[]][],
    private readonly pool: WorkerPool,
  ) {
    this.shared = new SharedState(cfg.memory, cfg.workers, shapes);
  }

  static async start(
    cfg: Omit<ReplicaConfig, "memory">,
    shapes: [string, number[]][],
    state: { params: Params; m: Params; v: Params; teacherParams?: Params },
  ): Promise<ReplicaGroup> {
    const pool = await WorkerPool.get(cfg.workers);
    const g = new ReplicaGroup({ ...cfg, memory: sharedMemory(cfg.workers, shapes) }, shapes, pool);
    g.shared.store({ params: await paramsToHostArrays(state.params), m: await paramsToHostArrays(state.m), v: await paramsToHostArrays(state.v) });
    const teacherParams = state.teacherParams ? await paramsToHostArrays(state.teacherParams) : undefined;
    let pending = cfg.workers;
    const initialized = new Promise<void>((resolve, reject) => {
      g.detach = pool.attach((_rank, m) => {
        if (m.type === "initialized") {
          if (--pending === 0) resolve();
        } else if (m.type === "done") g.finished(m);
        else if (m.type === "error") g.failed(m.user ? new UserError(m.message) : new Error(`training worker: ${m.message}`), reject);
      });
    });
    for (let rank = 0; rank < cfg.workers; rank++) pool.post(rank, { type: "init", rank, cfg: g.cfg, teacherParams });
    try {
      await initialized;
    } catch (e) {
      await g.close();
      throw e;
    }
    return g;
  }

  private finished(d: { step: number; loss: number }): void {
    this.inFlight--;
    if (this.waiting) {
      this.waiting.resolve(d);
      this.waiting = null;
    } else this.done.push(d);
  }

  private failed(e: Error, reject: (e: Error) => void): void {
    this.error ??= e;
    this.shared.fail(); // release the other replicas from their barrier
    reject(this.error);
    this.waiting?.reject(this.error);
    this.waiting = null;
  }

  /**
   * Sends every replica its slice of the batch for `step`, or, with an example source, where in
   * the epoch that batch is, for the replicas to build their slices themselves.
   */
  dispatch(batch: HostBatch | { epoch: number; step: number }, scalars: Float32Array, step: number): void {
    const n = this.cfg.workers;
    this.inFlight++;
    for (let r = 0; r < n; r++) this.pool.post(r, { type: "step", batch: "x" in batch ? shardBatch(batch, r, n) : batch, scalars, step });
  }

  /** Steps sent whose "done" has not arrived yet. */
  private inFlight = 0;

  /** The next finished step (in order) and its batch's mean loss. */
  next(): Promise<{ step: number; loss: number }> {
    if (this.error) return Promise.reject(this.error);
    const d = this.done.shift();
    if (d) return Promise.resolve(d);
    return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
  }

  /** Frees the replicas (the threads stay in the pool, unless something failed). */
  async close(): Promise<void> {
    // A step still in flight (the trainer stopped on an exception with one sent ahead) would
    // report "done" to whichever group attaches to the pool next, and that group would take it
    // for one of its own steps: wait for it here.
    while (this.inFlight > 0 && !this.error) {
      try {
        await this.next();
      } catch {
        break;
      }
    }
    this.detach();
    if (this.error) {
      this.shared.fail();
      await this.pool.discard();
      return;
    }
    for (let r = 0; r < this.cfg.workers; r++) this.pool.post(r, { type: "release" });
  }
}

