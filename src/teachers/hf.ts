// A Hugging Face LlamaForCausalLM folder as distill's own Llama, and a
// BertForSequenceClassification folder as distill's own bert (loadHfBertTeacher): its parameters already have
// distill's names and layouts, so the teacher runs in distill's engine (inside the compiled
// training step, like a teacher distill trained). What distill's Llama cannot represent is refused
// with one line naming the field, rather than loaded into a model that computes something else.
import { existsSync, statSync } from "node:fs";
import { constants } from "node:buffer";
import { isDeepStrictEqual } from "node:util";
import { join } from "node:path";
import { decodeSafetensors, toFloat32, type HostTensor } from "../checkpoint/safetensors.js";
import { paramsFromHost } from "../checkpoint/params.js";
import { DISTILL_CONFIG_KEY, hfTokenizerFiles } from "../export/hf-tokenizer.js";
import { llama, type LanguageModel, type LlamaSpec } from "../nn/llama.js";
import { bert, type BertSpec, type EncoderModel } from "../nn/bert.js";
import type { InputShape } from "../nn/models.js";
import { encoderTokenizerFromJSON, type TextTokenizer } from "../text/encoder-tokenizer.js";
import type { Params } from "../nn/models.js";
import { loadTokenizerFile, tokenizerFromJSON, type Tokenizer, type TokenizerJSON } from "../text/tokenizer.js";
import { UserError } from "../util/errors.js";
import { readFileBounded } from "../util/fs.js";

const MAX_JSON_BYTES = 64 * 2 ** 20;

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function readJson(path: string, what: string): Record<string, unknown> {
  const bytes = readFileBounded(path, MAX_JSON_BYTES, what);
  let parsed: unknown;
  try {
    // The parser's message would quote the file; say what is wrong instead.
    parsed = JSON.parse(bytes.toString("utf8"));
  } catch {
    throw new UserError(`${path}: not valid JSON (truncated or corrupt ${what}?)`);
  }
  if (!isObject(parsed)) throw new UserError(`${path}: not a JSON object (expected a ${what})`);
  return parsed;
}

