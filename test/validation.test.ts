// data.validation and keep: best-validation: held-out rows never reach training, the logged
// validation numbers are those of each epoch's parameters, the best epoch is kept (also across
// an interrupt), replicas log what one thread logs, and bad values are one line naming the field.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { initDevice, tree } from "../src/engine/index.js";
import { buildModel, type Params } from "../src/nn/models.js";
import { train, type TrainSpec, type ValidationMetrics } from "../src/train/trainer.js";
import { paramsFromHost, paramsToHost } from "../src/checkpoint/params.js";
import { loadCheckpoint } from "../src/checkpoint/checkpoint.js";
import { predictLogits } from "../src/eval/predict.js";
import { loadDataset } from "../src/data/datasets.js";
import { readIdxGz, writeIdxGz } from "../src/data/idx.js";
import { FASHION_MNIST_FILES } from "../src/data/fashion-mnist.js";
import { Interrupted, runRecipe, type ProgressSink, type RunOptions } from "../src/pipeline.js";
import { validateRecipe } from "../src/recipe/recipe.js";
import { teacherCounter } from "../src/teachers/teacher.js";
import { UserError } from "../src/util/errors.js";
import { syntheticExamples } from "./helpers/synthetic.js";
import { parseMetricsLog, parseValidationLog } from "../src/report/curves.js";
import { renderHtmlReport } from "../src/report/html.js";
import { makeFashionFixture, runCli, tinyRecipe, writeTinyRecipe } from "./helpers/fixtures.js";
import { tempDir } from "./helpers/tmp.js";

before(async () => {
  await initDevice("wasm");
});

const TRAIN = 320;
const HELD = 100;
const root = tempDir("distill-validation-");
const fixture = makeFashionFixture(join(root, "data"), { train: TRAIN, test: 100 });

/** A sink that records the labels started and calls `onStep` with each step. */
function sink(onStep: (label: string, done: number) => void = () => {}): ProgressSink & { labels: string[] } {
  let label = "";
  const labels: string[] = [];
  return {
    labels,
    start(l) {
      label = l;
      labels.push(l);
    },
    update(done) {
      onStep(label, done);
    },
    stop() {},
    info() {},
  };
}

function opts(out: string, extra: Partial<RunOptions> = {}): RunOptions {
  return { out, seeds: [0], device: "wasm", dataDir: fixture, progress: sink(), stop: { requested: false }, ...extra };
}

/** The tiny recipe with `validation` held out and the students' train blocks edited. */
function recipeWith(validation: number | undefined, edit: (r: Record<string, any>) => void = () => {}) {
  const r = tinyRecipe() as Record<string, any>;
  if (validation !== undefined) r.data.validation = validation;
  edit(r);
  return validateRecipe(r, "test.yaml");
}

type ValRec = { run: string; epoch: number; step: number; valLoss: number; valAccuracy: number };

function valLog(out: string, name: string): ValRec[] {
  const dir = join(out, "seed-0");
  const file = readdirSync(dir).find((f) => f.startsWith(`${name}-`) && f.endsWith(".metrics.jsonl"))!;
  return readFileSync(join(dir, file), "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .filter((r) => "valLoss" in r);
}

/** Cross-entropy (nats) and accuracy of logits on labels, computed here in float64. */
function independentEval(logits: Float32Array, labels: ArrayLike<number>, classes: number): ValidationMetrics {
  let nll = 0;
  let right = 0;
  for (let i = 0; i < labels.length; i++) {
    const row = Array.from(logits.subarray(i * classes, (i + 1) * classes));
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0));
    nll += lse - row[labels[i]];
    if (row.indexOf(max) === labels[i]) right++;
  }
  return { loss: nll / labels.length, accuracy: right / labels.length };
}

/** The last HELD rows of the fixture's training set, read here without the pipeline's split. */
function heldOutRows() {
  const d = loadDataset("fashion-mnist", fixture);
  return { x: d.train.x.slice((TRAIN - HELD) * d.train.dim), labels: Array.from(d.train.labels.slice(TRAIN - HELD)), dim: d.train.dim, classes: d.input.classes };
}

