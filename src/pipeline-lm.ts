// `distill run` for language models: corpus → tokenizer → teacher → students (token-level,
// sequence-level or on-policy KD, by fraction) → held-out metrics and samples → results.
// Reuses the classification pipeline's checkpoint reuse, trainer, progress and results.
import { mkdirSync } from "node:fs";
import { basename, join } from "node:path";
import type { Device } from "./engine/index.js";
import { llama, type LanguageModel, type LlamaSpec } from "./nn/llama.js";
import { paramCount } from "./nn/models.js";
import { generate } from "./nn/generate.js";
import { disposeParams, paramsFromHost } from "./checkpoint/params.js";
import { loadCheckpoint } from "./checkpoint/checkpoint.js";
import type { Params } from "./nn/models.js";
import { inferenceWorkers } from "./parallel/pool.js";
import { UserError } from "./util/errors.js";
import { lossInfo } from "./losses/index.js";
import { textSource } from "./data/text-source.js";
import { modeWeights } from "./data/modes.js";
import { modelTextSource } from "./teachers/generated.js";
import { DEBIAN_FORTUNES, evalWindows, readCorpus, splitHeldOut } from "./text/corpus.js";
import { byteTokenizer, charTokenizer, checkSameVocab, loadTokenizerFile, tokenizerFromJSON, type Tokenizer, type TokenizerJSON } from "./text/tokenizer.js";
import { lmLogits, lmMetrics } from "./eval/lm-metrics.js";
import { argmaxRows, reliabilityBins } from "./eval/metrics.js";
import { collectEnvironment, lmSettings, type RunSettings } from "./report/run-info.js";
import { configHash, exportRun, finalResults, inferenceKey, prepareOut, selectRuns, teacherOpts, trainOrReuse, withOpened, withWorkers, type RunOptions } from "./pipeline.js";
import type { ExternalTeacher } from "./teachers/types.js";
import { externalLMLogProbs, TEACHER_THREADS, withSoftLabels } from "./teachers/teacher.js";
import { onnxLMLogits, ownModelOnOnnx } from "./teachers/own-onnx.js";
import { fileTeacherId } from "./teachers/files.js";
import { openOnnxTeacher } from "./teachers/onnx.js";
import { openGgufTeacher } from "./teachers/gguf.js";
import { loadHfTeacher } from "./teachers/hf.js";
import { openServerTeacher, type ServerTeacher } from "./teachers/server.js";
import { cacheWindows, cachedHeldOutLogProbs, openCacheTeacher, withCachedSoftLabels, type CacheTeacher } from "./teachers/cache.js";
import { validateStoredModel, type LMRecipe, type LMTrainConfig } from "./recipe/recipe.js";
import { writeResults, type Results, type RunRecord } from "./report/results.js";
import { writeFileAtomic } from "./util/fs.js";
import { renderHtmlReport } from "./report/html.js";
import { readCurves } from "./report/curves.js";
import type { TrainSpec } from "./train/trainer.js";
import { generationQuality, windowNLL } from "./eval/lm-quality.js";

export interface Sample {
  name: string;
  seed: number;
  prompt: string;
  text: string;
}

export type LMResults = Results & { samples: Sample[] };

function buildTokenizer(spec: string, trainText: string): Tokenizer {
  if (spec === "char") return charTokenizer(trainText);
  if (spec === "byte") return byteTokenizer();
  return loadTokenizerFile(spec);
}

/** Prompts scored for generation quality when the recipe's `samples` block does not say. */
export const SCORED_PROMPTS = 32;

/** The trainer's view of an LM training config: one "epoch" of `steps` steps. */
function trainSpec(t: LMTrainConfig): TrainSpec {
  return { epochs: 1, batchSize: t.batchSize, optimizer: t.optimizer, loss: t.loss, checkpointEvery: t.checkpointEvery };
}

/**
 * The LM teacher as the run uses it: distill's own Llama (`model`, `params`: trained here, a
 * distill checkpoint, a Hugging Face folder), which can run inside the training step and
 * generate; or an external teacher (ONNX, GGUF) that only scores text on the host.
 */
