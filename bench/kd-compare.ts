// Whole-run comparison with PyTorch (docs/RESULTS.md, "Distillation against PyTorch"): one CNN
// teacher trained by distill, its training-set logits exported, then the same CNN student
// trained from scratch and by Hinton KD on those logits, by distill here and by PyTorch in
// bench/kd-compare.py, so the teacher is not a variable. Not part of the product.
//
// Usage: node --import tsx bench/kd-compare.ts OUT [--teacher-epochs 20] [--epochs 30]
//          [--seeds 0,1,2] [--workers 2] [--data DIR]
// Writes OUT/teacher.safetensors (resumable), OUT/teacher-accuracy.json, OUT/teacher-train-logits.f32 (float32 [60000, 10],
// row order of the training file), and appends one JSON line per finished student run to
// OUT/distill.jsonl, so a partial run keeps what it finished.
import { appendFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { initDevice } from "../src/engine/index.js";
import { loadDataset } from "../src/data/datasets.js";
import { buildModel, type ModelSpec } from "../src/nn/models.js";
import { train, type TrainSpec } from "../src/train/trainer.js";
import { cacheTeacherLogits } from "../src/teachers/teacher.js";
import { predictLogits } from "../src/eval/predict.js";
import { classificationMetrics } from "../src/eval/metrics.js";
import { loadCheckpoint } from "../src/checkpoint/checkpoint.js";
import { disposeParams, paramsFromHost } from "../src/checkpoint/params.js";
import { WorkerPool } from "../src/parallel/pool.js";
import { writeFileAtomic } from "../src/util/fs.js";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    "teacher-epochs": { type: "string", default: "20" },
    epochs: { type: "string", default: "30" },
    seeds: { type: "string", default: "0,1,2" },
    workers: { type: "string", default: "2" },
    data: { type: "string" },
  },
});
const out = positionals[0];
if (!out) throw new Error("usage: kd-compare.ts OUT [options]");
mkdirSync(out, { recursive: true });
const workers = Number(values.workers);
// A line every 200 steps, so a long run shows its pace.
const progress = (label: string) => (done: number, total: number) => {
  if (done % 200 === 0 || done === total) console.log(`${label}: step ${done}/${total}`);
};
const adam = { name: "adam" as const, lr: 1e-3 };
const TEACHER: ModelSpec = { type: "cnn", channels: [32, 64], dense: 128, dropout: 0.3 };
const STUDENT: ModelSpec = { type: "cnn", channels: [8, 16], dense: 32 };
const teacherTrain: TrainSpec = { epochs: Number(values["teacher-epochs"]), batchSize: 128, shift: 2, optimizer: adam, loss: { name: "ce" } };
const students: [string, TrainSpec][] = [
  ["scratch", { epochs: Number(values.epochs), batchSize: 128, optimizer: adam, loss: { name: "ce" } }],
  ["distilled", { epochs: Number(values.epochs), batchSize: 128, optimizer: adam, loss: { name: "hinton", temperature: 4, lambda: 0.9 } }],
];

await initDevice("wasm");
const data = loadDataset("fashion-mnist", values.data);
const accuracy = (logits: Float32Array) => classificationMetrics(logits, data.test.labels, 10, null).accuracy;

// One teacher (seed 0) for every seed, resumed from its checkpoint if interrupted. Several
// processes (one per seed) may share OUT: the first exports the teacher's logits, the others
// only read them back (written to a temporary name and renamed, so never seen half-written).
const logitsPath = join(out, "teacher-train-logits.f32");
let cached: Float32Array;
if (existsSync(logitsPath)) {
  const b = readFileSync(logitsPath);
  cached = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
} else {
  const teacherModel = buildModel(TEACHER, data.input);
  const ckpt = join(out, "teacher.safetensors");
  const done = existsSync(ckpt) && (loadCheckpoint(ckpt).state as { done?: boolean }).done;
  const t0 = performance.now();
  const params = done
    ? paramsFromHost(loadCheckpoint(ckpt).tensors, teacherModel.shapes, ckpt)
    : (await train({ name: "teacher", model: teacherModel, spec: teacherTrain, data: data.train, seed: 0, checkpoint: ckpt, config: teacherTrain, resume: true, workers, progress: progress("teacher") })).params;
  cached = await cacheTeacherLogits({ model: teacherModel, params }, data.train, workers);
  writeFileAtomic(logitsPath, new Uint8Array(cached.buffer));
  const teacherAcc = accuracy(await predictLogits(teacherModel, params, data.test.x, data.test.dim, workers));
  disposeParams(params);
  // Not teacher.json: that is the checkpoint's own metadata.
  writeFileAtomic(join(out, "teacher-accuracy.json"), JSON.stringify({ accuracy: teacherAcc, epochs: teacherTrain.epochs, seconds: (performance.now() - t0) / 1000 }) + "\n");
  console.log(`teacher: ${(100 * teacherAcc).toFixed(2)}% test accuracy (${teacherTrain.epochs} epochs)`);
}

const logPath = join(out, "distill.jsonl");
const finished = existsSync(logPath) ? readFileSync(logPath, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l)) : [];
for (const seed of values.seeds.split(",").map(Number)) {
  for (const [name, spec] of students) {
    if (finished.some((r: { seed: number; run: string; epochs: number }) => r.seed === seed && r.run === name && r.epochs === spec.epochs)) continue;
    const model = buildModel(STUDENT, data.input);
    const s0 = performance.now();
    const r = await train({ name, model, spec, data: data.train, seed, cachedTeacherLogits: spec.loss.name === "ce" ? undefined : cached, workers, progress: progress(`${name} seed ${seed}`) });
    const acc = accuracy(await predictLogits(model, r.params, data.test.x, data.test.dim, workers));
    disposeParams(r.params);
    const rec = { impl: "distill", run: name, seed, epochs: spec.epochs, accuracy: acc, finalLoss: r.finalLoss, seconds: (performance.now() - s0) / 1000 };
    appendFileSync(logPath, JSON.stringify(rec) + "\n");
    console.log(JSON.stringify(rec));
  }
}
await WorkerPool.shutdown();