/** The fields of config.json distill reads, checked; every refusal names the field and its value. */
function llamaSpecFromConfig(cfg: Record<string, unknown>, file: string, context?: number): { spec: LlamaSpec; vocab: number } {
  const field = (k: string) => (Object.hasOwn(cfg, k) ? cfg[k] : undefined);
  const show = (v: unknown) => JSON.stringify(v) ?? String(v);
  const bad = (k: string, v: unknown, why: string): never => {
    throw new UserError(`${file}: ${k} ${show(v)}: ${why}`);
  };
  const posInt = (k: string, dflt?: number): number => {
    const v = field(k) ?? dflt;
    if (v === undefined) throw new UserError(`${file}: ${k} is missing`);
    if (!Number.isSafeInteger(v) || (v as number) <= 0) bad(k, v, "expected a positive integer");
    return v as number;
  };
  const posNum = (k: string, dflt: number): number => {
    const v = field(k) ?? dflt;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) bad(k, v, "expected a positive number");
    return v as number;
  };

  // A config without `architectures` is read by its model_type, as transformers does.
  const arch = field("architectures");
  if (arch === undefined || arch === null) {
    if (field("model_type") !== "llama") bad("model_type", field("model_type"), 'distill reads LlamaForCausalLM folders only (model_type "llama")');
  } else if (!Array.isArray(arch) || !arch.includes("LlamaForCausalLM")) bad("architectures", arch, "distill reads LlamaForCausalLM folders only");
  const width = posInt("hidden_size");
  const heads = posInt("num_attention_heads");
  const layers = posInt("num_hidden_layers");
  const hidden = posInt("intermediate_size");
  const vocab = posInt("vocab_size");
  const kv = field("num_key_value_heads") ?? heads;
  if (kv !== heads) bad("num_key_value_heads", kv, `distill's Llama has no grouped-query attention (it needs num_key_value_heads = num_attention_heads = ${heads})`);
  if (width % heads !== 0) bad("hidden_size", width, `not a multiple of num_attention_heads (${heads})`);
  const headDim = field("head_dim");
  if (headDim !== undefined && headDim !== null && headDim !== width / heads) bad("head_dim", headDim, `distill's Llama needs hidden_size / num_attention_heads = ${width / heads}`);
  if ((width / heads) % 2 !== 0) bad("hidden_size", width, `the head size ${width / heads} must be even for rotary embeddings`);
  const act = field("hidden_act") ?? "silu";
  if (act !== "silu") bad("hidden_act", act, 'distill\'s Llama uses "silu" (SwiGLU) only');
  for (const k of ["attention_bias", "mlp_bias"]) {
    const v = field(k);
    if (v !== undefined && v !== null && v !== false) bad(k, v, "distill's Llama has no biases");
  }
  const scaling = field("rope_scaling");
  if (scaling !== undefined && scaling !== null) bad("rope_scaling", scaling, "rotary scaling is not supported (distill's Llama uses plain rotary embeddings)");
  // transformers 5 moves the rotary settings into rope_parameters.
  let ropeTheta = posNum("rope_theta", 10000);
  const rp = field("rope_parameters");
  if (rp !== undefined && rp !== null) {
    if (!isObject(rp)) bad("rope_parameters", rp, "expected an object");
    const r = rp as Record<string, unknown>;
    const type = Object.hasOwn(r, "rope_type") ? r.rope_type : "default";
    if (type !== "default") bad("rope_parameters.rope_type", type, 'only "default" rotary embeddings are supported');
    if (Object.hasOwn(r, "rope_theta")) {
      if (typeof r.rope_theta !== "number" || !(r.rope_theta > 0)) bad("rope_parameters.rope_theta", r.rope_theta, "expected a positive number");
      ropeTheta = r.rope_theta as number;
    }
  }
  // LlamaConfig's own defaults for the fields a config may leave out.
  const normEps = posNum("rms_norm_eps", 1e-6);
  const tiedRaw = field("tie_word_embeddings") ?? false;
  if (typeof tiedRaw !== "boolean") bad("tie_word_embeddings", tiedRaw, "expected true or false");
  let ctx = posInt("max_position_embeddings", 2048);
  if (context !== undefined) {
    if (context > ctx) throw new UserError(`${file}: max_position_embeddings is ${ctx}, shorter than the context of ${context} asked for`);
    ctx = context;
  }
  return { spec: { type: "llama", layers, width, heads, context: ctx, hidden, tied: tiedRaw as boolean, ropeTheta, normEps }, vocab };
}

/** All tensors of model.safetensors, or of the shards model.safetensors.index.json names. */
function readWeights(dir: string): Map<string, { t: HostTensor; file: string }> {
  const single = join(dir, "model.safetensors");
  const index = join(dir, "model.safetensors.index.json");
  let files: string[];
  if (existsSync(single)) files = [single];
  else if (existsSync(index)) {
    const map = readJson(index, "safetensors index").weight_map;
    if (!isObject(map)) throw new UserError(`${index}: no "weight_map" object`);
    const names = new Set<string>();
    for (const v of Object.values(map)) {
      // Shards are files in this folder: a path elsewhere (../, /) is not followed.
      if (typeof v !== "string" || !/^[^/\\]+\.safetensors$/.test(v) || v.startsWith(".")) {
        throw new UserError(`${index}: weight_map names ${JSON.stringify(v)}, not a .safetensors file in this folder`);
      }
      names.add(v);
    }
    files = [...names].sort().map((n) => join(dir, n));
  } else {
    throw new UserError(`${dir}: no model.safetensors or model.safetensors.index.json (PyTorch .bin weights are not read: save them as safetensors)`);
  }
  const out = new Map<string, { t: HostTensor; file: string }>();
  for (const file of files) {
    const { tensors } = decodeSafetensors(readFileBounded(file, constants.MAX_LENGTH, "safetensors file"), file);
    for (const [name, t] of Object.entries(tensors)) out.set(name, { t, file });
  }
  return out;
}

