// The data path of `distill run`: recipe → data → teacher → soft labels → students →
// evaluation → results. Each trained model is a checkpoint named by a hash of everything that
// determines it, so a finished teacher (or student) with the same config and seed is reused,
// and different configs never overwrite each other.
import { createHash } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import type { Device } from "./engine/index.js";
import { relaxedSimd } from "./engine/relaxed-simd.js";
import { buildModel, paramCount, type Model, type ModelSpec, type Params } from "./nn/models.js";
import type { IntermediateSpec } from "./losses/intermediate/index.js";
import { lossInfo } from "./losses/index.js";
import { loadDataset, splitValidation, trainingView, type Dataset } from "./data/datasets.js";
import type { Examples } from "./data/batches.js";
import { exampleSource, train, type BatchSource, type TrainableModel, type TrainLogRecord, type TrainSpec, type ValidationLogRecord, type ValidationMetrics } from "./train/trainer.js";
import { resolveWorkers } from "./train/replicas.js";
import { inferenceWorkers } from "./parallel/pool.js";
import { loadCheckpoint } from "./checkpoint/checkpoint.js";
import { disposeParams, paramsFromHost } from "./checkpoint/params.js";
import { cacheTeacherLogits, isExternal, TEACHER_THREADS, teacherLogits, withSoftLabels, type Teacher } from "./teachers/teacher.js";
import type { ExternalTeacher } from "./teachers/types.js";
import { openOnnxTeacher } from "./teachers/onnx.js";
import { fileTeacherId } from "./teachers/files.js";
import { checkOnnxInference, classifierLogits, ownModelOnOnnx, type InferenceEngine } from "./teachers/own-onnx.js";
import { argmaxRows, classificationMetrics, confusionMatrix, meanCrossEntropy, reliabilityBins } from "./eval/metrics.js";
import { FASHION_MNIST_CLASSES } from "./data/fashion-mnist.js";
import { classifierSettings, collectEnvironment, type RunSettings } from "./report/run-info.js";
import type { ExportFormat, Recipe, TrainConfig } from "./recipe/recipe.js";
import type { DeployRecord } from "./export/deploy.js";
import type { InputShape } from "./nn/models.js";
import type { LanguageModel } from "./nn/llama.js";
import type { TokenizerJSON } from "./text/tokenizer.js";
import { writeResults, type DataSummary, type Results, type RunRecord } from "./report/results.js";
import { encodeCorrect } from "./report/verdicts.js";
import { renderHtmlReport } from "./report/html.js";
import { readCurves } from "./report/curves.js";
import { ensureWritableDir, removeStaleTemps, writeFileAtomic } from "./util/fs.js";
import { mergeResults, readResultsForMerge } from "./report/merge.js";
import { UserError } from "./util/errors.js";

export interface ProgressSink {
  start(label: string, total: number): void;
  /** `validation`: the latest epoch's held-out metrics, when the run has a validation set. */
  update(done: number, loss: number, validation?: ValidationMetrics): void;
  stop(): void;
  info(line: string): void;
}

export interface RunOptions {
  out: string;
  seeds: number[];
  device: Device;
  dataDir?: string;
  resume?: boolean;
  /** Retrain even when a finished checkpoint with the same config exists. */
  fresh?: boolean;
  /** Which runs to do: the teacher is always loaded or trained when a student needs it. */
  only?: string[];
  progress: ProgressSink;
  stop: { requested: boolean };
  /** Data-parallel replicas per training run (see train/replicas.ts); default 1. */
  workers?: number | "auto";
  /** Where passes that only read a model run (teachers/own-onnx.ts); default "distill". */
  inference?: InferenceEngine;
}

export class Interrupted extends Error {
  constructor(public checkpoint: string) {
    super(`interrupted: checkpoint saved at ${checkpoint}; rerun with --resume to continue`);
  }
}

function hash(x: unknown): string {
  return createHash("sha256").update(JSON.stringify(x)).digest("hex").slice(0, 10);
}