export type LMTeacher = {
  hash: string;
  seconds: number;
  settings?: RunSettings;
  /** The context its windows have: its own, or (external) the longest student's. */
  context: number;
  /** Its parameter count, when known (0 if not). */
  paramCount: number;
} & (
  | { model: LanguageModel; params: Params; external?: undefined; cache?: undefined; server?: undefined }
  | { external: ExternalTeacher; model?: undefined; params?: undefined; cache?: undefined; server?: ServerTeacher }
  | { cache: CacheTeacher; model?: undefined; params?: undefined; external?: undefined; server?: undefined }
);

/**
 * A server teacher's identity: the model it serves and its k, not its addresses (never its key):
 * replicas behind other addresses, or each machine filling cache shards through its own
 * server, are the same teacher. (The cache also checks the tokenizer's hash.)
 */
function serverTeacherId(spec: { model: string; topK: number }): string {
  return `server:${spec.model}:top${spec.topK}`;
}

/**
 * The teacher: trained (or reused) from the recipe, or loaded from a finished checkpoint or a
 * file, whose vocabulary must be the one the students will use. Files are opened (and their
 * names, shapes and vocabulary checked) here, before any training.
 */
export async function lmTeacher(
  recipe: LMRecipe,
  tokenizer: Tokenizer,
  tokJSON: TokenizerJSON,
  data: Record<string, unknown>,
  trainIds: Int32Array,
  heldIds: Int32Array,
  seed: number,
  dir: string,
  opts: RunOptions,
  opened: ExternalTeacher[],
): Promise<LMTeacher> {
  const spec = recipe.teacher;
  const corpusPath = String(data.corpus);
  if ("cache" in spec) {
    const context = Math.max(...recipe.students.map((s) => s.model.context));
    const windows = cacheWindows(trainIds, heldIds, context, recipe.data.evalWindows);
    const longest = recipe.students.findIndex((s) => s.model.context === context);
    const cache = openCacheTeacher(spec.cache, { tokenizer: configHash(tokJSON), windows, field: `students[${longest}].model.context` });
    // Closed with the other opened teachers when the command ends (it scores nothing itself).
    opened.push({ kind: "cache", source: spec.cache, classes: cache.vocab, output: "topk", softLabels: () => Promise.reject(new Error("a cache scores no new text")), close: () => cache.close() });
    checkCacheTeacher(recipe, cache, tokenizer.vocabSize);
    opts.progress.info(`teacher: soft-label cache ${spec.cache} (top ${cache.k} of ${cache.vocab}, ${cache.reader.manifest.precision}, context ${cache.context}; students read aligned windows)`);
    return { cache, hash: cache.hash, seconds: 0, context, paramCount: 0 };
  }
  if ("server" in spec) {
    const context = Math.max(...recipe.students.map((s) => s.model.context));
    const server = await openServerTeacher(spec.server, { tokenizer, vocab: tokenizer.vocabSize, context, field: "teacher.server" });
    opened.push(server);
    opts.progress.info(
      `teacher: server ${server.source} (vocabulary ${server.classes}); ` +
        (server.scores ? `it gives only its top ${spec.server.topK} probabilities per token, so the loss runs in top-k + tail mode` : "it only generates: sequence-level KD from its continuations"),
    );
    return { external: server, server, hash: serverTeacherId(spec.server), seconds: 0, context, paramCount: 0 };
  }
  const heldOut = recipe.data.heldOut ?? 0.1;
  const heldTokens = heldIds.length;
  if ("checkpoint" in spec) {
    const path = spec.checkpoint;
    const ck = loadCheckpoint(path);
    const cfg = ck.config as { model?: LlamaSpec; tokenizer?: TokenizerJSON } | null;
    if (!cfg?.model || cfg.model.type !== "llama" || !cfg.tokenizer) throw new UserError(`${path}: not a distill language-model checkpoint (no llama model or tokenizer in its config)`);
    const mspec = validateStoredModel(cfg.model, "llama", path) as LlamaSpec;
    checkSameVocab(tokenizerFromJSON(cfg.tokenizer, path), tokenizer, `teacher ${path}`);
    const model = llama(mspec, tokenizer.vocabSize);
    checkContextFits(`${path}: the teacher's context`, mspec.context, trainIds.length, heldTokens, corpusPath, heldOut);
    const st = ck.state as { seconds?: number } | undefined;
    return { model, params: paramsFromHost(ck.tensors, model.shapes, path), hash: configHash(cfg), seconds: st?.seconds ?? 0, context: mspec.context, paramCount: paramCount(model as never) };
  }
  if ("hf" in spec) {
    const hash = fileTeacherId(spec);
    // Sized for the longest student window (a Hugging Face model's max_position_embeddings may be
    // far longer than any window here; the folder's own limit is checked by the loader).
    const t = loadHfTeacher(spec.hf, { context: Math.max(...recipe.students.map((s) => s.model.context)) });
    checkSameVocab(t.tokenizer, tokenizer, `teacher.hf ${spec.hf}`);
    checkContextFits(`teacher.hf ${spec.hf}: its context`, t.model.spec.context, trainIds.length, heldTokens, corpusPath, heldOut);
    return { model: t.model, params: t.params, hash, seconds: 0, context: t.model.spec.context, paramCount: paramCount(t.model as never) };
  }
  if ("onnx" in spec || "gguf" in spec) {
    // The longest student context: the windows the teacher must score.
    const context = Math.max(...recipe.students.map((s) => s.model.context));
    const hash = fileTeacherId(spec);
    const ext =
      "onnx" in spec
        ? await openOnnxTeacher(spec.onnx, { family: "lm", vocab: tokenizer.vocabSize, context })
        : await openGgufTeacher(spec.gguf, { topK: spec.topK, vocab: tokenizer.vocabSize, context });
    opened.push(ext);
    // (Both adapters refuse a vocabulary other than the students' tokenizer's, naming both sizes.)
    opts.progress.info(
      `teacher: ${ext.kind} ${ext.source} (vocabulary ${ext.classes}${ext.parameters ? `, ${ext.parameters} parameters` : ""})` +
        ("gguf" in spec ? `; it gives only its top ${spec.topK} probabilities per token, so the loss runs in top-k + tail mode` : ""),
    );
    return { external: ext, hash, seconds: 0, context, paramCount: ext.parameters ?? 0 };
  }
  const model = llama(spec.model, tokenizer.vocabSize);
  const config = withWorkers({ role: "teacher", model: spec.model, train: spec.train, data, tokenizer: tokJSON, seed }, spec.train.batchSize, opts, "teacher.train");
  const h = configHash(config);
  const source = textSource({ ids: trainIds, context: model.spec.context, batchSize: spec.train.batchSize, steps: spec.train.steps, seed });
  const t = await trainOrReuse(`teacher seed ${seed}`, join(dir, `teacher-${h}.safetensors`), model, config, trainSpec(spec.train), source, seed, opts);
  return { model, params: t.params, hash: h, seconds: t.seconds, settings: lmSettings(spec.train, model.spec.context, config.workers ?? 1), context: model.spec.context, paramCount: paramCount(model as never) };
}

