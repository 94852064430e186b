// A pool thread with its own engine (see pool.ts): a data-parallel replica between "init" and
// "release" (src/train/replicas.ts), and evaluation batches on "infer" (src/eval/predict.ts).
import { parentPort } from "node:worker_threads";
import { initDevice, tree } from "../engine/index.js";
import type { Model, Params } from "../nn/models.js";
import { hostToParams, modelFromRef, type WorkerMessage, type WorkerReply } from "./pool.js";
import { Replica, ReplicaFailed } from "../train/replicas.js";
import { exampleSource, type BatchSource, type HostBatch } from "../train/trainer.js";
import { predictLogits } from "../eval/predict.js";
import { disposeParams } from "../checkpoint/params.js";
import { UserError } from "../util/errors.js";

const port = parentPort!;
let replica: Replica | null = null;
let params: Params = {};
let teacherParams: Params = {};
// Messages arrive while the previous one may still be running; handle them strictly in order.
let queue: Promise<void> = Promise.resolve();
let source: BatchSource | null = null;
const models = new Map<string, Model>();

function report(e: unknown): void {
  replica?.shared.fail();
  if (e instanceof ReplicaFailed) return; // another replica failed first and reports it
  const message = e instanceof Error ? e.message : String(e);
  port.postMessage({ type: "error", message, user: e instanceof UserError } satisfies WorkerReply);
}

function release(): void {
  disposeParams(params);
  disposeParams(teacherParams);
  params = {};
  teacherParams = {};
  replica = null;
  source = null;
}

async function handle(msg: WorkerMessage): Promise<void> {
  switch (msg.type) {
    case "init": {
      release();
      replica = new Replica(msg.rank, msg.cfg);
      // Each worker gathers only its own rows of every batch.
      if (msg.cfg.source) source = exampleSource(msg.cfg.source.data, { ...msg.cfg.source.opts, shard: { rank: msg.rank, of: msg.cfg.workers } });
      params = replica.shared.deviceParams();
      if (msg.teacherParams && msg.cfg.teacher) teacherParams = hostToParams(msg.teacherParams, modelFromRef(msg.cfg.teacher).shapes);
      port.postMessage({ type: "initialized" } satisfies WorkerReply);
      return;
    }
    case "step": {
      if (!replica) return; // released after a failure elsewhere: nothing to do
      const hb = "x" in msg.batch ? msg.batch : ((await source!.batch(msg.batch.epoch, msg.batch.step, {})) as HostBatch);
      const [p, loss] = replica.step(params, hb, msg.scalars, msg.step, tree.ref(teacherParams));
      params = p;
      if (replica.rank === 0) port.postMessage({ type: "done", step: msg.step, loss } satisfies WorkerReply);
      return;
    }
    case "release":
      release();
      return;
    case "infer": {
      // One model object per architecture, so its compiled forward pass is reused.
      const key = JSON.stringify(msg.model);
      let model = models.get(key);
      if (!model) models.set(key, (model = modelFromRef(msg.model) as Model));
      const p = hostToParams(msg.params, model.shapes);
      const logits = await predictLogits(model, p, msg.x, msg.dim);
      disposeParams(p);
      port.postMessage({ type: "logits", id: msg.id, logits } satisfies WorkerReply, [logits.buffer as ArrayBuffer]);
      return;
    }
  }
}

port.on("message", (msg: WorkerMessage) => {
  queue = queue.then(() => handle(msg)).catch(report);
});
process.on("uncaughtException", report);
await initDevice("wasm");
port.postMessage({ type: "ready" } satisfies WorkerReply);