export interface Trained<M = Model> {
  model: M;
  params: Params;
  seconds: number;
  /** The stored config of a reused checkpoint (e.g. its tokenizer), else the given one. */
  config: Record<string, unknown>;
  /** keep: best-validation: the epoch whose parameters the run kept. */
  keptEpoch?: number;
}

/** The runs `--only` asks for, and whether the teacher is needed for them. */
export function selectRuns<S extends { name: string; role: string }>(all: S[], only?: string[]) {
  const wanted = (name: string) => !only || only.includes(name);
  const students = all.filter((s) => wanted(s.name));
  return { wanted, students, needTeacher: wanted("teacher") || students.some((s) => s.role === "distilled") };
}

export function configHash(x: unknown): string {
  return hash(x);
}

/**
 * A run's config with the number of replicas it trains on, when more than one (the gradients
 * are summed in another order), and `fma: true` when the Wasm engine's products use fused
 * multiply-add (they round differently): the numbers, and so the checkpoint's hash, depend on both.
 */
export function withWorkers<C extends Record<string, unknown>>(config: C, batchSize: number, opts: Pick<RunOptions, "workers"> & { device?: string }, where: string): C & { workers?: number; fma?: true } {
  const n = resolveWorkers(opts.workers ?? 1, batchSize, where);
  const c = withoutRuntimeSettings(config);
  const fma = relaxedSimd && (opts.device ?? "wasm") === "wasm";
  return { ...c, ...(n > 1 ? { workers: n } : {}), ...(fma ? { fma: true as const } : {}) };
}

/**
 * `{ inference: "onnxruntime" }` for the config of a run whose training reads a model-reading
 * pass (`reads`: a teacher's soft labels, or the validation that picks the kept epoch) when that
 * pass runs in onnxruntime: its logits differ from the engine's in the last bits. Other runs,
 * and every run without the option, keep their hashes (a teacher is not retrained for it).
 */
export function inferenceKey(opts: Pick<RunOptions, "inference">, reads: boolean): { inference?: "onnxruntime" } {
  return reads && opts.inference === "onnxruntime" ? { inference: "onnxruntime" } : {};
}

/**
 * A run's config without the settings that do not change its numbers (how often checkpoints
 * are saved): the config names the checkpoint and decides its reuse, so changing one of them
 * must neither retrain a finished run nor refuse to resume an interrupted one.
 */
export function withoutRuntimeSettings<C extends Record<string, unknown>>(config: C): C {
  const train = config.train as Record<string, unknown> | undefined;
  if (!train || typeof train !== "object" || !Object.hasOwn(train, "checkpointEvery")) return config;
  const { checkpointEvery: _unused, ...rest } = train;
  return { ...config, train: rest };
}

/**
 * The options the teacher is loaded or trained with: `--fresh` retrains only the runs a command
 * names, so `distill distill --fresh` reuses a finished teacher rather than retraining it.
 */
export function teacherOpts<O extends Pick<RunOptions, "fresh">>(opts: O, wanted: (name: string) => boolean): O {
  return { ...opts, fresh: !!opts.fresh && wanted("teacher") };
}

/** " at step N" from a checkpoint's JSON, for the resume line; "" if it cannot be read (the trainer will say why). */
function savedStep(jsonPath: string): string {
  try {
    const step = (JSON.parse(readFileSync(jsonPath, "utf8")) as { state?: { step?: unknown } }).state?.step;
    return typeof step === "number" ? ` at step ${step}` : "";
  } catch {
    return "";
  }
}

/**
 * What a run's trainer gets of its teacher: distill's own model (run inside the step, or already
 * run into `cached`), or only the cached soft labels of a teacher that runs outside the engine.
 * (A batch source may also carry the soft labels itself: see teachers/teacher.ts.)
 */
export type TeacherArg = { model?: TrainableModel; params?: Params; cached?: Float32Array };

