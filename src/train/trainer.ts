// One readable training loop for every role (teacher, scratch student, distilled student):
// the loss decides what a batch carries (labels, cached teacher logits, or a live teacher pass
// on the augmented view). Forward, loss, backward and the optimiser run in one jit.
import { existsSync } from "node:fs";
import { jax, jit, np, random, tree, type Arr } from "../engine/index.js";
import type { Model, Params } from "../nn/models.js";
import { lossInfo, type LossSpec } from "../losses/index.js";
import { adamInit, adamScalars, adamUpdate, checkOptimizer, learningRate, type AdamState, type OptimizerSpec } from "../optim/index.js";
import { epochOrder, gatherRows, makeBatch, stepsPerEpoch, type Examples } from "../data/batches.js";
import { loadCheckpoint, saveCheckpoint } from "../checkpoint/checkpoint.js";
import { disposeParams, paramsFromHost, paramsToHost } from "../checkpoint/params.js";
import { deriveSeed } from "../util/rng.js";
import { UserError } from "../util/errors.js";
import { teacherCounter } from "../teachers/teacher.js";
import { lossAndGrad, ReplicaGroup, resolveWorkers, sharedSource, stepBatch, type StepBatch } from "./replicas.js";
import { modelRef } from "../parallel/pool.js";
import type { HostTensor } from "../checkpoint/safetensors.js";
import { isEncoder } from "../nn/bert.js";
import { checkIntermediate, projectionShapes, type IntermediateSpec } from "../losses/intermediate/index.js";
import { splitProjections, withProjections } from "../losses/intermediate/projections.js";

export interface TrainSpec {
  epochs: number;
  batchSize: number;
  optimizer: OptimizerSpec;
  loss: LossSpec;
  /** Random-shift augmentation, in pixels. */
  shift?: number;
  /** Also save a checkpoint every this many steps (besides each epoch's end). */
  checkpointEvery?: number;
  /**
   * Intermediate-layer terms (src/losses/intermediate) added to the logit loss. Needs an encoder
   * student and an encoder teacher, which then runs live inside the step (cached teacher logits
   * are not used); the run's params also hold the learned projections (`distill.proj.*`,
   * see `splitProjections`).
   */
  intermediate?: IntermediateSpec;
  /**
   * Which parameters the run finishes with: the last epoch's (default) or those of the epoch
   * with the lowest validation loss (needs `validate`).
   */
  keep?: "last" | "best-validation";
}

export interface TrainLogRecord {
  run: string;
  epoch: number;
  step: number;
  loss: number;
  lr: number;
  seconds: number;
}

/** Held-out metrics of the parameters at an epoch's end (see TrainArgs.validate). */
export interface ValidationMetrics {
  /** Mean cross-entropy against the true labels, nats. */
  loss: number;
  accuracy: number;
}

/** One line per epoch of the run's log, beside the training-loss records. */
export interface ValidationLogRecord {
  run: string;
  epoch: number;
  step: number;
  valLoss: number;
  valAccuracy: number;
  seconds: number;
}

/** A batch as host arrays; shapes are fixed per source so jit compiles once. */
export interface HostBatch {
  x: Float32Array | Int32Array;
  xShape: number[];
  /** Integer targets, −1 where nothing is to be predicted (unlabelled, padding). */
  labels?: Int32Array;
  labelShape?: number[];
  teacherLogits?: Float32Array;
  teacherShape?: number[];
  /**
   * A top-k teacher's soft labels, in place of `teacherLogits`: shape labelShape + [k], its k
   * most probable classes per position sorted by descending probability, log-probabilities at
   * T = 1, and log(1 − Σ p) (computed on the host in float64) where known.
   */
  teacherTopK?: { k: number; ids: Int32Array; logprobs: Float32Array; logTail?: Float32Array };
  /** 1 where a position counts for the divergence, 0 for padding; shape = labelShape. */
  mask?: Float32Array;
  /** LM batches of aligned corpus windows: the window id of each row (a soft-label cache's key). */
  windows?: Int32Array;
}

