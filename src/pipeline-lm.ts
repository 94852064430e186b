// `distill run` for language models: corpus → tokenizer → teacher → students (token-level,
// sequence-level or on-policy KD, by fraction) → held-out metrics and samples → results.
// Reuses the classification pipeline's checkpoint reuse, trainer, progress and results.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Device } from "./engine/index.js";
import { llama, type LanguageModel, type LlamaSpec } from "./nn/llama.js";
import { paramCount } from "./nn/models.js";
import { generate } from "./nn/generate.js";
import { disposeParams, paramsFromHost } from "./checkpoint/params.js";
import { loadCheckpoint } from "./checkpoint/checkpoint.js";
import type { Params } from "./nn/models.js";
import { UserError } from "./util/errors.js";
import { lossInfo } from "./losses/index.js";
import { textSource } from "./data/text-source.js";
import { DEBIAN_FORTUNES, evalWindows, readCorpus, splitHeldOut } from "./text/corpus.js";
import { byteTokenizer, charTokenizer, checkSameVocab, loadTokenizerFile, tokenizerFromJSON, type Tokenizer, type TokenizerJSON } from "./text/tokenizer.js";
import { lmLogits, lmMetrics } from "./eval/lm-metrics.js";
import { argmaxRows, reliabilityBins } from "./eval/metrics.js";
import { collectEnvironment, lmSettings, type RunSettings } from "./report/run-info.js";
import { configHash, exportRun, finalResults, prepareOut, selectRuns, teacherOpts, trainOrReuse, withWorkers, type RunOptions } from "./pipeline.js";
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
 * The teacher: trained (or reused) from the recipe, or loaded from a finished checkpoint,
 * whose vocabulary must be the one the students will use.
 */