/** Loads a finished checkpoint or trains (or resumes) it. */
export async function trainOrReuse<M extends TrainableModel & { name: string }>(
  label: string,
  path: string,
  model: M,
  config: Record<string, unknown>,
  cfg: TrainSpec,
  data: Dataset["train"] | BatchSource,
  seed: number,
  opts: Pick<RunOptions, "fresh" | "resume" | "progress" | "stop">,
  teacher?: TeacherArg,
  validate?: (params: Params) => Promise<ValidationMetrics>,
): Promise<Trained<M>> {
  const jsonPath = path.replace(/\.safetensors$/, ".json");
  if (!opts.fresh && existsSync(path) && existsSync(jsonPath)) {
    let ck: ReturnType<typeof loadCheckpoint>;
    try {
      ck = loadCheckpoint(path);
    } catch (e) {
      // A damaged checkpoint is not silently retrained over: say which file and how to redo it.
      if (e instanceof UserError) throw new UserError(`${e.message}; rerun with --fresh to retrain it`);
      throw e;
    }
    const st = ck.state as { done?: boolean; seconds?: number; kept?: number } | undefined;
    if (st?.done && JSON.stringify(ck.config) === JSON.stringify(config)) {
      opts.progress.info(`${label}: reusing finished checkpoint ${path}`);
      return { model, params: paramsFromHost(ck.tensors, model.shapes, path), seconds: st.seconds ?? 0, config, keptEpoch: st.kept };
    }
  }
  const logPath = path.replace(/\.safetensors$/, ".metrics.jsonl");
  const resume = !!opts.resume && existsSync(path);
  if (opts.resume && !resume) opts.progress.info(`${label}: --resume: no checkpoint to resume from at ${path}; starting at step 0`);
  if (resume) opts.progress.info(`${label}: resuming from ${path}${savedStep(jsonPath)}`);
  // The log is started (or, resuming, appended to) only when the first record comes, so a run
  // that fails before logging anything leaves no empty log behind.
  let logStarted = resume;
  const log = (rec: TrainLogRecord | ValidationLogRecord) => {
    const line = JSON.stringify(rec) + "\n";
    if (logStarted) appendFileSync(logPath, line);
    else writeFileSync(logPath, line);
    logStarted = true;
  };
  const perEpoch = "batch" in data ? data.stepsPerEpoch : Math.floor(data.n / cfg.batchSize);
  const steps = perEpoch * cfg.epochs;
  opts.progress.start(`${label} (${model.name})`, steps);
  try {
    const r = await train({
      name: label.split(" ")[0],
      model,
      spec: cfg,
      data,
      seed,
      teacher: teacher?.model && teacher.params ? { model: teacher.model, params: teacher.params } : undefined,
      cachedTeacherLogits: teacher?.cached,
      checkpoint: path,
      resume,
      config,
      workers: (config.workers as number | undefined) ?? 1,
      stop: opts.stop,
      log,
      progress: (done, _total, loss, val) => opts.progress.update(done, loss, val),
      validate,
    });
    if (r.status === "interrupted") {
      disposeParams(r.params);
      throw new Interrupted(path);
    }
    return { model, params: r.params, seconds: r.seconds, config, keptEpoch: r.keptEpoch };
  } finally {
    opts.progress.stop();
  }
}

/**
 * A classifier run's settings: what it is given, with the labels it reads counted in its view
 * (those not −1, or none for a loss that reads no labels) and the examples it sees, steps ×
 * batch, as the trainer counts them (the last partial batch of an epoch is dropped).
 */
export function classifierRunSettings(view: Examples, train: TrainConfig & { intermediate?: IntermediateSpec }, readsLabels: boolean, workers: number): RunSettings {
  let labels = 0;
  if (readsLabels) for (let i = 0; i < view.n; i++) if (view.labels[i] >= 0) labels++;
  return classifierSettings(train, view.n, labels, workers);
}

/**
 * Makes OUT, removes temporary files a killed run left there, and, for a command that does only
 * some runs, checks before any training that OUT/results.json can take its runs.
 */
export function prepareOut(opts: Pick<RunOptions, "out" | "only" | "progress">, recipeName: string): void {
  ensureWritableDir(opts.out);
  for (const p of removeStaleTemps(opts.out)) opts.progress.info(`removed ${p}, left by an interrupted write`);
  if (opts.only) readResultsForMerge(join(opts.out, "results.json"), recipeName);
}

