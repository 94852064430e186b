// What every exporter starts from: a finished checkpoint's model (rebuilt from its stored config)
// and its parameters as host tensors, plus what a client needs to feed it (the classifier's
// input shape, the language model's tokenizer).
import { loadCheckpoint } from "../checkpoint/checkpoint.js";
import { paramsToHost } from "../checkpoint/params.js";
import type { HostTensor } from "../checkpoint/safetensors.js";
import { buildModel, type InputShape, type Model, type ModelSpec, type Params } from "../nn/models.js";
import { llama, type LanguageModel, type LlamaSpec } from "../nn/llama.js";
import { bert, isEncoder, type BertSpec, type EncoderModel } from "../nn/bert.js";
import { validateStoredModel } from "../recipe/recipe.js";
import { tokenizerFromJSON, type TokenizerJSON } from "../text/tokenizer.js";
import { UserError } from "../util/errors.js";
import { numel } from "../util/shape.js";

export type Params32 = Record<string, { shape: number[]; data: Float32Array }>;

export interface ClassifierExportable {
  family: "classifier";
  model: Model;
  /** The model's parameters only (no optimiser moments), by the model's own names. */
  params: Params32;
  /** Pixels are byte/255 in [0, 1]; distill's own input is [N, H·W·C] channels-last. */
  input: InputShape;
  /** Where it came from, for errors and metadata. */
  source: string;
}

export interface LMExportable {
  family: "lm";
  model: LanguageModel;
  params: Params32;
  tokenizer: TokenizerJSON;
  source: string;
}

/** A text classifier (BERT encoder): token rows in, class logits out; ships with its tokenizer and class names. */
export interface TextExportable {
  family: "text";
  model: EncoderModel;
  params: Params32;
  /** input.text holds the row length (the model's maximum), vocabulary size and padding id. */
  input: InputShape & { text: NonNullable<InputShape["text"]> };
  /** Class names in id order. */
  classes: string[];
  /** The tokenizer.json (and tokenizer_config.json) the model was trained with. */
  tokenizer: Extract<TokenizerJSON, { kind: "hf" }>;
  source: string;
}

export type Exportable = ClassifierExportable | LMExportable | TextExportable;

function pickParams(tensors: Record<string, HostTensor>, shapes: [string, number[]][], source: string): Params32 {
  const out: Params32 = {};
  for (const [name, shape] of shapes) {
    const t = Object.hasOwn(tensors, name) ? tensors[name] : undefined;
    if (!t) throw new UserError(`${source}: tensor "${name}" is missing`);
    if (t.dtype !== "F32" || t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]) || t.data.length !== numel(shape)) {
      throw new UserError(`${source}: tensor "${name}" is ${t.dtype} [${t.shape.join(", ")}], expected F32 [${shape.join(", ")}]`);
    }
    out[name] = { shape: shape.slice(), data: t.data as Float32Array };
  }
  return out;
}

/** Reads a finished distill checkpoint (`X.safetensors` + `X.json`) for export. */
export function loadExportable(path: string): Exportable {
  const ck = loadCheckpoint(path);
  const cfg = ck.config as { model?: { type?: string }; input?: InputShape; tokenizer?: TokenizerJSON; classes?: unknown } | null;
  if (!cfg || typeof cfg !== "object" || !cfg.model) throw new UserError(`${path}: not a distill checkpoint (its config has no model)`);
  if (cfg.model.type === "llama") {
    if (!cfg.tokenizer) throw new UserError(`${path}: a language-model checkpoint without its tokenizer`);
    const spec = validateStoredModel(cfg.model, "llama", path) as LlamaSpec;
    const tokenizer = tokenizerFromJSON(cfg.tokenizer, path);
    const model = llama(spec, tokenizer.vocabSize);
    return { family: "lm", model, params: pickParams(ck.tensors, model.shapes, path), tokenizer: cfg.tokenizer, source: path };
  }
  if (cfg.model.type === "bert") return textExportable(cfg, ck.tensors, path);
  const spec = validateStoredModel(cfg.model, "classifier", path) as ModelSpec;
  const input = cfg.input;
  if (!input || ![input.height, input.width, input.channels, input.classes].every((v) => Number.isInteger(v) && v > 0)) {
    throw new UserError(`${path}: a classifier checkpoint without its input shape (config.input)`);
  }
  const model = buildModel(spec, input);
  return { family: "classifier", model, params: pickParams(ck.tensors, model.shapes, path), input, source: path };
}