/**
 * The tokenizer: tokenizer.json (with tokenizer_config.json beside it) as distill's `hf` kind,
 * except in a folder distill wrote from a char or byte tokenizer whose tokenizer.json is unchanged:
 * then distill's own kind, so a student trained with `tokenizer: char` on the same corpus has the
 * same vocabulary by distill's rules (checkSameVocab compares kinds). Both give the same ids.
 */
function readTokenizer(dir: string, cfg: Record<string, unknown>): Tokenizer {
  const file = join(dir, "tokenizer.json");
  if (!existsSync(file)) throw new UserError(`${dir}: no tokenizer.json (a teacher's tokenizer must be the student's)`);
  const hf = loadTokenizerFile(file);
  const block = Object.hasOwn(cfg, DISTILL_CONFIG_KEY) ? cfg[DISTILL_CONFIG_KEY] : undefined;
  const own = isObject(block) && Object.hasOwn(block, "tokenizer") ? (block.tokenizer as TokenizerJSON) : undefined;
  if (own && isObject(own) && (own.kind === "char" || own.kind === "byte")) {
    const tok = tokenizerFromJSON(own, join(dir, "config.json"));
    const written = (hf.toJSON() as { json: unknown }).json;
    if (isDeepStrictEqual(JSON.parse(JSON.stringify(hfTokenizerFiles(tok.toJSON()).tokenizer)), written)) return tok;
  }
  return hf;
}

export interface HfTeacher {
  model: LanguageModel;
  params: Params;
  tokenizer: Tokenizer;
  /** The folder's config.json fields as distill's spec (for the report and config hashes). */
  spec: LlamaSpec;
}

/** A Hugging Face model folder's config.json (the folder checked first, each failure one line). */
function readHfConfig(dir: string): { cfgPath: string; cfg: Record<string, unknown> } {
  let st;
  try {
    st = statSync(dir);
  } catch {
    throw new UserError(`${dir}: no such folder (teacher.hf is a Hugging Face model folder)`);
  }
  if (!st.isDirectory()) throw new UserError(`${dir}: not a folder (teacher.hf is a Hugging Face model folder with config.json)`);
  const cfgPath = join(dir, "config.json");
  if (!existsSync(cfgPath)) throw new UserError(`${dir}: no config.json`);
  return { cfgPath, cfg: readJson(cfgPath, "model config") };
}

/**
 * A LlamaForCausalLM folder (config.json + model.safetensors or sharded + tokenizer.json) as
 * distill's own Llama. F16 and BF16 weights are widened to F32. `context` (at most the folder's
 * max_position_embeddings) sizes the rotary tables and the KV cache; default: the folder's.
 * Does not start the engine: call initDevice first.
 */
export function loadHfTeacher(dir: string, opts: { context?: number } = {}): HfTeacher {
  const { cfgPath, cfg } = readHfConfig(dir);
  const { spec, vocab } = llamaSpecFromConfig(cfg, cfgPath, opts.context);
  const tokenizer = readTokenizer(dir, cfg);
  if (tokenizer.vocabSize !== vocab) {
    throw new UserError(`${cfgPath}: vocab_size ${vocab} but tokenizer.json has ${tokenizer.vocabSize} tokens; distill needs the model's vocabulary to be the tokenizer's`);
  }
  const model = llama(spec, vocab);
  const weights = readWeights(dir);
  const host: Record<string, HostTensor> = {};
  for (const [name, shape] of model.shapes) {
    const w = weights.get(name);
    if (!w) throw new UserError(`${dir}: the weights have no tensor "${name}" (${model.name}, vocabulary ${vocab})`);
    const data = toFloat32(w.t);
    if (!data) throw new UserError(`${w.file}: tensor "${name}" is ${w.t.dtype}, expected a float type (F32, F16, BF16)`);
    if (w.t.shape.join("x") !== shape.join("x")) {
      throw new UserError(`${w.file}: tensor "${name}" has shape [${w.t.shape}], config.json says [${shape}]`);
    }
    host[name] = { dtype: "F32", shape, data };
  }
  const source = weights.size > 0 ? [...new Set([...weights.values()].map((w) => w.file))].join(", ") : dir;
  return { model, params: paramsFromHost(host, model.shapes, source), tokenizer, spec };
}