/**
 * Where a trainer's batches come from. `batch(epoch, step)` must depend on nothing else (given
 * the same current parameters), so a resumed run replays the uninterrupted one; on-policy
 * sources read the current student parameters.
 */
export interface BatchSource {
  stepsPerEpoch: number;
  /** How a worker thread can build the same batches itself (example sources). */
  rebuild?: ExampleSourceSpec;
  /** True when batches depend on the current parameters (on-policy); no batch is fetched early. */
  readsParams?: boolean;
  batch(epoch: number, step: number, params: Params): HostBatch | Promise<HostBatch>;
}

/** What the trainer needs of a model: classifiers and language models both fit. */
export interface TrainableModel {
  spec: object;
  shapes: [string, number[]][];
  init(key: Arr): Params;
  apply(params: Params, x: Arr, ctx: { train: boolean; key?: Arr }): Arr;
}

export interface TrainArgs {
  name: string;
  model: TrainableModel;
  spec: TrainSpec;
  /** Classification examples (batches built here), or any other batch source. */
  data: Examples | BatchSource;
  seed: number;
  /** Frozen teacher; with `cachedTeacherLogits` its outputs are looked up, not recomputed. */
  teacher?: { model: TrainableModel; params: Params };
  cachedTeacherLogits?: Float32Array;
  /** Where checkpoints go (`.safetensors`); saved each epoch and on interruption. */
  checkpoint?: string;
  resume?: boolean;
  /** Stored beside the checkpoint; a resumed run must match it. */
  config?: unknown;
  log?: (rec: TrainLogRecord | ValidationLogRecord) => void;
  /** `validation`: the latest epoch's held-out metrics, once there are any. */
  progress?: (done: number, total: number, loss: number, validation?: ValidationMetrics) => void;
  /**
   * Evaluates parameters on held-out examples; called at every epoch's end (`epoch` counts
   * from 1) on this thread, also with replicas, and logged. Must not consume `params`.
   */
  validate?: (params: Params, epoch: number) => Promise<ValidationMetrics>;
  /**
   * Save a checkpoint when this many seconds have passed since the last save (default 300), so a
   * kill loses at most a few minutes however long an epoch is (a language model's run is one
   * epoch). The numbers do not depend on when checkpoints are saved: a resume replays bit for bit.
   */
  checkpointSeconds?: number;
  /** Set `requested` (e.g. from SIGINT) to save a checkpoint and stop after the current step. */
  stop?: { requested: boolean };
  /** How often the loss is read back to the host (each read is a device sync). */
  logEvery?: number;
  /**
   * Data-parallel replicas, one per thread (see replicas.ts); 1 (the default) runs the step on
   * this thread alone. The numbers depend on it (gradients are summed in another order).
   */
  workers?: number | "auto";
}

export interface TrainResult {
  params: Params;
  status: "done" | "interrupted";
  steps: number;
  seconds: number;
  finalLoss: number;
  /** With keep: best-validation, the epoch (1-based) whose parameters were kept. */
  keptEpoch?: number;
}

function isSource(d: Examples | BatchSource): d is BatchSource {
  return typeof (d as BatchSource).batch === "function";
}

export interface ExampleSourceOptions {
  batchSize: number;
  seed: number;
  shift?: number;
  labels: boolean;
  cachedTeacherLogits?: Float32Array;
  classes: number;
  /** Build only slice `rank` of `of` equal slices of every batch (a data-parallel worker's). */
  shard?: { rank: number; of: number };
}
export type ExampleSourceSpec = { data: Examples; opts: ExampleSourceOptions };

/**
 * Classification batches: the example order and the shifts come from (seed, epoch, step);
 * cached teacher logits are gathered by example index.
 */
