// --inference onnxruntime: distill's own models, exported in memory and run in onnxruntime, give
// the engine's logits (classifiers with one and three channels, a Llama); the same bits on one
// and two threads and run to run; a recipe run with it records the choice, names its checkpoints
// apart, trains the same teacher and distils students that match the engine's; bad values are
// one line with exit code 2.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { stringify } from "yaml";
import { join } from "node:path";
import { initDevice, random, tree } from "../src/engine/index.js";
import { predictLogits } from "../src/eval/predict.js";
import { classifierLogits, onnxLMLogits, ownModelOnOnnx } from "../src/teachers/own-onnx.js";
import { lmLogits } from "../src/eval/lm-metrics.js";
import { buildModel, type ModelSpec } from "../src/nn/models.js";
import { llama } from "../src/nn/llama.js";
import { inferenceKey, runRecipe, type RunOptions } from "../src/pipeline.js";
import { validateRecipe } from "../src/recipe/recipe.js";
import { UserError } from "../src/util/errors.js";
import { makeFashionFixture, runCli, tinyRecipe, writeTinyRecipe } from "./helpers/fixtures.js";
import { maxAbsDiff, randomIds, randomPixels } from "./helpers/onnx-models.js";
import { tempDir } from "./helpers/tmp.js";
import { textCorpus, tinyTeacher, writeLMRecipe } from "./helpers/cache-recipes.js";
import { openCache } from "../src/cache/index.js";

before(async () => {
  await initDevice("wasm");
});

const root = tempDir("distill-onnx-inference-");

/** Largest |a − b| relative to the largest |b| (float32 sums of different order differ in the last bits). */
function relDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let scale = 0;
  for (const v of b) scale = Math.max(scale, Math.abs(v));
  return maxAbsDiff(a, b) / scale;
}

test("own classifiers in onnxruntime: the engine's eval-mode logits, the same bits on 1 and 2 threads and twice", async () => {
  const cases: [ModelSpec, { height: number; width: number; channels: number; classes: number }][] = [
    // Dropout in the spec: onnxruntime must give the eval-mode forward, as predictLogits does.
    [{ type: "mlp", hidden: [24, 12], dropout: 0.5 }, { height: 5, width: 7, channels: 1, classes: 6 }],
    // Three channels: the channels-last rows are reordered to NCHW on the way in.
    [{ type: "cnn", channels: [4, 6], dense: 10, dropout: 0.3 }, { height: 8, width: 12, channels: 3, classes: 5 }],
    // One channel: the rows go in as they are.
    [{ type: "cnn", channels: [3], dense: 8 }, { height: 6, width: 6, channels: 1, classes: 4 }],
  ];
  for (const [spec, input] of cases) {
    const m = buildModel(spec, input);
    const p = m.init(random.key(7));
    const dim = input.height * input.width * input.channels;
    const n = 1234; // more than one onnxruntime call (1,000 rows) and an odd tail
    const x = randomPixels(n, input, 3);
    const engine = await predictLogits(m, p, x, dim);
    const one = await classifierLogits(m, p, x, dim, 1, "onnxruntime");
    const two = await classifierLogits(m, p, x, dim, 2, "onnxruntime");
    const again = await classifierLogits(m, p, x, dim, 2, "onnxruntime");
    assert.equal(one.length, n * input.classes);
    const d = relDiff(one, engine);
    assert.ok(d < 1e-5, `${m.name}: onnxruntime vs engine, relative difference ${d}`);
    assert.deepEqual(two, one, `${m.name}: 2 threads gave other bits than 1`);
    assert.deepEqual(again, two, `${m.name}: not the same bits twice`);
    // The comparison has teeth: a model with other weights is far off.
    const q = m.init(random.key(8));
    assert.ok(relDiff(await classifierLogits(m, q, x, dim, 1, "onnxruntime"), engine) > 0.05);
    tree.dispose(q);
    tree.dispose(p);
  }
});

test("own Llama in onnxruntime: the engine's logits over evaluation windows", async () => {
  const V = 29;
  const m = llama({ type: "llama", layers: 2, width: 16, heads: 2, context: 12 }, V);
  const p = m.init(random.key(3));
  const ids = randomIds(37 * 12, V, 5);
  const engine = await lmLogits(m, p, ids, 12);
  const ort = await onnxLMLogits(m, p, ids, 12, 2);
  const d = relDiff(ort, engine);
  assert.ok(d < 1e-5, `relative difference ${d}`);
  // A shorter window than the model's context (a student's windows) is scored as a prefix.
  const t = await ownModelOnOnnx(m, p, 1);
  const s = await t.softLabels(ids.subarray(0, 3 * 8), [3, 8]);
  await t.close();
  assert.equal(s.kind, "dense");
  const short = await lmLogits(m, p, ids.subarray(0, 3 * 8), 8);
  assert.ok(relDiff((s as { logits: Float32Array }).logits, short) < 1e-5);
  tree.dispose(p);
});