/** The table to write: a command that did only some runs adds them to OUT/results.json's. */
export function finalResults<R extends Results>(opts: Pick<RunOptions, "out" | "only">, results: R, order: string[]): R {
  if (!opts.only) return results;
  return mergeResults(readResultsForMerge(join(opts.out, "results.json"), results.recipe), results, order);
}

/** The teacher's `labels`, when it is trained here. */
function teacherLabels(recipe: Recipe): { where: string; labels?: number }[] {
  return "train" in recipe.teacher ? [{ where: "teacher.train.labels", labels: recipe.teacher.train.labels }] : [];
}

/** `labels: k` beyond the training set would silently mean "all labels": say so before training. */
export function checkLabels(recipe: Recipe, trainN: number): void {
  const runs = [...teacherLabels(recipe), ...recipe.students.map((s, i) => ({ where: `students[${i}].train.labels`, labels: s.train.labels }))];
  for (const r of runs) {
    if (r.labels !== undefined && r.labels > trainN) throw new UserError(`${r.where}: ${r.labels} is larger than the ${trainN} training examples`);
  }
}

/**
 * `data.validation: n` holds out the last n training examples (see splitValidation), after
 * checking, before anything trains, that they leave room for every run's labelled images.
 */
export function validationSplit(recipe: Recipe, train: Examples): { train: Examples; validation?: Examples } {
  const n = recipe.data.validation;
  if (n === undefined) return { train };
  if (n >= train.n) throw new UserError(`data.validation: ${n} leaves no training examples (the training set has ${train.n})`);
  const left = train.n - n;
  const runs = [...teacherLabels(recipe), ...recipe.students.map((s, i) => ({ where: `students[${i}].train.labels`, labels: s.train.labels }))];
  for (const r of runs) {
    if (r.labels !== undefined && r.labels > left) {
      throw new UserError(`${r.where}: ${r.labels} labelled images overlap the last ${n} held out by data.validation (${train.n} training images: at most ${left} can keep labels)`);
    }
  }
  return splitValidation(train, n);
}

/** Validation loss (mean cross-entropy against the true labels, nats) and accuracy. */
function validator(model: Model, val: Examples, opts: Pick<RunOptions, "workers" | "inference">): (params: Params) => Promise<ValidationMetrics> {
  return async (params) => {
    // The engine on one thread (with replicas the pool's threads are busy training), or
    // onnxruntime on as many threads as inference gets (the replicas wait meanwhile).
    const engine = opts.inference ?? "distill";
    const logits = await classifierLogits(model, params, val.x, val.dim, engine === "onnxruntime" ? inferenceWorkers(opts.workers) : 1, engine);
    const top = argmaxRows(logits, model.input.classes);
    let right = 0;
    for (let i = 0; i < val.n; i++) if (top[i] === val.labels[i]) right++;
    return { loss: meanCrossEntropy(logits, val.labels, model.input.classes), accuracy: right / val.n };
  };
}

/**
 * `export: [...]` in a recipe: writes the run's model into OUT/seed-S/export/<name>/ and measures
 * it (bytes per format, latency in onnxruntime-node and distill), for its run record. The
 * exporters (and onnxruntime-node) are loaded only when a recipe asks for them.
 */
export async function exportRun(
  formats: readonly ExportFormat[] | undefined,
  name: string,
  seedDir: string,
  model: Model | LanguageModel,
  params: Params,
  extra:
    | { input: InputShape; dataDir?: string }
    | { tokenizer: TokenizerJSON }
    | { input: InputShape; classes: string[]; tokenizer: Extract<TokenizerJSON, { kind: "hf" }>; texts?: { texts: string[]; labels: number[]; source: string } },
  progress: ProgressSink,
): Promise<{ deploy?: DeployRecord }> {
  if (!formats || formats.length === 0) return {};
  const { exportableFrom, exportAndMeasure } = await import("./export/deploy.js");
  const dir = join(seedDir, "export", name);
  const m = await exportableFrom(model, params, extra, `${name} (${model.name})`);
  // The browser folder bundles test images (or texts) from the data the run used.
  const web = "dataDir" in extra ? { dataDir: extra.dataDir } : "texts" in extra ? { texts: extra.texts } : {};
  const deploy = await exportAndMeasure(m, formats, dir, (line) => progress.info(`${name}: ${line}`), {}, web);
  progress.info(`${name}: exported to ${dir} (${Object.keys(deploy.bytes).join(", ")})`);
  return { deploy };
}