export function exampleSource(data: Examples, opts: ExampleSourceOptions): BatchSource {
  const seed = deriveSeed(opts.seed, "data");
  let cachedEpoch = -1;
  let order: Int32Array = new Int32Array(0);
  return {
    stepsPerEpoch: stepsPerEpoch(data.n, opts.batchSize),
    rebuild: { data, opts },
    batch(epoch, s) {
      if (epoch !== cachedEpoch) {
        order = epochOrder(data.n, seed, epoch);
        cachedEpoch = epoch;
      }
      const rows = opts.shard ? opts.batchSize / opts.shard.of : opts.batchSize;
      const lo = opts.shard ? opts.shard.rank * rows : 0;
      const hb = makeBatch(data, order, s, opts.batchSize, { shift: opts.shift, seed, epoch, rows: [lo, lo + rows] });
      const out: HostBatch = { x: hb.x, xShape: [rows, data.dim] };
      if (opts.labels) {
        out.labels = hb.labels;
        out.labelShape = [rows];
      }
      if (opts.cachedTeacherLogits) {
        out.teacherLogits = gatherRows(opts.cachedTeacherLogits, opts.classes, hb.index);
        out.teacherShape = [rows, opts.classes];
      }
      return out;
    },
  };
}

interface CkptState {
  epoch: number;
  stepInEpoch: number;
  step: number;
  done: boolean;
  seconds: number;
  /** keep: best-validation: the best epoch so far; its parameters are the `best.` tensors. */
  best?: { epoch: number } & ValidationMetrics;
  /** keep: best-validation, once done: the epoch whose parameters the checkpoint holds. */
  kept?: number;
}

const BEST = "best.";