test("held-out rows never reach training: the same numbers as a training set without them, and the soft-label cache skips them", async () => {
  // B: a copy of the fixture whose training set is only the first TRAIN − HELD images.
  const cut = join(root, "cut");
  mkdirSync(cut, { recursive: true });
  const f = FASHION_MNIST_FILES;
  const img = readIdxGz(join(fixture, `${f.trainImages}.gz`));
  const lab = readIdxGz(join(fixture, `${f.trainLabels}.gz`));
  const keep = TRAIN - HELD;
  writeIdxGz(join(cut, `${f.trainImages}.gz`), [keep, 28, 28], (img.data as Uint8Array).slice(0, keep * 784));
  writeIdxGz(join(cut, `${f.trainLabels}.gz`), [keep], (lab.data as Uint8Array).slice(0, keep));
  for (const name of [f.testImages, f.testLabels]) copyFileSync(join(fixture, `${name}.gz`), join(cut, `${name}.gz`));

  const before = teacherCounter.examples;
  const a = await runRecipe(recipeWith(HELD), opts(join(root, "held")));
  // One cached teacher pass, over the rows that train only.
  assert.equal(teacherCounter.examples - before, keep);
  const b = await runRecipe(recipeWith(undefined), opts(join(root, "cut-out"), { dataDir: cut }));
  assert.deepEqual(
    a.runs.map((r) => [r.name, r.metrics]),
    b.runs.map((r) => [r.name, r.metrics]),
  );
  // And holding out changes something (the comparison above is not vacuous).
  const c = await runRecipe(recipeWith(undefined), opts(join(root, "all")));
  assert.notDeepEqual(a.runs[0].metrics, c.runs[0].metrics);
});

test("logged validation loss and accuracy equal an independent evaluation of each epoch's checkpoint", async () => {
  const out = join(root, "per-epoch");
  const snaps = join(root, "per-epoch-snaps");
  mkdirSync(snaps, { recursive: true });
  const recipe = recipeWith(HELD, (r) => {
    r.students = [r.students[0]];
    r.students[0].train.epochs = 3;
  });
  const perEpoch = Math.floor((TRAIN - HELD) / 32);
  // At the first step of epoch e+1 the checkpoint on disk is epoch e's: copy it aside.
  const progress = sink((label, done) => {
    if (!label.startsWith("scratch") || done % perEpoch !== 1 || done === 1) return;
    const dir = join(out, "seed-0");
    for (const file of readdirSync(dir).filter((x) => /^scratch-.*\.(safetensors|json)$/.test(x))) {
      copyFileSync(join(dir, file), join(snaps, `${(done - 1) / perEpoch}-${file.endsWith(".json") ? "c.json" : "c.safetensors"}`));
    }
  });
  await runRecipe(recipe, opts(out, { progress }));
  const dir = join(out, "seed-0");
  for (const file of readdirSync(dir).filter((x) => /^scratch-.*\.(safetensors|json)$/.test(x))) {
    copyFileSync(join(dir, file), join(snaps, `3-${file.endsWith(".json") ? "c.json" : "c.safetensors"}`));
  }
  const log = valLog(out, "scratch");
  assert.deepEqual(log.map((r) => [r.epoch, r.step]), [1, 2, 3].map((e) => [e, e * perEpoch]));
  const held = heldOutRows();
  const model = buildModel(recipe.students[0].model, { height: 28, width: 28, channels: 1, classes: 10 });
  for (const rec of log) {
    const ck = loadCheckpoint(join(snaps, `${rec.epoch}-c.safetensors`));
    assert.equal((ck.state as { step: number }).step, rec.step);
    const params = paramsFromHost(ck.tensors, model.shapes, "snapshot");
    const want = independentEval(await predictLogits(model, params, held.x, held.dim), held.labels, held.classes);
    tree.dispose(params);
    assert.ok(Math.abs(rec.valLoss - want.loss) < 1e-5, `epoch ${rec.epoch}: logged ${rec.valLoss}, checkpoint ${want.loss}`);
    assert.equal(rec.valAccuracy, want.accuracy, `epoch ${rec.epoch}`);
  }
  // The epochs differ, so an evaluation of stale parameters would not pass the loop above.
  assert.notEqual(log[0].valLoss, log[2].valLoss);
});