/** Runs teacher → students for every seed and writes OUT/results.json. */
export async function runRecipe(recipe: Recipe, opts: RunOptions): Promise<Results> {
  return withOpened((opened) => runClassifierRecipe(recipe, opts, opened));
}

/** Runs `f`, then closes the external teachers it opened (sessions, child processes), also when it fails. */
export async function withOpened<R>(f: (opened: ExternalTeacher[]) => Promise<R>): Promise<R> {
  const opened: ExternalTeacher[] = [];
  try {
    return await f(opened);
  } finally {
    for (const t of opened) await t.close();
  }
}

async function runClassifierRecipe(recipe: Recipe, opts: RunOptions, opened: ExternalTeacher[]): Promise<Results> {
  const data = loadDataset(recipe.data.dataset, opts.dataDir ?? recipe.data.dir);
  checkLabels(recipe, data.train.n);
  const { train: trainSet, validation } = validationSplit(recipe, data.train);
  opts.progress.info(
    `data: ${recipe.data.dataset} from ${data.dir} (${trainSet.n} train, ${validation ? `${validation.n} validation (the last training images), ` : ""}${data.test.n} test)`,
  );
  // `validation` changes what every run trains on, so it is part of every hash when set.
  const dataset = { dataset: recipe.data.dataset, ...(validation ? { validation: validation.n } : {}) };
  const cd: ClassifierData = { input: data.input, train: trainSet, validation, test: data.test, classes: FASHION_MNIST_CLASSES, dataset, exportExtra: { input: data.input, dataDir: data.dir } };
  return runClassifiers(recipe, cd, opts, opened, {
    openFileTeacher: async (t) => {
      if (!("onnx" in t)) throw new Error("unreachable: an image recipe's file teacher is ONNX");
      const ext = await openOnnxTeacher(t.onnx, { family: "classifier", ...data.input });
      return { teacher: ext, label: `${ext.kind} ${t.onnx}` };
    },
  });
}

/** What the classifier loop runs on: prepared examples of any kind (images, token rows). */
export interface ClassifierData {
  input: InputShape;
  train: Examples;
  validation?: Examples;
  test: Examples;
  classes: string[];
  /** The data's part of every run's config (and so of its checkpoint's hash). */
  dataset: Record<string, unknown>;
  /** Stored in every run's config besides the model (a text classifier's tokenizer and class names). */
  runConfig?: Record<string, unknown>;
  /** What the exporters need besides the model and its parameters. */
  exportExtra: Parameters<typeof exportRun>[5];
  /** Recorded in results.json and shown in the report (text classification: class balance). */
  summary?: DataSummary;
}

/** A teacher or student run of a classifier recipe (image or text). */
export interface ClassifierRunSpec {
  name: string;
  role: "scratch" | "distilled";
  model: ModelSpec;
  train: TrainConfig & { intermediate?: IntermediateSpec };
  /** Start from the teacher's layers (DistilBERT); see nn/bert.ts initFromTeacher. */
  init?: { from: "teacher"; layers?: number[] };
}

export interface ClassifierPlan {
  name: string;
  /** `seed`: train the teacher once, with this seed, for every student seed (default: one teacher per seed). */
  teacher: { model: ModelSpec; train: TrainConfig; seed?: number } | { onnx: string } | { hf: string };
  students: ClassifierRunSpec[];
  export?: readonly ExportFormat[];
}