/**
 * What an external teacher cannot do, refused before it is opened: teacher-generated
 * (sequence-level) batches need a teacher that generates, and a top-k teacher's
 * log-probabilities are at T = 1 with its own k.
 */
function checkExternalTeacher(recipe: LMRecipe): void {
  const t = recipe.teacher;
  if (!("onnx" in t || "gguf" in t || "server" in t || "cache" in t)) return;
  const field = "onnx" in t ? "teacher.onnx" : "gguf" in t ? "teacher.gguf" : "server" in t ? "teacher.server" : "teacher.cache";
  // llama.cpp, servers and caches give top-k probabilities only; an ONNX file gives full logits.
  const topk = !("onnx" in t);
  recipe.students.forEach((s, i) => {
    // A cache holds the teacher's outputs on the corpus windows only: it can neither generate nor score new text.
    if ("cache" in t && (s.train.modes?.student ?? 0) > 0) {
      throw new UserError(`students[${i}].train.modes.student: on-policy batches need a teacher that scores the student's samples; teacher.cache holds only the corpus windows' soft labels (use a live teacher)`);
    }
    // A server generates (sequence-level KD); a file or a cache does not.
    if (!("server" in t) && (s.train.modes?.teacher ?? 0) > 0) {
      const what = "cache" in t ? "holds only the corpus windows' soft labels" : "only scores text";
      throw new UserError(`students[${i}].train.modes.teacher: teacher-generated batches need a teacher that generates; ${field} ${what} (use teacher.hf or a distill checkpoint${"cache" in t ? "" : ", or modes corpus/student"})`);
    }
    const loss = s.train.loss;
    if (topk && lossInfo(loss).needsTeacher) {
      const k = "gguf" in t ? t.topK : "server" in t ? t.server.topK : undefined;
      if ((loss.temperature ?? 1) !== 1) throw new UserError(`students[${i}].train.loss.temperature: ${loss.temperature} with a top-k teacher (${field}), whose log-probabilities are at T = 1; use 1`);
      if (k !== undefined && loss.topK !== undefined && loss.topK !== k) throw new UserError(`students[${i}].train.loss.topK: ${loss.topK} differs from ${field}.topK ${k}`);
    }
  });
}