test("a text classifier is refused with --inference onnxruntime, by name", async () => {
  const enc = buildModel({ type: "bert", layers: 1, hidden: 8, heads: 2, intermediate: 16 } as ModelSpec, { height: 1, width: 6, channels: 1, classes: 2, text: { vocab: 20, length: 6, padId: 0 } });
  const p = enc.init(random.key(1));
  await assert.rejects(ownModelOnOnnx(enc, p, 1), (e: unknown) => e instanceof UserError && /--inference onnxruntime: .*bert.*--inference distill/.test(e.message));
  tree.dispose(p);
});

test("the choice enters a run's hash only when set and the run's training reads inference", () => {
  assert.deepEqual(inferenceKey({}, true), {});
  assert.deepEqual(inferenceKey({ inference: "distill" }, true), {});
  assert.deepEqual(inferenceKey({ inference: "onnxruntime" }, false), {});
  assert.deepEqual(inferenceKey({ inference: "onnxruntime" }, true), { inference: "onnxruntime" });
});

const fixture = makeFashionFixture(join(root, "data"), { train: 320, test: 100 });
const quiet = { start() {}, update() {}, stop() {}, info() {} };
function opts(out: string, extra: Partial<RunOptions> = {}): RunOptions {
  return { out, seeds: [0], device: "wasm", dataDir: fixture, progress: quiet, stop: { requested: false }, workers: 1, ...extra };
}

test("a classifier recipe with --inference onnxruntime: recorded, hashed apart, the same teacher, students as the engine's", async () => {
  const r = tinyRecipe() as Record<string, any>;
  // Validation each epoch and a student on augmented views: every model-reading pass is exercised.
  r.data.validation = 60;
  r.teacher.train.keep = "best-validation";
  r.students.push({ name: "shifted", role: "distilled", model: { type: "mlp", hidden: [8] }, train: { ...r.students[1].train, shift: 1 } });
  const recipe = validateRecipe(r, "test.yaml");
  const a = await runRecipe(recipe, opts(join(root, "engine")));
  const b = await runRecipe(recipe, opts(join(root, "ort"), { inference: "onnxruntime" }));
  assert.equal(a.environment?.inference, undefined);
  assert.equal(b.environment?.inference, "onnxruntime");
  const names = (d: string) => readdirSync(join(root, d, "seed-0")).filter((f) => f.endsWith(".safetensors")).sort();
  const [na, nb] = [names("engine"), names("ort")];
  assert.equal(na.length, nb.length);
  // Runs whose training reads inference are hashed apart (the students that read soft labels, the
  // teacher whose kept epoch validation picks); the scratch student's training reads none.
  const same = na.filter((f) => nb.includes(f));
  assert.deepEqual(same.map((f) => f.split("-")[0]), ["scratch"]);
  const run = (res: typeof a, name: string) => res.runs.find((x) => x.name === name)!;
  // Training runs in the engine either way: the teacher's parameters (and so its test logits,
  // here from onnxruntime) agree with the engine's to float32 rounding.
  assert.ok(Math.abs(run(a, "teacher").metrics.loss - run(b, "teacher").metrics.loss) < 1e-5);
  assert.equal(run(a, "scratch").metrics.accuracy, run(b, "scratch").metrics.accuracy);
  for (const s of ["distilled", "shifted"]) {
    const [x, y] = [run(a, s).metrics.loss, run(b, s).metrics.loss];
    // Soft labels 1e-7 apart train students 1e-8 apart here; logits scaled by 0.7 move one by 7e-3.
    assert.ok(Math.abs(x - y) < 1e-4, `${s}: test loss ${x} (engine) vs ${y} (onnxruntime soft labels)`);
  }
  const html = readFileSync(join(root, "ort", "report.html"), "utf8");
  assert.match(html, /data-key="inference">onnxruntime</);
});

test("--inference: an unknown engine is one line with exit code 2", () => {
  const recipe = writeTinyRecipe(join(root, "bad.yaml"));
  const r = runCli(["run", recipe, "--out", join(root, "bad-out"), "--data", fixture, "--inference", "tensorrt"]);
  assert.equal(r.code, 2, r.stderr);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /--inference.*tensorrt/);
});