export interface HfBertTeacher {
  model: EncoderModel;
  params: Params;
  /** tokenizer.json with tokenizer_config.json: the students' tokenizer (ids must agree). */
  tokenizer: TextTokenizer;
  spec: BertSpec;
  /** input.text: vocab_size, the row length asked for, the tokenizer's padding id. */
  input: InputShape & { text: NonNullable<InputShape["text"]> };
  /** Class names in id order (config.json id2label). */
  classes: string[];
}

/** The fields of a BertForSequenceClassification config.json distill's bert can represent; anything else is refused by name. */
function bertSpecFromConfig(cfg: Record<string, unknown>, file: string): { spec: BertSpec; vocab: number; positions: number; classes: string[] } {
  const field = (k: string) => (Object.hasOwn(cfg, k) ? cfg[k] : undefined);
  const bad = (k: string, v: unknown, why: string): never => {
    throw new UserError(`${file}: ${k} ${JSON.stringify(v) ?? String(v)}: ${why}`);
  };
  const posInt = (k: string, dflt?: number): number => {
    const v = field(k) ?? dflt;
    if (v === undefined) throw new UserError(`${file}: ${k} is missing`);
    if (!Number.isSafeInteger(v) || (v as number) <= 0) bad(k, v, "expected a positive integer");
    return v as number;
  };
  const arch = field("architectures");
  if (arch === undefined || arch === null) {
    if (field("model_type") !== "bert") bad("model_type", field("model_type"), 'distill reads BertForSequenceClassification folders here (model_type "bert")');
  } else if (!Array.isArray(arch) || !arch.includes("BertForSequenceClassification")) bad("architectures", arch, "distill reads BertForSequenceClassification folders here");
  const hidden = posInt("hidden_size");
  const heads = posInt("num_attention_heads");
  if (hidden % heads !== 0) bad("hidden_size", hidden, `not a multiple of num_attention_heads (${heads})`);
  // BertConfig's own defaults for what a config may leave out; what distill's bert fixes must match.
  const fixedAs = (k: string, want: unknown, why: string) => {
    const v = field(k) ?? want;
    if (v !== want) bad(k, v, why);
  };
  fixedAs("hidden_act", "gelu", 'distill\'s bert uses "gelu" (erf) only');
  fixedAs("position_embedding_type", "absolute", "distill's bert has absolute position embeddings only");
  fixedAs("layer_norm_eps", 1e-12, "distill's bert uses LayerNorm eps 1e-12");
  fixedAs("type_vocab_size", 2, "distill's bert has two token types");
  const dropout = field("hidden_dropout_prob") ?? 0.1;
  if (typeof dropout !== "number" || !(dropout >= 0 && dropout < 1)) bad("hidden_dropout_prob", dropout, "expected a number in [0, 1)");
  // Class names: id2label by id (num_labels, default 2, when it is absent).
  const id2label = field("id2label");
  let classes: string[];
  if (id2label === undefined || id2label === null) classes = Array.from({ length: posInt("num_labels", 2) }, (_, i) => `LABEL_${i}`);
  else {
    if (!isObject(id2label)) bad("id2label", id2label, "expected an object of id → name");
    const m = id2label as Record<string, unknown>;
    classes = Array.from({ length: Object.keys(m).length }, (_, i) => {
      const name = Object.hasOwn(m, String(i)) ? m[String(i)] : undefined;
      if (typeof name !== "string") bad("id2label", id2label, `no name for class ${i} (ids must be 0..${Object.keys(m).length - 1})`);
      return name as string;
    });
    const n = field("num_labels");
    if (n !== undefined && n !== classes.length) bad("num_labels", n, `id2label names ${classes.length} classes`);
  }
  return {
    spec: { type: "bert", layers: posInt("num_hidden_layers"), hidden, heads, intermediate: posInt("intermediate_size"), dropout: dropout as number },
    vocab: posInt("vocab_size"),
    positions: posInt("max_position_embeddings", 512),
    classes,
  };
}