/** What the opened cache fixes: its k and its windows' context. */
function checkCacheTeacher(recipe: LMRecipe, cache: CacheTeacher, vocab: number): void {
  if (cache.vocab !== vocab) throw new UserError(`teacher.cache ${cache.dir}: a vocabulary of ${cache.vocab}, the recipe's tokenizer has ${vocab}`);
  recipe.students.forEach((s, i) => {
    if (s.model.context !== cache.context) {
      throw new UserError(`students[${i}].model.context: ${s.model.context}, but the cache ${cache.dir} holds windows of ${cache.context} tokens (every student must use its context)`);
    }
    const loss = s.train.loss;
    if (lossInfo(loss).needsTeacher && loss.topK !== undefined && loss.topK !== cache.k) {
      throw new UserError(`students[${i}].train.loss.topK: ${loss.topK} differs from the cache's k of ${cache.k} (${cache.dir})`);
    }
  });
}

/** A server that only generates (no prompt log-probabilities) serves sequence-level KD alone. */
function checkServerTeacher(recipe: LMRecipe, server: ServerTeacher): void {
  if (server.scores) return;
  recipe.students.forEach((s, i) => {
    const m = modeWeights(s.train.modes ?? {});
    // Scratch students do not use the teacher at all.
    if (s.role === "distilled" && (lossInfo(s.train.loss).needsTeacher || m.corpus > 0 || m.student > 0)) {
      throw new UserError(
        `students[${i}].train: teacher.server ${server.source} only generates (it returns no prompt log-probabilities), so only sequence-level KD is possible: modes { teacher: 1 } with a loss that needs no teacher (e.g. ce)`,
      );
    }
  });
}

/**
 * Every model's windows must fit in the training and the held-out tokens. Checked before any
 * training, rather than found when the teacher, trained for an hour, is first evaluated. (A
 * teacher loaded from a checkpoint is checked when it is loaded.)
 */
function checkLengths(recipe: LMRecipe, trainTokens: number, heldTokens: number, corpusPath: string): void {
  const models = [...("model" in recipe.teacher ? [{ where: "teacher.model.context", context: recipe.teacher.model.context }] : []), ...recipe.students.map((s, i) => ({ where: `students[${i}].model.context`, context: s.model.context }))];
  for (const m of models) checkContextFits(m.where, m.context, trainTokens, heldTokens, corpusPath, recipe.data.heldOut ?? 0.1);
}

function checkContextFits(where: string, context: number, trainTokens: number, heldTokens: number, corpusPath: string, heldOut: number): void {
  if (heldTokens < context + 1) {
    throw new UserError(`${where}: ${context} needs ${context + 1} held-out tokens, but the held-out part (data.heldOut ${heldOut} of ${corpusPath}) has ${heldTokens}; use a larger corpus or data.heldOut, or a shorter context`);
  }
  if (trainTokens < context + 1) {
    throw new UserError(`${where}: ${context} needs ${context + 1} training tokens, but ${corpusPath} leaves ${trainTokens} for training`);
  }
}

export async function runLMRecipe(recipe: LMRecipe, opts: RunOptions & { device: Device }): Promise<LMResults> {
  return withOpened((opened) => runLM(recipe, opts, opened));
}

/** A recipe's corpus and tokenizer, read as every LM command reads them (distill run, distill cache). */
export interface LMCorpus {
  corpusPath: string;
  trainIds: Int32Array;
  heldIds: Int32Array;
  tokenizer: Tokenizer;
  tokJSON: TokenizerJSON;
  /** The data part of every config hash. */
  data: { corpus: string; characters: number; tokenizer: string; heldOut: number };
}