test("an LM recipe with --inference onnxruntime: the teacher's soft labels from its export give the engine's students", { timeout: 300_000 }, () => {
  const dir = join(root, "lm");
  mkdirSync(join(dir, "corpus"), { recursive: true });
  writeFileSync(join(dir, "corpus", "a.txt"), "the quick brown fox jumps over the lazy dog. pack my box with five dozen liquor jugs! ".repeat(60));
  const opt = { name: "adamw", lr: 0.01 };
  const student = { type: "llama", layers: 1, width: 8, heads: 2, context: 12 };
  const recipe = join(dir, "lm.yaml");
  writeFileSync(
    recipe,
    stringify({
      kind: "lm",
      name: "ort-lm",
      data: { corpus: join(dir, "corpus"), tokenizer: "char", evalWindows: 8 },
      teacher: { model: { type: "llama", layers: 1, width: 16, heads: 2, context: 16 }, train: { steps: 30, batchSize: 8, optimizer: opt, loss: { name: "ce" } } },
      students: [
        // A shorter context than the teacher's, and on-policy batches the teacher scores.
        { name: "fkl", role: "distilled", model: student, train: { steps: 6, batchSize: 4, optimizer: opt, loss: { name: "hinton", lambda: 1, temperature: 2 } } },
        { name: "onpolicy", role: "distilled", model: student, train: { steps: 4, batchSize: 4, optimizer: opt, loss: { name: "hinton", lambda: 0.5 }, modes: { corpus: 0.5, student: 0.5 } } },
      ],
      samples: { prompts: 0, promptLength: 4, tokens: 6, scoredPrompts: 0 },
    }),
  );
  const results = (out: string) => JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as { runs: { name: string; metrics: { loss: number } }[]; environment: { inference?: string } };
  const a = runCli(["run", recipe, "--out", join(dir, "engine"), "-q"]);
  assert.equal(a.code, 0, a.stderr);
  const b = runCli(["run", recipe, "--out", join(dir, "ort"), "--inference", "onnxruntime", "-q"]);
  assert.equal(b.code, 0, b.stderr);
  const [ra, rb] = [results(join(dir, "engine")), results(join(dir, "ort"))];
  assert.equal(rb.environment.inference, "onnxruntime");
  const loss = (r: typeof ra, name: string) => r.runs.find((x) => x.name === name)!.metrics.loss;
  // The teacher trains in the engine either way; its held-out loss is read in onnxruntime.
  assert.ok(Math.abs(loss(ra, "teacher") - loss(rb, "teacher")) < 1e-5);
  for (const s of ["fkl", "onpolicy"]) {
    assert.ok(Math.abs(loss(ra, s) - loss(rb, s)) < 0.005, `${s}: held-out ${loss(ra, s)} (engine) vs ${loss(rb, s)} (onnxruntime teacher) nats/token`);
  }
});

test("distill cache --inference onnxruntime: a cache of the engine's soft labels, under a teacher identity of its own", { timeout: 300_000 }, async () => {
  const dir = join(root, "cache");
  const corpus = textCorpus(dir);
  const runs = join(dir, "runs");
  const build = (name: string, engine: string) => {
    const cacheDir = join(dir, name);
    const recipe = writeLMRecipe(dir, corpus, name, tinyTeacher, { steps: 4, cacheDir, name: "ort-cache" });
    const r = runCli(["cache", recipe, "--runs", runs, "--inference", engine, "-q"]);
    assert.equal(r.code, 0, r.stderr);
    return cacheDir;
  };
  // The same teacher (trained by the first command in `runs`, reused by the second).
  const [a, b] = [build("engine", "distill"), build("ort", "onnxruntime")];
  const [ra, rb] = [openCache(a), openCache(b)];
  assert.equal(rb.manifest.teacher, `${ra.manifest.teacher}+onnxruntime`);
  assert.equal(rb.manifest.rows, ra.manifest.rows);
  for (const split of ["train", "heldout"] as const) {
    const n = split === "train" ? ra.manifest.windows.train : ra.manifest.windows.heldout;
    const w = Int32Array.from({ length: n }, (_, i) => i);
    const [x, y] = [await ra.softLabels(split, w), await rb.softLabels(split, w)];
    let sameIds = 0;
    for (let i = 0; i < x.ids.length; i++) if (x.ids[i] === y.ids[i]) sameIds++;
    // Near-ties among the top k may swap; the log-probabilities themselves agree.
    assert.ok(sameIds / x.ids.length > 0.99, `${split}: ${sameIds} of ${x.ids.length} top-k ids agree`);
    let d = 0;
    for (let i = 0; i < x.ids.length; i++) if (x.ids[i] === y.ids[i]) d = Math.max(d, Math.abs(x.logprobs[i] - y.logprobs[i]));
    assert.ok(d < 1e-5, `${split}: log-probabilities ${d} apart`);
  }
  await ra.close();
  await rb.close();
});