async function lmTeacher(
  recipe: LMRecipe,
  tokenizer: Tokenizer,
  tokJSON: TokenizerJSON,
  data: Record<string, unknown>,
  trainIds: Int32Array,
  heldTokens: number,
  seed: number,
  dir: string,
  opts: RunOptions,
): Promise<{ model: LanguageModel; params: Params; hash: string; seconds: number; settings?: RunSettings }> {
  if ("checkpoint" in recipe.teacher) {
    const path = recipe.teacher.checkpoint;
    const ck = loadCheckpoint(path);
    const cfg = ck.config as { model?: LlamaSpec; tokenizer?: TokenizerJSON } | null;
    if (!cfg?.model || cfg.model.type !== "llama" || !cfg.tokenizer) throw new UserError(`${path}: not a distill language-model checkpoint (no llama model or tokenizer in its config)`);
    const spec = validateStoredModel(cfg.model, "llama", path) as LlamaSpec;
    checkSameVocab(tokenizerFromJSON(cfg.tokenizer, path), tokenizer, `teacher ${path}`);
    const model = llama(spec, tokenizer.vocabSize);
    checkContextFits(`${path}: the teacher's context`, spec.context, trainIds.length, heldTokens, String(data.corpus), recipe.data.heldOut ?? 0.1);
    const st = ck.state as { seconds?: number } | undefined;
    return { model, params: paramsFromHost(ck.tensors, model.shapes, path), hash: configHash(cfg), seconds: st?.seconds ?? 0 };
  }
  const model = llama(recipe.teacher.model, tokenizer.vocabSize);
  const config = withWorkers({ role: "teacher", model: recipe.teacher.model, train: recipe.teacher.train, data, tokenizer: tokJSON, seed }, recipe.teacher.train.batchSize, opts, "teacher.train");
  const h = configHash(config);
  const source = textSource({ ids: trainIds, context: model.spec.context, batchSize: recipe.teacher.train.batchSize, steps: recipe.teacher.train.steps, seed, student: model });
  const t = await trainOrReuse(`teacher seed ${seed}`, join(dir, `teacher-${h}.safetensors`), model, config, trainSpec(recipe.teacher.train), source, seed, opts);
  return { model, params: t.params, hash: h, seconds: t.seconds, settings: lmSettings(recipe.teacher.train, model.spec.context, config.workers ?? 1) };
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
  const charLevel = tokenizer.kind === "char";
  prepareOut(opts, recipe.name);
  const results: LMResults = { recipe: recipe.name, device: opts.device, runs: [], samples: [], environment: collectEnvironment(opts.device, opts.workers) };
  const { wanted, students, needTeacher } = selectRuns(recipe.students, opts.only);

  for (const seed of opts.seeds) {
    const dir = join(opts.out, `seed-${seed}`);
    mkdirSync(dir, { recursive: true });
    let teacher: { model: LanguageModel; params: Params; hash: string } | null = null;
    let teacherTop: Int32Array | null = null;
    // Held-out windows, evaluated with each model's own context (≤ the teacher's).
    const evalSet = (context: number) => evalWindows(heldIds, context, recipe.data.evalWindows);

    const finish = async (name: string, role: RunRecord["role"], model: LanguageModel, params: Params, seconds: number, settings?: RunSettings, exportIt = true) => {
      const ev = evalSet(model.spec.context);
      const logits = await lmLogits(model, params, ev.x, model.spec.context);
      if (role === "teacher") teacherTop = argmaxRows(logits, model.vocab);
      const sameWindows = teacher && teacher.model.spec.context === model.spec.context;
      const m = lmMetrics(logits, ev.y, model.vocab, sameWindows || role === "teacher" ? teacherTop : null, charLevel);
      const s = recipe.samples ?? { prompts: 3, promptLength: 24, tokens: 40 };
      const scored = s.scoredPrompts ?? SCORED_PROMPTS;
      // Generation quality needs the teacher to score the samples (absent when only scratch runs are asked for).
      const generation =
        teacher && scored > 0
          ? await generationQuality(model, params, teacher, heldIds, { prompts: scored, promptLength: s.promptLength, tokens: s.tokens, sampling: { temperature: 0.8, ...s.sampling }, seed })
          : undefined;
      const extra = {
        ...(settings ? { settings } : {}),
        reliability: reliabilityBins(logits, ev.y, model.vocab),
        heldOutWindows: { context: model.spec.context, nll: windowNLL(logits, ev.y, model.vocab, model.spec.context) },
        ...(generation ? { generation } : {}),
        ...(role === "distilled" && teacher ? { teacherParams: paramCount(teacher.model as never) } : {}),
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
      const t = await lmTeacher(recipe, tokenizer, tokJSON, data, trainIds, heldIds.length, seed, dir, teacherOpts(opts, wanted));
      teacher = { model: t.model, params: t.params, hash: t.hash };
      // A student's windows (and its vocabulary) must fit the teacher it learns from.
      for (const s of students) {
        if (s.model.context > t.model.spec.context) {
          throw new UserError(`students.${s.name}.model.context: ${s.model.context} is longer than the teacher's context of ${t.model.spec.context}`);
        }
        const k = s.train.loss.topK;
        if (k !== undefined && k > tokenizer.vocabSize) {
          throw new UserError(`students.${s.name}.train.loss.topK: ${k} is larger than the vocabulary of ${tokenizer.vocabSize} tokens`);
        }
      }
      // Only a teacher trained here is exported (not one loaded from a checkpoint).
      if (wanted("teacher")) await finish("teacher", "teacher", t.model, t.params, t.seconds, t.settings, "train" in recipe.teacher);
      else {
        const ev = evalSet(t.model.spec.context);
        teacherTop = argmaxRows(await lmLogits(t.model, t.params, ev.x, t.model.spec.context), t.model.vocab);
      }
    }

    for (const s of students) {
      const model = llama(s.model, tokenizer.vocabSize);
      const info = lossInfo(s.train.loss);
      const usesTeacher = info.needsTeacher || (s.train.modes?.teacher ?? 0) > 0 || (s.train.modes?.student ?? 0) > 0;
      const config = withWorkers(
        { role: s.role, model: s.model, train: s.train, data, tokenizer: tokJSON, seed, teacher: usesTeacher ? teacher!.hash : null },
        s.train.batchSize,
        opts,
        `${s.name}.train`,
      );
      const source = textSource({
        ids: trainIds,
        context: model.spec.context,
        batchSize: s.train.batchSize,
        steps: s.train.steps,
        seed,
        modes: s.train.modes,
        promptLength: s.train.promptLength,
        sampling: s.train.sampling,
        teacher: usesTeacher ? teacher! : undefined,
        student: model,
      });
      const t = await trainOrReuse(
        `${s.name} seed ${seed}`,
        join(dir, `${s.name}-${configHash(config)}.safetensors`),
        model,
        config,
        trainSpec(s.train),
        source,
        seed,
        opts,
        info.needsTeacher ? teacher! : undefined,
      );
      await finish(s.name, s.role, model, t.params, t.seconds, lmSettings(s.train, model.spec.context, config.workers ?? 1));
      disposeParams(t.params);
    }
    if (teacher) disposeParams(teacher.params);
  }
  const table = finalResults(opts, results, ["teacher", ...recipe.students.map((s) => s.name)]);
  writeResults(join(opts.out, "results.json"), table);
  writeFileAtomic(join(opts.out, "report.html"), renderHtmlReport(table, readCurves(opts.out, table), { generated: new Date().toISOString() }));
  return table;
}