/** How a recipe kind opens a teacher from a file (ONNX, a Hugging Face folder). */
export interface ClassifierHooks {
  /** `label` names the file in the log; `short`, when given, in the results' model column. */
  openFileTeacher(t: { onnx: string } | { hf: string }): Promise<{ teacher: Teacher; label: string; short?: string; parameters?: number }>;
  /** Student runs that need more than `buildModel` (intermediate-layer terms, init from the teacher). */
  prepareStudent?: (s: ClassifierRunSpec, model: Model, teacher: { teacher: Teacher; spec?: ModelSpec }) => Promise<StudentPlan>;
}

/** How one student trains when it needs more than its model: see pipeline-text.ts. */
export interface StudentPlan {
  /** The model the trainer trains (e.g. the student plus projections); default the student. */
  trained: Model;
  /** Must the teacher run live inside the step (no cached logits)? */
  live: boolean;
  /** Splits the trained parameters into the student's (the rest are disposed). */
  studentParams(p: Params): Params;
  /** Added to the run's config (and hash). */
  config: Record<string, unknown>;
}

/** The seed loop of every classifier recipe: teacher → its test logits → soft labels → students → results. */
export async function runClassifiers(recipe: ClassifierPlan, data: ClassifierData, opts: RunOptions, opened: ExternalTeacher[], hooks: ClassifierHooks): Promise<Results> {
  const { train: trainSet, validation, dataset } = data;
  prepareOut(opts, recipe.name);
  const engine = opts.inference ?? "distill";
  const results: Results = { recipe: recipe.name, device: opts.device, runs: [], classes: data.classes, ...(data.summary ? { data: data.summary } : {}), environment: collectEnvironment(opts.device, opts.workers, engine) };
  const { wanted, students, needTeacher } = selectRuns(recipe.students, opts.only);
  // A teacher from a file is opened, and its input and output checked against the data, before
  // anything trains; its identity in the students' hashes is the digest of its bytes.
  let fileTeacher: { teacher: Teacher; hash: string; params: number; label: string; short: string } | null = null;
  if (needTeacher && !("train" in recipe.teacher)) {
    const hash = fileTeacherId(recipe.teacher);
    const f = await hooks.openFileTeacher(recipe.teacher);
    if (isExternal(f.teacher)) opened.push(f.teacher);
    const ext = isExternal(f.teacher) ? f.teacher : null;
    const params = f.parameters ?? ext?.parameters ?? (isExternal(f.teacher) ? 0 : paramCount(f.teacher.model));
    fileTeacher = { teacher: f.teacher, hash, params, label: f.label, short: f.short ?? f.label };
    opts.progress.info(`teacher: ${f.label} (${ext ? ext.classes : data.input.classes} classes${params ? `, ${params} parameters` : ""})`);
  }
  const teacherSpec = "train" in recipe.teacher ? recipe.teacher.model : fileTeacher && !isExternal(fileTeacher.teacher) ? fileTeacher.teacher.model.spec : undefined;
  // Refused before anything trains, not at the first evaluation.
  if (engine === "onnxruntime") for (const m of [teacherSpec, ...students.map((s) => s.model)]) checkOnnxInference(m?.type);
  const extra = data.runConfig ?? {};
  let fixedTeacher: { teacher: { teacher: Teacher; hash: string; params: number }; top: Int32Array } | null = null;
  for (const seed of opts.seeds) {
    const dir = join(opts.out, `seed-${seed}`);
    mkdirSync(dir, { recursive: true });
    // The teacher: distill's own model (trained or reused here) or the file's, opened above.
    let teacher: { teacher: Teacher; hash: string; params: number } | null = fileTeacher;
    let teacherTop: Int32Array | null = null;
    const classes = data.input.classes;
    const record = (name: string, role: RunRecord["role"], t: { model: string; params: number; seconds: number; keptEpoch?: number }, logits: Float32Array, settings?: RunSettings, exported: { deploy?: DeployRecord } = {}, runSeed = seed) => {
      const metrics = classificationMetrics(logits, data.test.labels, classes, teacherTop);
      const confusion = confusionMatrix(logits, data.test.labels, classes);
      const reliability = reliabilityBins(logits, data.test.labels, classes);
      const perExample = encodeCorrect(argmaxRows(logits, classes), data.test.labels);
      const teacherParams = role === "distilled" && teacher?.params ? { teacherParams: teacher.params } : {};
      const kept = t.keptEpoch !== undefined ? { keptEpoch: t.keptEpoch } : {};
      results.runs.push({ name, role, model: t.model, params: t.params, seed: runSeed, metrics, seconds: t.seconds, ...(settings ? { settings } : {}), confusion, reliability, perExample, ...teacherParams, ...kept, ...exported });
      opts.progress.info(
        `${name} seed ${runSeed}: accuracy ${(metrics.accuracy * 100).toFixed(2)}%, macro-F1 ${(metrics.macroF1 * 100).toFixed(2)}%, agreement ${(metrics.agreement * 100).toFixed(2)}%` +
          (t.keptEpoch !== undefined ? ` (kept epoch ${t.keptEpoch}: lowest validation loss)` : ""),
      );
    };

    if (needTeacher && "train" in recipe.teacher && fixedTeacher) {
      // `teacher.seed`: one teacher, trained (and recorded) once, for every student seed.
      ({ teacher, top: teacherTop } = fixedTeacher);
    } else if (needTeacher && "train" in recipe.teacher) {
      const tSeed = recipe.teacher.seed ?? seed;
      const tDir = join(opts.out, `seed-${tSeed}`);
      mkdirSync(tDir, { recursive: true });
      const model = buildModel(recipe.teacher.model, data.input);
      const config = withWorkers(
        { role: "teacher", model: recipe.teacher.model, input: data.input, train: recipe.teacher.train, data: dataset, seed: tSeed, ...extra, ...inferenceKey(opts, recipe.teacher.train.keep === "best-validation") },
        recipe.teacher.train.batchSize,
        opts,
        "teacher.train",
      );
      const h = hash(config);
      const view = trainingView(trainSet, recipe.teacher.train.labels, true);
      const t = await trainOrReuse(
        `teacher seed ${tSeed}`,
        join(tDir, `teacher-${h}.safetensors`),
        model,
        config,
        recipe.teacher.train,
        view,
        tSeed,
        teacherOpts(opts, wanted),
        undefined,
        validation && validator(model, validation, opts),
      );
      teacher = { teacher: { model, params: t.params }, hash: h, params: paramCount(model) };
      const logits = await classifierLogits(model, t.params, data.test.x, data.test.dim, inferenceWorkers(opts.workers), engine);
      teacherTop = argmaxRows(logits, classes);
      if (recipe.teacher.seed !== undefined) fixedTeacher = { teacher, top: teacherTop };
      if (wanted("teacher")) {
        const exported = await exportRun(recipe.export, "teacher", tDir, model, t.params, data.exportExtra, opts.progress);
        record("teacher", "teacher", { ...t, model: model.name, params: paramCount(model) }, logits, classifierRunSettings(view, recipe.teacher.train, lossInfo(recipe.teacher.train.loss).needsLabels, config.workers ?? 1), exported, tSeed);
      }
    } else if (needTeacher && fileTeacher) {
      // The file's test accuracy, from its own soft labels (its agreement with itself is 100 %).
      const logits = await teacherLogits(fileTeacher.teacher, data.test.x, data.test.dim, inferenceWorkers(opts.workers), engine);
      teacherTop = argmaxRows(logits, classes);
      const tm = fileTeacher.teacher;
      if (wanted("teacher")) record("teacher", "teacher", { model: isExternal(tm) ? `${tm.kind} ${basename(tm.source)}` : `${tm.model.name} (${fileTeacher.short})`, params: fileTeacher.params, seconds: 0 }, logits);
    }

    let cached: Float32Array | undefined;
    // With --inference onnxruntime, distill's own teacher labels augmented views there, batch by
    // batch, as an external teacher does (exported once per seed, closed with the others).
    let onOrt: ExternalTeacher | undefined;
    for (const s of students) {
      const info = lossInfo(s.train.loss);
      const model = buildModel(s.model, data.input);
      const plan = hooks.prepareStudent && (s.train.intermediate || s.init) ? await hooks.prepareStudent(s, model, { teacher: teacher!.teacher, spec: teacherSpec }) : null;
      const config = withWorkers(
        {
          role: s.role, model: s.model, input: data.input, train: s.train, data: dataset, seed, teacher: info.needsTeacher || plan ? teacher!.hash : null, ...extra, ...(plan?.config ?? {}),
          // Its soft labels (unless the teacher runs live inside the step) or its kept epoch.
          ...inferenceKey(opts, (info.needsTeacher && !plan?.live) || s.train.keep === "best-validation"),
        },
        s.train.batchSize,
        opts,
        `${s.name}.train`,
      );
      const view = trainingView(trainSet, s.train.labels, info.needsLabels && !info.needsTeacher);
      let teacherArg: TeacherArg | undefined;
      let source: Examples | BatchSource = view;
      if (info.needsTeacher) {
        const tt = teacher!.teacher;
        if (plan?.live) {
          if (isExternal(tt)) throw new UserError(`students: ${s.name}: intermediate-layer terms need distill's own teacher (trained here or a Hugging Face folder), not ${tt.kind}`);
          teacherArg = tt;
        } else if (!s.train.shift) {
          // Soft-label cache: one teacher pass over the training set serves every epoch and
          // every student of this seed.
          cached ??= await cacheTeacherLogits(tt, trainSet, inferenceWorkers(opts.workers), engine);
          teacherArg = isExternal(tt) ? { cached } : { ...tt, cached };
        } else if (isExternal(tt) || engine === "onnxruntime") {
          // Augmented views are new every step: the external teacher labels each batch's views
          // on the host (distill's own teacher runs inside the step instead).
          if (!isExternal(tt) && !onOrt) {
            opened.push((onOrt = await ownModelOnOnnx(tt.model, tt.params, TEACHER_THREADS)));
          }
          source = withSoftLabels(exampleSource(view, { batchSize: s.train.batchSize, seed, shift: s.train.shift, labels: info.needsLabels, classes }), isExternal(tt) ? tt : onOrt!);
        } else teacherArg = tt;
      }
      const trained = plan?.trained ?? model;
      const t = await trainOrReuse(`${s.name} seed ${seed}`, join(dir, `${s.name}-${hash(config)}.safetensors`), trained, config, s.train, source, seed, opts, teacherArg, validation && validator(trained, validation, opts));
      const params = plan ? plan.studentParams(t.params) : t.params;
      const logits = await classifierLogits(model, params, data.test.x, data.test.dim, inferenceWorkers(opts.workers), engine);
      const exported = await exportRun(recipe.export, s.name, dir, model, params, data.exportExtra, opts.progress);
      record(s.name, s.role, { ...t, model: model.name, params: paramCount(model) }, logits, classifierRunSettings(view, s.train, info.needsLabels, config.workers ?? 1), exported);
      disposeParams(params);
    }
    if (teacher && !isExternal(teacher.teacher) && teacher !== fileTeacher && teacher !== fixedTeacher?.teacher) disposeParams(teacher.teacher.params);
  }
  for (const t of [fileTeacher?.teacher, fixedTeacher?.teacher.teacher]) if (t && !isExternal(t)) disposeParams(t.params);
  if (results.runs.length === 0) throw new UserError("nothing to run: --only matched no run of the recipe");
  // Written once, when every run has finished: a command that fails part-way (a damaged
  // checkpoint, Ctrl-C) leaves the previous results.json as it was. Finished checkpoints are
  // reused, so rerunning the command rebuilds the table quickly.
  const table = finalResults(opts, results, ["teacher", ...recipe.students.map((s) => s.name)]);
  writeResults(join(opts.out, "results.json"), table);
  const html = renderHtmlReport(table, readCurves(opts.out, table), { generated: new Date().toISOString() });
  writeFileAtomic(join(opts.out, "report.html"), html);
  return table;
}
