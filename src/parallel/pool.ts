// The worker pool: threads with an engine each (worker.ts), started once per command and
// shared by the jobs that need every core: data-parallel training (src/train/replicas.ts) and
// evaluation passes (src/eval/predict.ts). Neither job imports the other.
import { Worker } from "node:worker_threads";
import { availableParallelism } from "node:os";
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { np, type Arr } from "../engine/index.js";
import { buildModel, type InputShape, type ModelSpec, type Params } from "../nn/models.js";
import { llama, type LlamaSpec } from "../nn/llama.js";
import { isEncoder } from "../nn/bert.js";
import { isProjected, withProjections } from "../losses/intermediate/projections.js";
import { paramsToHost } from "../checkpoint/params.js";
import type { HostBatch } from "../train/trainer.js";
import type { ReplicaConfig } from "../train/replicas.js";

/** A model as a pool thread runs it (classifiers and language models both fit). */
export interface PoolModel {
  spec: object;
  shapes: [string, number[]][];
  init(key: Arr): Params;
  apply(params: Params, x: Arr, ctx: { train: boolean; key?: Arr }): Arr;
}

/** What a worker needs to rebuild a model: its spec and what it is shaped for. */
export type ModelRef =
  | { kind: "classifier"; spec: ModelSpec; input: InputShape }
  | { kind: "lm"; spec: LlamaSpec; vocab: number }
  /** An encoder student with the learned projections of its intermediate-layer terms. */
  | { kind: "projected"; student: ModelRef; projections: [string, number[]][] };

export function modelRef(m: PoolModel): ModelRef {
  if (isProjected(m)) return { kind: "projected", student: modelRef(m.student), projections: m.projections };
  const any = m as unknown as { input?: InputShape; vocab?: number };
  if (any.vocab !== undefined) return { kind: "lm", spec: m.spec as LlamaSpec, vocab: any.vocab };
  if (any.input !== undefined) return { kind: "classifier", spec: m.spec as ModelSpec, input: any.input };
  throw new Error("modelRef: a model needs `input` (classifier) or `vocab` (language model)");
}

export function modelFromRef(r: ModelRef): PoolModel {
  if (r.kind === "classifier") return buildModel(r.spec, r.input);
  if (r.kind === "projected") {
    const student = modelFromRef(r.student);
    if (!isEncoder(student)) throw new Error("modelFromRef: projections need an encoder student");
    return withProjections(student, r.projections);
  }
  const lm = llama(r.spec, r.vocab);
  return { ...lm, apply: (p, x) => lm.apply(p, x) };
}

export type HostParams = Record<string, Float32Array>;

/** Threads for evaluation passes: "auto" is one per core, up to 2. */
export function inferenceWorkers(requested: number | "auto" | undefined): number {
  if (requested === undefined) return 1;
  return requested === "auto" ? Math.min(2, availableParallelism()) : requested;
}

export function hostToParams(h: HostParams, shapes: [string, number[]][]): Params {
  const p: Params = {};
  for (const [name, shape] of shapes) p[name] = np.array(h[name]).reshape(shape);
  return p;
}

export async function paramsToHostArrays(p: Params): Promise<HostParams> {
  return Object.fromEntries(Object.entries(await paramsToHost(p)).map(([name, t]) => [name, t.data as Float32Array]));
}

// The pool's protocol: training replicas (src/train/replicas.ts) and evaluation passes
// (src/eval/predict.ts) are its two kinds of job; the thread (worker.ts) runs both.
export type WorkerMessage =
  | { type: "init"; rank: number; cfg: ReplicaConfig; teacherParams?: HostParams }
  | { type: "step"; batch: HostBatch | { epoch: number; step: number }; scalars: Float32Array; step: number }
  | { type: "release" }
  | { type: "infer"; id: number; model: ModelRef; params: HostParams; x: Float32Array; dim: number };

export type WorkerReply =
  | { type: "ready" }
  | { type: "initialized" }
  | { type: "done"; step: number; loss: number }
  | { type: "logits"; id: number; logits: Float32Array }
  | { type: "error"; message: string; user: boolean };

/**
 * Worker threads with an engine each, started once and kept for the whole command, so the
 * teacher, the students and the evaluations between them reuse warm threads (and the compiled
 * kernels of models of the same shapes). Unreferenced: they never keep the process alive. A job
 * that fails discards the pool; the next job starts a new one.
 */
export class WorkerPool {
  private static current: WorkerPool | null = null;
  private readonly workers: Worker[] = [];
  private handler: ((rank: number, m: WorkerReply) => void) | null = null;
  private broken = false;

  /** A pool of at least `n` ready workers. */
  static async get(n: number): Promise<WorkerPool> {
    let p = WorkerPool.current;
    if (p && (p.broken || p.workers.length < n)) {
      await p.terminate();
      p = null;
    }
    if (!p) {
      p = new WorkerPool();
      WorkerPool.current = p;
      await p.spawn(n);
    }
    return p;
  }

  /** Ends the pool's threads (a failed job, or the end of a command that wants them gone now). */
  static async shutdown(): Promise<void> {
    await WorkerPool.current?.terminate();
  }

  private async terminate(): Promise<void> {
    if (WorkerPool.current === this) WorkerPool.current = null;
    this.broken = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers.length = 0;
  }

  private async spawn(n: number): Promise<void> {
    // The worker is TypeScript under tsx (tests, `npm run distill`) and JavaScript once built.
    const ext = extname(fileURLToPath(import.meta.url));
    const url = new URL(`./worker${ext}`, import.meta.url);
    // tsx's loader hooks do not reach worker threads: under tsx, register them there first.
    const entry: [string | URL, { eval?: boolean }] =
      ext === ".ts"
        ? [`import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))}).then((m) => m.register()).then(() => import(${JSON.stringify(url.href)}))`, { eval: true }]
        : [url, {}];
    const ready: Promise<void>[] = [];
    for (let rank = 0; rank < n; rank++) {
      const w = new Worker(...entry);
      this.workers.push(w);
      ready.push(
        new Promise((resolve, reject) => {
          w.on("message", (m: WorkerReply) => (m.type === "ready" ? resolve() : this.handler?.(rank, m)));
          w.on("error", (e) => {
            this.broken = true;
            const m: WorkerReply = { type: "error", message: e.message, user: false };
            reject(new Error(`pool worker: ${e.message}`));
            this.handler?.(rank, m);
          });
        }),
      );
    }
    try {
      await Promise.all(ready);
    } catch (e) {
      await this.terminate();
      throw e;
    }
    this.idle();
  }

  // Idle threads must not keep the process alive; busy ones must, or an await on their reply
  // could be the last thing the event loop holds and the process would exit under it.
  private idle(): void {
    for (const w of this.workers) w.unref();
  }

  /** Routes the workers' replies to `handler` (keeping them referenced) until the returned function is called. */
  attach(handler: (rank: number, m: WorkerReply) => void): () => void {
    this.handler = handler;
    for (const w of this.workers) w.ref();
    return () => {
      if (this.handler !== handler) return;
      this.handler = null;
      this.idle();
    };
  }

  post(rank: number, msg: WorkerMessage, transfer: ArrayBuffer[] = []): void {
    this.workers[rank].postMessage(msg, transfer);
  }

  /** After a failure: this pool's threads may hold broken state. */
  discard(): Promise<void> {
    return this.terminate();
  }
}