export async function train(args: TrainArgs): Promise<TrainResult> {
  const { spec, data, seed } = args;
  checkOptimizer(spec.optimizer, `${args.name}.train.optimizer`);
  const info = lossInfo(spec.loss);
  const model = spec.intermediate ? projectedStudent(args) : args.model;
  // A batch source may carry the teacher's logits itself; examples need a teacher or a cache.
  if (info.needsTeacher && !args.teacher && !args.cachedTeacherLogits && !isSource(data)) {
    throw new Error(`${args.name}: loss "${spec.loss.name}" needs a teacher`);
  }
  // Intermediate-layer terms read the teacher's features, so its cached logits are not used.
  const useCache = info.needsTeacher && !spec.shift && !spec.intermediate && args.cachedTeacherLogits !== undefined;
  const liveTeacher = (info.needsTeacher || !!spec.intermediate) && !useCache && args.teacher !== undefined;
  if (!isSource(data) && stepsPerEpoch(data.n, spec.batchSize) === 0) {
    throw new UserError(`${args.name}.train.batchSize: ${spec.batchSize} is larger than the ${data.n} training examples`);
  }
  const source = isSource(data)
    ? data
    : exampleSource(data, {
        batchSize: spec.batchSize,
        seed,
        shift: spec.shift,
        labels: info.needsLabels,
        cachedTeacherLogits: useCache ? args.cachedTeacherLogits : undefined,
        classes: (model as Model).input?.classes ?? 0,
      });
  const perEpoch = source.stepsPerEpoch;
  const total = perEpoch * spec.epochs;
  const hasDropout = ((model.spec as { dropout?: number }).dropout ?? 0) > 0;
  const keepBest = spec.keep === "best-validation";
  if (keepBest && !args.validate) throw new UserError(`${args.name}.train.keep: best-validation needs a validation set (data.validation)`);

  let params: Params;
  let opt: AdamState;
  let state: CkptState = { epoch: 0, stepInEpoch: 0, step: 0, done: false, seconds: 0 };
  // keep: best-validation: a host copy of the best epoch's parameters (checkpointed with them).
  let bestTensors: Record<string, HostTensor> | null = null;
  if (args.resume && args.checkpoint && existsSync(args.checkpoint)) {
    const ck = loadCheckpoint(args.checkpoint);
    if (JSON.stringify(ck.config) !== JSON.stringify(args.config ?? null)) {
      throw new UserError(`${args.checkpoint}: --resume with a different config than the checkpoint was made with`);
    }
    params = paramsFromHost(ck.tensors, model.shapes, args.checkpoint);
    opt = {
      m: paramsFromHost(ck.tensors, model.shapes, args.checkpoint, "optimizer.m."),
      v: paramsFromHost(ck.tensors, model.shapes, args.checkpoint, "optimizer.v."),
    };
    state = ck.state as CkptState;
    if (state.best) bestTensors = pick(ck.tensors, model.shapes, BEST, args.checkpoint);
  } else {
    // Init and data order depend on the seed and the model alone, not the run's name, so a
    // scratch and a distilled student of one seed start from the same weights and see the
    // same batches: the comparison isolates the loss.
    params = model.init(random.key(deriveSeed(seed, "init", JSON.stringify(model.spec)) & 0x7fffffff));
    opt = adamInit(params);
  }

  let group: ReplicaGroup | null = null;
  /** `final`: the parameters the finished run keeps, in place of the current ones. */
  const save = async (st: CkptState, final?: Record<string, HostTensor>) => {
    if (!args.checkpoint) return;
    let tensors: Record<string, HostTensor>;
    if (group) {
      // With replicas the state lives in shared memory, not on this thread's device.
      const h = group.shared.host();
      tensors = {};
      for (const [name, shape] of model.shapes) {
        tensors[name] = { dtype: "F32", shape, data: h.params[name] };
        tensors[`optimizer.m.${name}`] = { dtype: "F32", shape, data: h.m[name] };
        tensors[`optimizer.v.${name}`] = { dtype: "F32", shape, data: h.v[name] };
      }
    } else {
      tensors = {
        ...(await paramsToHost(params)),
        ...(await paramsToHost(opt.m, "optimizer.m.")),
        ...(await paramsToHost(opt.v, "optimizer.v.")),
      };
    }
    if (final) Object.assign(tensors, final);
    else if (bestTensors) for (const [name, t] of Object.entries(bestTensors)) tensors[BEST + name] = t;
    saveCheckpoint(args.checkpoint, { tensors, config: args.config ?? null, state: st });
  };

  // The current parameters as host tensors (with replicas they live in shared memory).
  const hostParams = async (): Promise<Record<string, HostTensor>> => {
    if (!group) return paramsToHost(params);
    const h = group.shared.host();
    return Object.fromEntries(model.shapes.map(([name, shape]) => [name, { dtype: "F32", shape, data: h.params[name] } as HostTensor]));
  };
  let lastVal: ValidationMetrics | undefined;
  const validateEpoch = async (epoch: number): Promise<void> => {
    if (!args.validate) return;
    const p = group ? group.shared.deviceParams() : params;
    try {
      // The student alone is evaluated: its projections are no part of it.
      lastVal = await args.validate(spec.intermediate ? splitProjections(p).student : p, epoch + 1);
    } finally {
      if (group) disposeParams(p);
    }
    args.log?.({ run: args.name, epoch: epoch + 1, step: state.step, valLoss: lastVal.loss, valAccuracy: lastVal.accuracy, seconds: elapsed() });
    // Best = lowest validation loss, not highest accuracy: the loss moves with every example's
    // confidence, so it is less noisy on a few thousand examples and rarely ties; the earlier
    // epoch wins a tie, and a NaN loss counts as the worst.
    const worse = (v: number) => (Number.isNaN(v) ? Infinity : v);
    if (keepBest && (!state.best || worse(lastVal.loss) < worse(state.best.loss))) {
      bestTensors = await hostParams();
      state = { ...state, best: { epoch: epoch + 1, ...lastVal } };
    }
  };

  const teacher = args.teacher;
  const gradOf = lossAndGrad(model, spec.loss, teacher?.model, spec.intermediate);
  const step = jit(((p: Params, o: AdamState, scalars: Arr, b: StepBatch, tp: Params) => {
    const [loss, grads] = gradOf(tree.ref(p), b, tp);
    const [p2, o2] = adamUpdate(spec.optimizer, p, grads, o, scalars);
    return [p2, o2, loss];
  }) as never) as unknown as (p: Params, o: AdamState, s: Arr, b: StepBatch, tp: Params) => [Params, AdamState, Arr];

  const logEvery = args.logEvery ?? 50;
  const started = performance.now() - state.seconds * 1000;
  // The loss is summed on the device (one replica) or on the host (replicas report theirs).
  let lossSum: Arr | number | null = null;
  let lossCount = 0;
  let lastLoss = NaN;
  let status: TrainResult["status"] = "done";
  const elapsed = () => (performance.now() - started) / 1000;
  let lastYield = performance.now();

  const readLoss = async (epoch: number): Promise<void> => {
    if (lossSum === null) return;
    const sum = typeof lossSum === "number" ? lossSum : ((await lossSum.data()) as Float32Array)[0];
    const v = sum / lossCount;
    lossSum = null;
    lossCount = 0;
    if (!Number.isFinite(v)) {
      disposeParams(params);
      throw new UserError(
        `${args.name}: loss became ${v} at step ${state.step} (epoch ${epoch + 1}); stopped` +
          (args.checkpoint && existsSync(args.checkpoint) ? `, last good checkpoint kept at ${args.checkpoint}` : ""),
      );
    }
    lastLoss = v;
    args.log?.({
      run: args.name,
      epoch: epoch + 1,
      step: state.step,
      loss: v,
      lr: learningRate(spec.optimizer, Math.max(0, state.step - 1), total),
      seconds: elapsed(),
    });
  };

  const workers = resolveWorkers(args.workers ?? 1, spec.batchSize, `${args.name}.train`);
  if (workers > 1 && state.step < total) {
    const cfg = {
      workers,
      model: modelRef(model),
      spec,
      seed,
      needsLabels: info.needsLabels,
      teacher: liveTeacher ? modelRef(teacher!.model) : undefined,
      source: source.rebuild ? sharedSource(source.rebuild) : undefined,
    };
    group = await ReplicaGroup.start(cfg, model.shapes, { params, m: opt.m, v: opt.v, teacherParams: liveTeacher ? teacher!.params : undefined });
    disposeParams(opt.m);
    disposeParams(opt.v);
    opt = { m: {}, v: {} };
  }

  // With replicas, the next batch of an epoch is sent while the workers run the current one, so
  // they never wait for it (unless batches depend on the parameters being updated). Nothing is
  // in flight at an epoch's end or a stop, so a checkpoint is always the state after a step.
  const scalarsAt = (t: number) => adamScalars(spec.optimizer, t, total);
  const fetch = async (epoch: number, s: number): Promise<HostBatch> => {
    const hb = await source.batch(epoch, s, params);
    if (liveTeacher) teacherCounter.examples += hb.xShape[0];
    return hb;
  };
  let sent = false; // the current step's batch is already with the workers
  // Periodic checkpoints mid-epoch. Whether one follows a step is decided before that step is
  // sent, so that with replicas the next step is then not sent ahead: a checkpoint is always the
  // state after a whole step, with nothing in flight.
  const every = spec.checkpointEvery;
  const everySeconds = args.checkpointSeconds ?? 300;
  let lastSave = performance.now();
  const checkpointDue = (stepAfter: number, s: number) =>
    !!args.checkpoint && s + 1 < perEpoch && ((every !== undefined && stepAfter % every === 0) || (performance.now() - lastSave) / 1000 >= everySeconds);
  try {
    outer: for (let epoch = state.epoch; epoch < spec.epochs; epoch++) {
      const first = epoch === state.epoch ? state.stepInEpoch : 0;
      for (let s = first; s < perEpoch; s++) {
        const scalars = scalarsAt(state.step);
        const saveAfter = checkpointDue(state.step + 1, s);
        if (group) {
          if (source.readsParams) {
            disposeParams(params);
            params = group.shared.deviceParams();
          }
          // Example batches are built by the workers themselves, each its own slice.
          const send = async (e: number, t: number, step: number) => {
            if (!source.rebuild) return group!.dispatch(await fetch(e, t), scalarsAt(step), step);
            if (liveTeacher) teacherCounter.examples += spec.batchSize;
            group!.dispatch({ epoch: e, step: t }, scalarsAt(step), step);
          };
          if (!sent) await send(epoch, s, state.step);
          sent = !source.readsParams && s + 1 < perEpoch && !args.stop?.requested && !saveAfter;
          if (sent) await send(epoch, s + 1, state.step + 1);
          const done = await group.next();
          lossSum = ((lossSum as number | null) ?? 0) + done.loss;
        } else {
          const b = stepBatch(await fetch(epoch, s), info.needsLabels, hasDropout ? deriveSeed(seed, "dropout", state.step) : null);
          const [p2, o2, loss] = step(params, opt, np.array(scalars), b, liveTeacher ? tree.ref(teacher!.params) : {});
          params = p2;
          opt = o2;
          lossSum = lossSum === null ? loss : (lossSum as Arr).add(loss);
        }
        lossCount++;
        state.step++;
        state.stepInEpoch = s + 1;
        // Without a sync per step, jax-js queues work lazily and memory grows without bound.
        await jax.blockUntilReady(params);
        if (state.step % logEvery === 0) await readLoss(epoch);
        args.progress?.(state.step, total, lastLoss, lastVal);
        // The device awaits above resolve as microtasks; give the event loop a turn now and then
        // so signals (Ctrl-C) and progress output get through.
        if (performance.now() - lastYield > 100) {
          await new Promise((r) => setImmediate(r));
          lastYield = performance.now();
        }
        if (args.stop?.requested && !sent) {
          await readLoss(epoch);
          state = { ...state, epoch, seconds: elapsed() };
          await save(state);
          status = "interrupted";
          break outer;
        }
        if (saveAfter && !sent) {
          state = { ...state, epoch, seconds: elapsed() };
          await save(state);
          lastSave = performance.now();
        }
      }
      await readLoss(epoch);
      await validateEpoch(epoch);
      const done = epoch + 1 === spec.epochs;
      state = { ...state, epoch: epoch + 1, stepInEpoch: 0, done, seconds: elapsed() };
      // The finished checkpoint holds the kept parameters (and no separate `best.` copy).
      if (done && keepBest) state.kept = state.best!.epoch;
      await save(state, done && keepBest ? bestTensors! : undefined);
      lastSave = performance.now();
    }
    if (group) {
      disposeParams(params);
      params = group.shared.deviceParams();
    }
  } finally {
    await group?.close();
  }
  if (lossSum !== null && typeof lossSum !== "number") (lossSum as Arr).dispose();
  if (status === "done" && state.epoch >= spec.epochs && !state.done) {
    state.done = true;
    if (keepBest) state.kept = state.best!.epoch;
    await save(state, keepBest ? bestTensors! : undefined);
  }
  if (status === "done" && keepBest) {
    disposeParams(params);
    params = paramsFromHost(bestTensors!, model.shapes, args.checkpoint ?? args.name);
  }
  disposeParams(opt.m);
  disposeParams(opt.v);
  // The checkpointed time, so a reused run reports exactly what the original run did.
  return { params, status, steps: state.step, seconds: state.seconds, finalLoss: lastLoss, keptEpoch: keepBest && status === "done" ? state.kept : undefined };
}