// ------------------------------------------------------------- keep: best-validation (trainer)

const INPUT = { height: 8, width: 8, channels: 1, classes: 4 };
const data = syntheticExamples(320, INPUT);

async function host(p: Params): Promise<Float32Array> {
  const t = await paramsToHost(p);
  return Float32Array.from(Object.keys(t).sort().flatMap((k) => Array.from(t[k].data as Float32Array)));
}

test("keep: best-validation finishes with the best epoch's parameters, also after an interrupt and --resume", async () => {
  const dir = tempDir("distill-keep-");
  const model = buildModel({ type: "mlp", hidden: [16] }, INPUT);
  const spec: TrainSpec = { epochs: 5, batchSize: 32, optimizer: { name: "adam", lr: 3e-3 }, loss: { name: "ce" }, keep: "best-validation" };
  // A scripted validation loss whose best epoch (2) is neither the first nor the last; a tie
  // at epoch 4 must not replace it. The parameters each call sees are recorded.
  const scripted = [0.9, 0.3, 0.5, 0.3, 0.8];
  const seen = new Map<number, Float32Array>();
  const validate = async (p: Params, epoch: number) => {
    seen.set(epoch, await host(p));
    return { loss: scripted[epoch - 1], accuracy: 0.5 };
  };
  const logs: unknown[] = [];
  const straight = await train({ name: "m", model, spec, data, seed: 1, checkpoint: join(dir, "a.safetensors"), config: {}, validate, log: (r) => logs.push(r) });
  assert.equal(straight.keptEpoch, 2);
  const best = seen.get(2)!;
  assert.deepEqual(await host(straight.params), best);
  assert.notDeepEqual(seen.get(5), best);
  const ck = loadCheckpoint(join(dir, "a.safetensors"));
  assert.equal((ck.state as { kept: number }).kept, 2);
  assert.deepEqual(Float32Array.from(Object.keys(ck.tensors).filter((k) => !k.includes(".m.") && !k.includes(".v.") && !k.startsWith("best.")).sort().flatMap((k) => Array.from(ck.tensors[k].data as Float32Array))), best);
  assert.equal(logs.filter((r) => (r as { valLoss?: number }).valLoss !== undefined).length, 5);
  tree.dispose(straight.params);

  // Interrupted in epoch 4 (after the best), resumed: the same best parameters come back.
  seen.clear();
  const stop = { requested: false };
  const ckpt = join(dir, "b.safetensors");
  const interrupted = await train({
    name: "m", model, spec, data, seed: 1, checkpoint: ckpt, config: {}, validate, stop,
    progress: (done) => {
      if (done === 33) stop.requested = true; // 10 steps per epoch: mid epoch 4
    },
  });
  assert.equal(interrupted.status, "interrupted");
  tree.dispose(interrupted.params);
  const mid = loadCheckpoint(ckpt);
  assert.equal((mid.state as { best: { epoch: number } }).best.epoch, 2);
  seen.clear(); // the resumed run must not depend on anything but the checkpoint
  const resumed = await train({ name: "m", model, spec, data, seed: 1, checkpoint: ckpt, config: {}, validate, resume: true });
  assert.deepEqual([...seen.keys()], [4, 5]);
  assert.equal(resumed.keptEpoch, 2);
  assert.deepEqual(await host(resumed.params), best);
  tree.dispose(resumed.params);

  await assert.rejects(
    train({ name: "m", model, spec, data, seed: 1 }),
    (e: unknown) => e instanceof UserError && /m\.train\.keep: best-validation needs a validation set/.test((e as Error).message),
  );
});

