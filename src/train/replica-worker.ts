// A data-parallel replica (rank ≥ 1) on its own thread with its own engine; see replicas.ts.
import { parentPort } from "node:worker_threads";
import { initDevice, tree } from "../engine/index.js";
import type { Params } from "../nn/models.js";
import { hostToParams, modelFromRef, Replica, ReplicaFailed, type WorkerMessage, type WorkerReply } from "./replicas.js";
import { UserError } from "../util/errors.js";

const port = parentPort!;
let replica: Replica | null = null;
let params: Params = {};
let teacherParams: Params = {};
// Steps arrive while the previous one may still be finishing; run them strictly in order.
let queue: Promise<void> = Promise.resolve();

function report(e: unknown): void {
  replica?.shared.fail();
  if (e instanceof ReplicaFailed) return; // another replica failed first and reports it
  const message = e instanceof Error ? e.message : String(e);
  port.postMessage({ type: "error", message, user: e instanceof UserError } satisfies WorkerReply);
}

async function handle(msg: WorkerMessage): Promise<void> {
  switch (msg.type) {
    case "init": {
      await initDevice("wasm");
      replica = new Replica(msg.rank, msg.cfg);
      params = replica.shared.deviceParams();
      if (msg.teacherParams && msg.cfg.teacher) {
        const t = modelFromRef(msg.cfg.teacher);
        teacherParams = hostToParams(msg.teacherParams, t.shapes);
      }
      port.postMessage({ type: "ready" } satisfies WorkerReply);
      return;
    }
    case "step": {
      const [p, loss] = replica!.step(params, msg.batch, msg.scalars, msg.step, tree.ref(teacherParams));
      params = p;
      if (replica!.rank === 0) port.postMessage({ type: "done", step: msg.step, loss } satisfies WorkerReply);
      return;
    }
  }
}

port.on("message", (msg: WorkerMessage) => {
  queue = queue.then(() => handle(msg)).catch(report);
});
process.on("uncaughtException", report);