/**
 * The student wrapped with the projections its intermediate-layer terms need (withProjections),
 * after checking that both models are encoders and the terms fit them.
 */
function projectedStudent(args: TrainArgs): TrainableModel {
  const where = `${args.name}.train.intermediate`;
  const s = args.model;
  const t = args.teacher?.model;
  if (!isEncoder(s)) throw new UserError(`${where}: needs an encoder student (model.type: bert), got ${JSON.stringify((s.spec as { type?: string }).type)}`);
  if (!t) throw new UserError(`${where}: needs a teacher`);
  if (!isEncoder(t)) throw new UserError(`${where}: needs an encoder teacher (model.type: bert), got ${JSON.stringify((t.spec as { type?: string }).type)}`);
  checkIntermediate(args.spec.intermediate!, s.spec, t.spec, where);
  return withProjections(s, projectionShapes(args.spec.intermediate!, s.spec, t.spec));
}

/** The tensors under `prefix`, renamed without it and checked against the model's shapes. */
function pick(tensors: Record<string, HostTensor>, shapes: [string, number[]][], prefix: string, source: string): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  for (const [name, shape] of shapes) {
    const t = Object.hasOwn(tensors, prefix + name) ? tensors[prefix + name] : undefined;
    if (!t || t.dtype !== "F32" || t.shape.join("x") !== shape.join("x")) throw new UserError(`${source}: missing or misshapen tensor "${prefix + name}"`);
    out[name] = t;
  }
  return out;
}