export function loadLMCorpus(recipe: LMRecipe, opts: Pick<RunOptions, "dataDir" | "progress">): LMCorpus {
  const corpusPath = opts.dataDir ?? recipe.data.corpus ?? DEBIAN_FORTUNES;
  const corpus = readCorpus(corpusPath, recipe.data.maxBytes);
  const { train: trainText, heldOut } = splitHeldOut(corpus.text, recipe.data.heldOut ?? 0.1);
  const tokenizer = buildTokenizer(recipe.data.tokenizer, trainText);
  const trainIds = tokenizer.encode(trainText);
  const heldIds = tokenizer.encode(heldOut);
  opts.progress.info(
    `corpus: ${corpusPath} (${corpus.files.length} files, ${corpus.text.length} characters; ${trainIds.length} train and ${heldIds.length} held-out tokens; ${tokenizer.kind} vocabulary of ${tokenizer.vocabSize})`,
  );
  checkLengths(recipe, trainIds.length, heldIds.length, corpusPath);
  const tokJSON = tokenizer.toJSON();
  const data = { corpus: corpusPath, characters: corpus.text.length, tokenizer: configHash(tokJSON), heldOut: recipe.data.heldOut ?? 0.1 };
  return { corpusPath, trainIds, heldIds, tokenizer, tokJSON, data };
}