/**
 * A BertForSequenceClassification folder (config.json, model.safetensors or shards,
 * tokenizer.json + tokenizer_config.json) as distill's own bert, so the teacher runs inside the
 * compiled step and its hidden states and attentions feed the intermediate-layer losses.
 * `length` (the recipe's row length, at most max_position_embeddings; default that) keeps the
 * first `length` rows of the position table. F16 and BF16 weights are widened to F32; old
 * checkpoints' LayerNorm `gamma`/`beta` are read as `weight`/`bias`. Does not start the engine.
 */
export function loadHfBertTeacher(dir: string, opts: { length?: number } = {}): HfBertTeacher {
  const { cfgPath, cfg } = readHfConfig(dir);
  const { spec, vocab, positions, classes } = bertSpecFromConfig(cfg, cfgPath);
  const length = opts.length ?? positions;
  if (length > positions) throw new UserError(`${cfgPath}: max_position_embeddings is ${positions}, shorter than the rows of ${length} tokens asked for`);

  const tokFile = join(dir, "tokenizer.json");
  if (!existsSync(tokFile)) throw new UserError(`${dir}: no tokenizer.json (a teacher's tokenizer must be the student's)`);
  const cfgFile = join(dir, "tokenizer_config.json");
  const tokenizer = encoderTokenizerFromJSON({ kind: "hf", json: readJson(tokFile, "tokenizer"), ...(existsSync(cfgFile) ? { config: readJson(cfgFile, "tokenizer config") } : {}) });
  if (tokenizer.vocabSize > vocab) throw new UserError(`${cfgPath}: vocab_size ${vocab} but tokenizer.json has ${tokenizer.vocabSize} tokens (ids past the embedding table)`);

  const input = { height: 1, width: length, channels: 1, classes: classes.length, text: { vocab, length, padId: tokenizer.padId } };
  const model = bert(spec, input);
  const weights = readWeights(dir);
  const host: Record<string, HostTensor> = {};
  for (const [name, shape] of model.shapes) {
    const w = weights.get(name) ?? weights.get(name.replace(/LayerNorm\.weight$/, "LayerNorm.gamma").replace(/LayerNorm\.bias$/, "LayerNorm.beta"));
    if (!w) throw new UserError(`${dir}: the weights have no tensor "${name}" (${model.name})`);
    const data = toFloat32(w.t);
    if (!data) throw new UserError(`${w.file}: tensor "${name}" is ${w.t.dtype}, expected a float type (F32, F16, BF16)`);
    // The position table is cut to the rows asked for; every other tensor must be as config.json says.
    const isPos = name === "bert.embeddings.position_embeddings.weight";
    const want = isPos ? [positions, shape[1]] : shape;
    if (w.t.shape.join("x") !== want.join("x")) throw new UserError(`${w.file}: tensor "${name}" has shape [${w.t.shape}], config.json says [${want}]`);
    host[name] = { dtype: "F32", shape, data: isPos ? data.subarray(0, length * shape[1]) : data };
  }
  const source = [...new Set([...weights.values()].map((w) => w.file))].join(", ") || dir;
  return { model, params: paramsFromHost(host, model.shapes, source), tokenizer, spec, input, classes };
}