const posInt = (v: unknown) => Number.isSafeInteger(v) && (v as number) > 0;

/**
 * A text-classification checkpoint: config.model (bert), config.input with `text`, config.classes
 * (names) and config.tokenizer (tokenizer.json). Only the model's own tensors are read: a student
 * trained with intermediate-layer losses also holds its projections (`distill.proj.*`), which
 * are training machinery, not part of the model.
 */
function textExportable(cfg: { model?: unknown; input?: InputShape; tokenizer?: TokenizerJSON; classes?: unknown }, tensors: Record<string, HostTensor>, path: string): TextExportable {
  const spec = cfg.model as BertSpec;
  for (const k of ["layers", "hidden", "heads", "intermediate"] as const) {
    if (!posInt(spec[k])) throw new UserError(`${path}: not a distill text-classifier checkpoint: config model.${k} is ${JSON.stringify(spec[k])}, expected a positive integer`);
  }
  const input = cfg.input;
  const text = input?.text;
  if (!input || !text || !posInt(input.classes) || !posInt(text.vocab) || !posInt(text.length) || !Number.isSafeInteger(text.padId) || text.padId < 0 || text.padId >= text.vocab) {
    throw new UserError(`${path}: a text-classifier checkpoint without its input shape (config.input.text: vocab, length, padId)`);
  }
  const classes = cfg.classes;
  if (!Array.isArray(classes) || classes.length !== input.classes || !classes.every((c) => typeof c === "string")) {
    throw new UserError(`${path}: config.classes must list the ${input.classes} class names`);
  }
  if (!cfg.tokenizer || cfg.tokenizer.kind !== "hf") throw new UserError(`${path}: a text-classifier checkpoint without its tokenizer (config.tokenizer, a tokenizer.json)`);
  const model = bert(spec, input);
  return { family: "text", model, params: pickParams(tensors, model.shapes, path), input: { ...input, text }, classes: classes as string[], tokenizer: cfg.tokenizer, source: path };
}

/**
 * An Exportable from a model and its parameters on the device (not consumed): a classifier with
 * its input shape, a language model with its tokenizer, or a text classifier (bert) with its
 * input shape, class names and tokenizer. Only the model's own tensors are kept (params may hold
 * training-only ones, such as intermediate-layer projections).
 */
export async function exportableFrom(
  model: Model | LanguageModel | EncoderModel,
  params: Params,
  extra: { input: InputShape } | { tokenizer: TokenizerJSON } | { input: InputShape; classes: string[]; tokenizer: Extract<TokenizerJSON, { kind: "hf" }> },
  source: string,
): Promise<Exportable> {
  const own = new Set(model.shapes.map(([name]) => name));
  const host = await paramsToHost(Object.fromEntries(Object.entries(params).filter(([name]) => own.has(name))));
  const p: Params32 = {};
  for (const [name, t] of Object.entries(host)) p[name] = { shape: t.shape, data: t.data as Float32Array };
  if ("classes" in extra) {
    const text = extra.input.text;
    if (!text || !isEncoder(model)) throw new Error(`exportableFrom: ${source} is not a text classifier`);
    return { family: "text", model, params: p, input: { ...extra.input, text }, classes: extra.classes, tokenizer: extra.tokenizer, source };
  }
  if ("tokenizer" in extra) return { family: "lm", model: model as LanguageModel, params: p, tokenizer: extra.tokenizer, source };
  return { family: "classifier", model: model as Model, params: p, input: extra.input, source };
}