async function runLM(recipe: LMRecipe, opts: RunOptions & { device: Device }, opened: ExternalTeacher[]): Promise<LMResults> {
  const { corpusPath, trainIds, heldIds, tokenizer, tokJSON, data } = loadLMCorpus(recipe, opts);
  const charLevel = tokenizer.kind === "char";
  // Students' windows: aligned (a cache's, in chunked order) or random offsets. Aligned windows
  // change the students' batches, so they enter the students' config hash (not the teacher's).
  const aligned = recipe.data.windows === "aligned" || "cache" in recipe.teacher;
  const studentData = aligned ? { ...data, windows: "aligned" } : data;
  prepareOut(opts, recipe.name);
  const engine = opts.inference ?? "distill";
  const threads = inferenceWorkers(opts.workers);
  const results: LMResults = { recipe: recipe.name, device: opts.device, runs: [], samples: [], environment: collectEnvironment(opts.device, opts.workers, engine) };
  // Held-out logits of distill's own model: in the engine, or (--inference onnxruntime) its ONNX export.
  const heldOutLogits = async (model: LanguageModel, params: Params, x: Int32Array, context: number): Promise<Float32Array> => {
    if (engine === "distill") return lmLogits(model, params, x, context);
    return onnxLMLogits(model, params, x, context, threads);
  };
  const { wanted, students, needTeacher } = selectRuns(recipe.students, opts.only);
  // A teacher from a file is the same for every seed: opened (and checked) once, before any training.
  const t0 = recipe.teacher;
  const fromFile = needTeacher && ("onnx" in t0 || "hf" in t0 || "gguf" in t0 || "server" in t0 || "cache" in t0);
  if (fromFile) checkExternalTeacher(recipe);
  const fileTeacher = fromFile ? await lmTeacher(recipe, tokenizer, tokJSON, data, trainIds, heldIds, 0, opts.out, opts, opened) : null;
  if (fileTeacher?.server) checkServerTeacher(recipe, fileTeacher.server);

  for (const seed of opts.seeds) {
    const dir = join(opts.out, `seed-${seed}`);
    mkdirSync(dir, { recursive: true });
    let teacher: LMTeacher | null = null;
    let teacherTop: Int32Array | null = null;
    // Held-out windows, evaluated with each model's own context (≤ the teacher's).
    const evalSet = (context: number) => evalWindows(heldIds, context, recipe.data.evalWindows);

    const finish = async (name: string, role: RunRecord["role"], model: LanguageModel, params: Params, seconds: number, settings?: RunSettings, exportIt = true) => {
      const ev = evalSet(model.spec.context);
      const logits = await heldOutLogits(model, params, ev.x, model.spec.context);
      if (role === "teacher") teacherTop = argmaxRows(logits, model.vocab);
      const sameWindows = teacher && teacher.context === model.spec.context;
      const m = lmMetrics(logits, ev.y, model.vocab, sameWindows || role === "teacher" ? teacherTop : null, charLevel);
      const s = recipe.samples ?? { prompts: 3, promptLength: 24, tokens: 40 };
      const scored = s.scoredPrompts ?? SCORED_PROMPTS;
      // Generation quality needs the teacher to score the samples (absent when only scratch runs
      // are asked for; not measured with an external teacher, which scores on the host).
      const generation =
        teacher?.model && scored > 0
          ? await generationQuality(model, params, { model: teacher.model, params: teacher.params }, heldIds, { prompts: scored, promptLength: s.promptLength, tokens: s.tokens, sampling: { temperature: 0.8, ...s.sampling }, seed })
          : undefined;
      const extra = {
        ...(settings ? { settings } : {}),
        reliability: reliabilityBins(logits, ev.y, model.vocab),
        heldOutWindows: { context: model.spec.context, nll: windowNLL(logits, ev.y, model.vocab, model.spec.context) },
        ...(generation ? { generation } : {}),
        ...(role === "distilled" && teacher?.paramCount ? { teacherParams: teacher.paramCount } : {}),
        ...(exportIt ? await exportRun(recipe.export, name, dir, model, params, { tokenizer: tokJSON }, opts.progress) : {}),
      };
      results.runs.push({ name, role, model: model.name, params: paramCount(model as never), seed, metrics: m as never, seconds, ...extra });
      const gen = generation ? `; its samples: teacher NLL ${generation.teacherNLL.toFixed(4)} nats/token, distinct-2 ${generation.distinct2.toFixed(3)}` : "";
      opts.progress.info(`${name} seed ${seed}: held-out ${m.loss.toFixed(4)} nats/token (perplexity ${m.perplexity.toFixed(3)}), agreement ${(m.agreement * 100).toFixed(2)}%${gen}`);
      if (s.prompts > 0) {
        const P = Math.min(s.promptLength, model.spec.context - 1);
        const n = Math.min(s.tokens, model.spec.context - P);
        const prompts = Array.from({ length: s.prompts }, (_, i) => {
          const start = Math.floor((i * (heldIds.length - P)) / s.prompts);
          return heldIds.slice(start, start + P);
        });
        const seqs = await generate(model, params, prompts, n, { temperature: 0.8, ...s.sampling, seed });
        seqs.forEach((seq) => results.samples.push({ name, seed, prompt: tokenizer.decode(seq.subarray(0, P)), text: tokenizer.decode(seq.subarray(P)) }));
      }
    };

    if (needTeacher) {
      const t = fileTeacher ?? (await lmTeacher(recipe, tokenizer, tokJSON, data, trainIds, heldIds, seed, dir, teacherOpts(opts, wanted), opened));
      teacher = t;
      // A student's windows (and its vocabulary) must fit the teacher it learns from.
      for (const s of students) {
        if (s.model.context > t.context) {
          throw new UserError(`students.${s.name}.model.context: ${s.model.context} is longer than the teacher's context of ${t.context}`);
        }
        const k = s.train.loss.topK;
        if (k !== undefined && k > tokenizer.vocabSize) {
          throw new UserError(`students.${s.name}.train.loss.topK: ${k} is larger than the vocabulary of ${tokenizer.vocabSize} tokens`);
        }
      }
      if (t.server && !t.server.scores) {
        opts.progress.info(`teacher seed ${seed}: no held-out metrics (${t.server.source} returns no log-probabilities)`);
      } else if (t.external || t.cache) {
        // The file's (or cache's) own held-out metrics, from its soft labels (agreement with itself: 100 %).
        const ev = evalSet(t.context);
        const { logits, coverage } = t.cache
          ? await cachedHeldOutLogProbs(t.cache)
          : await externalLMLogProbs(t.external!, ev.x, t.context, ev.y);
        const V = t.cache ? t.cache.vocab : t.external!.classes;
        teacherTop = argmaxRows(logits, V);
        if (wanted("teacher")) {
          const m = lmMetrics(logits, ev.y, V, teacherTop, charLevel);
          results.runs.push({
            name: "teacher",
            role: "teacher",
            model: t.cache ? `cache ${basename(t.cache.dir)} (${t.cache.reader.manifest.teacher})` : `${t.external!.kind} ${basename(t.external!.source)}`,
            params: t.paramCount,
            seed,
            metrics: m as never,
            seconds: 0,
            reliability: reliabilityBins(logits, ev.y, V),
            heldOutWindows: { context: t.context, nll: windowNLL(logits, ev.y, V, t.context) },
            ...(coverage !== undefined ? { topKCoverage: coverage } : {}),
          });
          const estimate =
            coverage !== undefined
              ? ` (an estimate: the true token is in its top k at ${(coverage * 100).toFixed(1)}% of positions; elsewhere its probability is taken as an even share of the tail mass)`
              : "";
          opts.progress.info(`teacher seed ${seed}: held-out ${m.loss.toFixed(4)} nats/token (perplexity ${m.perplexity.toFixed(3)})${estimate}`);
        }
      } else if (wanted("teacher")) {
        // Only a teacher trained here is exported (not one loaded from a checkpoint or a file).
        await finish("teacher", "teacher", t.model, t.params, t.seconds, t.settings, "train" in recipe.teacher);
      } else {
        const ev = evalSet(t.context);
        teacherTop = argmaxRows(await heldOutLogits(t.model, t.params, ev.x, t.context), t.model.vocab);
      }
    }

    // With --inference onnxruntime, distill's own teacher gives its soft labels from its ONNX
    // export, batch by batch on the host, as an ONNX file's would (opened once per seed).
    let onOrt: ExternalTeacher | undefined;
    for (const s of students) {
      const model = llama(s.model, tokenizer.vocabSize);
      const info = lossInfo(s.train.loss);
      const usesTeacher = info.needsTeacher || (s.train.modes?.teacher ?? 0) > 0 || (s.train.modes?.student ?? 0) > 0;
      const config = withWorkers(
        // The teacher's soft labels come from onnxruntime when it is distill's own model and the option is on.
        { role: s.role, model: s.model, train: s.train, data: studentData, tokenizer: tokJSON, seed, teacher: usesTeacher ? teacher!.hash : null, ...inferenceKey(opts, info.needsTeacher && !!teacher?.model) },
        s.train.batchSize,
        opts,
        `${s.name}.train`,
      );
      const native = teacher?.model ? { model: teacher.model, params: teacher.params } : undefined;
      // A server generates (sequence-level KD) through its own continuations.
      const generator = native ?? (teacher?.server ? teacher.server : undefined);
      const generated = modelTextSource({
        ids: trainIds,
        context: model.spec.context,
        batchSize: s.train.batchSize,
        steps: s.train.steps,
        seed,
        modes: s.train.modes,
        promptLength: s.train.promptLength,
        sampling: s.train.sampling,
        teacher: usesTeacher ? generator : undefined,
        student: model,
        windows: aligned ? "aligned" : "random",
      });
      // An external teacher's soft labels ride on each batch (corpus windows and the student's
      // own samples alike), a cache's by window id; distill's own teacher runs inside the training step.
      if (engine === "onnxruntime" && info.needsTeacher && teacher?.model && !onOrt) {
        opened.push((onOrt = await ownModelOnOnnx(teacher.model, teacher.params, TEACHER_THREADS)));
      }
      const ext = info.needsTeacher ? (teacher?.external ?? onOrt) : undefined;
      const cache = info.needsTeacher ? teacher?.cache : undefined;
      const source = ext ? withSoftLabels(generated, ext) : cache ? withCachedSoftLabels(generated, cache) : generated;
      const t = await trainOrReuse(
        `${s.name} seed ${seed}`,
        join(dir, `${s.name}-${configHash(config)}.safetensors`),
        model,
        config,
        trainSpec(s.train),
        source,
        seed,
        opts,
        info.needsTeacher && !onOrt ? native : undefined,
      );
      const settings = lmSettings(s.train, model.spec.context, config.workers ?? 1);
      // A top-k teacher: the loss ran on its k classes plus the tail, whatever the recipe said.
      if (ext?.output === "topk" && "topK" in recipe.teacher) settings.topK = recipe.teacher.topK;
      if (ext?.output === "topk" && "server" in recipe.teacher) settings.topK = recipe.teacher.server.topK;
      if (cache) settings.topK = cache.k;
      await finish(s.name, s.role, model, t.params, t.seconds, settings);
      disposeParams(t.params);
    }
    if (teacher?.params && teacher !== fileTeacher) disposeParams(teacher.params);
  }
  if (fileTeacher?.params) disposeParams(fileTeacher.params);
  const table = finalResults(opts, results, ["teacher", ...recipe.students.map((s) => s.name)]);
  writeResults(join(opts.out, "results.json"), table);
  writeFileAtomic(join(opts.out, "report.html"), renderHtmlReport(table, readCurves(opts.out, table), { generated: new Date().toISOString() }));
  return table;
}