test("keep: best-validation in a recipe: results.json names the kept epoch, the lowest logged validation loss, and tests its parameters", async () => {
  const out = join(root, "keep");
  // 20 labels and a learning rate far too high: validation loss is lowest at epoch 3 of 15
  // (measured), so keeping the last epoch would not pass.
  const recipe = recipeWith(HELD, (r) => {
    r.students = [r.students[0]];
    r.students[0].model.hidden = [32];
    Object.assign(r.students[0].train, { epochs: 15, labels: 20, batchSize: 4, keep: "best-validation", optimizer: { name: "adam", lr: 0.1 } });
  });
  const res = await runRecipe(recipe, opts(out));
  const log = valLog(out, "scratch");
  const losses = log.map((r) => r.valLoss);
  const bestEpoch = losses.indexOf(Math.min(...losses)) + 1;
  const run = res.runs.find((r) => r.name === "scratch")!;
  assert.equal(run.keptEpoch, bestEpoch);
  assert.ok(bestEpoch < 15, `validation loss ${losses.map((v) => v.toFixed(3)).join(" ")}: the last epoch should not be the best`);
  assert.equal(JSON.parse(readFileSync(join(out, "results.json"), "utf8")).runs.find((r: { name: string }) => r.name === "scratch").keptEpoch, bestEpoch);
  // The finished checkpoint's parameters give the logged validation loss of the kept epoch.
  const dir = join(out, "seed-0");
  const file = readdirSync(dir).find((f) => /^scratch-.*\.safetensors$/.test(f))!;
  const model = buildModel(recipe.students[0].model, { height: 28, width: 28, channels: 1, classes: 10 });
  const params = paramsFromHost(loadCheckpoint(join(dir, file)).tensors, model.shapes, file);
  const held = heldOutRows();
  const got = independentEval(await predictLogits(model, params, held.x, held.dim), held.labels, held.classes);
  tree.dispose(params);
  assert.ok(Math.abs(got.loss - losses[bestEpoch - 1]) < 1e-5);
  // The teacher keeps its last epoch and says nothing about it.
  assert.equal(res.runs.find((r) => r.name === "teacher")!.keptEpoch, undefined);
  // A rerun reuses the finished checkpoint and still reports the kept epoch.
  const again = await runRecipe(recipe, opts(out));
  assert.equal(again.runs.find((r) => r.name === "scratch")!.keptEpoch, bestEpoch);
  assert.deepEqual(again.runs.map((r) => r.metrics), res.runs.map((r) => r.metrics));
});

test("the report reads validation records (a resumed log's later record wins) and shows them", () => {
  const log = [
    { run: "s", epoch: 1, step: 10, loss: 1.2, lr: 0.001, seconds: 1 },
    { run: "s", epoch: 1, step: 10, valLoss: 0.9, valAccuracy: 0.6, seconds: 1 },
    { run: "s", epoch: 2, step: 20, valLoss: 0.7, valAccuracy: 0.7, seconds: 2 },
    { run: "s", epoch: 2, step: 20, valLoss: 0.5, valAccuracy: 0.75, seconds: 2 }, // resumed: replaces the line above
    { run: "s", epoch: 3, step: 30, valLoss: 0.8, valAccuracy: 0.72, seconds: 3 },
  ]
    .map((r) => JSON.stringify(r))
    .join("\n") + '\n{"run":"s","epoch":4,"step":40,"valLo';
  const val = parseValidationLog(log);
  assert.deepEqual(val, [
    { epoch: 1, step: 10, loss: 0.9, accuracy: 0.6 },
    { epoch: 2, step: 20, loss: 0.5, accuracy: 0.75 },
    { epoch: 3, step: 30, loss: 0.8, accuracy: 0.72 },
  ]);
  assert.deepEqual(parseMetricsLog(log), [{ step: 10, loss: 1.2 }], "validation records are not training loss");
  const metrics = { accuracy: 0.7, agreement: NaN, ece: 0.05, loss: 0.8 };
  const results = { recipe: "r", device: "wasm", runs: [{ name: "s", role: "scratch" as const, model: "mlp", params: 10, seed: 0, metrics, seconds: 1, keptEpoch: 2 }] };
  const html = renderHtmlReport(results, [{ name: "s", seed: 0, points: [{ step: 10, loss: 1.2 }, { step: 30, loss: 0.3 }], validation: val }]);
  assert.match(html, /<h2>Training and validation loss<\/h2>/);
  assert.match(html, /epoch 2, validation loss 0\.5000 nats/);
  assert.match(html, /<td class="num">0\.5000 \(2\)<\/td><td class="num">0\.8000 \(3\)<\/td><td class="num">72\.00<\/td><td class="num">2<\/td>/);
  assert.match(html, /kept epoch 2 \(lowest validation loss\)/);
  // Without validation records the page is as before.
  const plain = renderHtmlReport(results, [{ name: "s", seed: 0, points: [{ step: 10, loss: 1.2 }] }]);
  assert.doesNotMatch(plain, /validation/i);
});

test("one thread and two replicas log the same validation numbers; an interrupted, resumed run continues its log", async () => {
  const recipe = recipeWith(HELD, (r) => {
    r.students = [r.students[1]]; // the distilled student: soft-label cache, teacher needed
    r.students[0].train.epochs = 3;
  });
  const one = join(root, "one");
  await runRecipe(recipe, opts(one));
  const two = join(root, "two");
  await runRecipe(recipe, opts(two, { workers: 2 }));
  for (const name of ["teacher", "distilled"]) {
    const a = valLog(one, name);
    const b = valLog(two, name);
    assert.equal(a.length, b.length);
    a.forEach((r, i) => {
      assert.ok(Math.abs(r.valLoss - b[i].valLoss) < 1e-4, `${name} epoch ${r.epoch}: ${r.valLoss} vs ${b[i].valLoss}`);
      assert.ok(Math.abs(r.valAccuracy - b[i].valAccuracy) <= 0.02, `${name} epoch ${r.epoch}`);
    });
  }

  // Stopped in the distilled student's second epoch, then resumed: one record per epoch, the
  // same as the uninterrupted run's.
  const out = join(root, "resumed");
  const stop = { requested: false };
  const progress = sink((label, done) => {
    if (label.startsWith("distilled") && done === 9) stop.requested = true;
  });
  await assert.rejects(runRecipe(recipe, opts(out, { progress, stop })), (e: unknown) => e instanceof Interrupted);
  assert.equal(valLog(out, "distilled").length, 1);
  await runRecipe(recipe, opts(out, { resume: true }));
  assert.deepEqual(
    valLog(out, "distilled").map((r) => [r.epoch, r.step, r.valLoss, r.valAccuracy]),
    valLog(one, "distilled").map((r) => [r.epoch, r.step, r.valLoss, r.valAccuracy]),
  );
});

test("bad validation values: one line naming the field, before anything trains", async () => {
  const cases: [number, (r: Record<string, any>) => void, RegExp][] = [
    [TRAIN, () => {}, /^data\.validation: 320 leaves no training examples \(the training set has 320\)$/],
    [HELD, (r) => (r.students[0].train.labels = TRAIN - HELD + 1), /^students\[0\]\.train\.labels: 221 labelled images overlap the last 100 held out by data\.validation/],
    [HELD, (r) => (r.teacher.train.labels = 300), /^teacher\.train\.labels: 300 labelled/],
  ];
  for (const [n, edit, re] of cases) {
    const out = join(root, `bad-${n}`);
    await assert.rejects(runRecipe(recipeWith(n, edit), opts(out)), (e: unknown) => e instanceof UserError && re.test((e as Error).message) && !(e as Error).message.includes("\n"));
    assert.ok(!existsSync(join(out, "seed-0")), "nothing trained");
  }
  // Exactly filling the training set is fine: 220 labelled + 100 held out.
  assert.doesNotThrow(() => recipeWith(HELD, (r) => (r.students[0].train.labels = TRAIN - HELD)));
  assert.throws(
    () => recipeWith(undefined, (r) => (r.students[1].train.keep = "best-validation")),
    (e: unknown) => e instanceof UserError && /^test\.yaml: students\[1\]\.train\.keep: best-validation needs a validation set/.test((e as Error).message),
  );
  assert.throws(() => recipeWith(0), (e: unknown) => e instanceof UserError && /data\.validation/.test((e as Error).message));

  // Through the CLI: exit code 2 and one line.
  const path = writeTinyRecipe(join(root, "bad.yaml"), { data: { validation: TRAIN + 5 } });
  const r = runCli(["run", path, "--data", fixture, "--seeds", "0", "--out", join(root, "bad-cli")]);
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  assert.match(r.stderr, /data\.validation: 325/);
});
