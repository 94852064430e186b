// The Hugging Face folder: what `from_pretrained` (Python transformers, transformers.js) reads.
// Language models in the LlamaForCausalLM layout, whose parameter names distill already uses;
// text classifiers in the BertForSequenceClassification layout, whose names distill's bert uses;
// classifiers (MLP, CNN) have no Hugging Face architecture, so their folder states distill's own
// spec and ships the ONNX graph as the runnable form.
import { writeFileSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { encodeSafetensors, type HostTensor } from "../checkpoint/safetensors.js";
import { FASHION_MNIST_CLASSES } from "../data/fashion-mnist.js";
import { writeDirAtomic } from "../util/fs.js";
import type { ClassifierExportable, Exportable, LMExportable, TextExportable } from "./exportable.js";
import { DISTILL_CONFIG_KEY, hfTokenizerFiles } from "./hf-tokenizer.js";
import { exportOnnx } from "./onnx.js";

/** LlamaForCausalLM's config.json for a distill LM. distill has no grouped-query attention, biases or rope scaling. */
export function llamaConfig(m: LMExportable): Record<string, unknown> {
  const s = m.model.spec;
  const tok = m.tokenizer;
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: s.width,
    intermediate_size: s.hidden ?? 4 * s.width,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.heads,
    head_dim: s.width / s.heads,
    max_position_embeddings: s.context,
    rms_norm_eps: s.normEps ?? 1e-5,
    rope_theta: s.ropeTheta ?? 10000,
    rope_scaling: null,
    vocab_size: m.model.vocab,
    tie_word_embeddings: s.tied === true,
    hidden_act: "silu",
    attention_bias: false,
    attention_dropout: 0,
    mlp_bias: false,
    pretraining_tp: 1,
    initializer_range: 0.02,
    use_cache: true,
    // distill's char and byte tokenizers have no special tokens: generation stops at a length.
    bos_token_id: null,
    eos_token_id: null,
    pad_token_id: null,
    torch_dtype: "float32",
    // The tokenizer distill trained with, so loadHfTeacher can give a student the same kind
    // (an hf tokenizer is tokenizer.json itself), and the spec it was built from.
    [DISTILL_CONFIG_KEY]: { model: s, ...(tok.kind === "hf" ? {} : { tokenizer: tok }) },
  };
}

/** Class names: distill trains classifiers on Fashion-MNIST only, whose ten classes are known. */
function labels(m: ClassifierExportable): string[] {
  const k = m.input.classes;
  return k === FASHION_MNIST_CLASSES.length ? FASHION_MNIST_CLASSES.slice() : Array.from({ length: k }, (_, i) => `LABEL_${i}`);
}

/**
 * A classifier's config.json. No Hugging Face architecture fits distill's MLP and CNN, so
 * `model_type` is "distill" and `distill.model` is the spec distill rebuilds it from; clients run
 * onnx/model.onnx (`pixel_values` [batch, C, H, W] = byte / 255 → `logits`).
 */
export function classifierConfig(m: ClassifierExportable): Record<string, unknown> {
  const names = labels(m);
  const spec = m.model.spec;
  return {
    architectures: [`Distill${spec.type === "cnn" ? "CNN" : "MLP"}ForImageClassification`],
    model_type: "distill",
    num_labels: names.length,
    id2label: Object.fromEntries(names.map((n, i) => [String(i), n])),
    label2id: Object.fromEntries(names.map((n, i) => [n, i])),
    image_size: [m.input.height, m.input.width],
    num_channels: m.input.channels,
    torch_dtype: "float32",
    [DISTILL_CONFIG_KEY]: { model: spec, input: m.input },
  };
}

/**
 * BertForSequenceClassification's config.json for a distill encoder: distill's bert is HF's
 * (absolute positions, erf GELU, LayerNorm eps 1e-12, two token types), so transformers and
 * transformers.js build the same model from it and model.safetensors.
 */
export function bertConfig(m: TextExportable): Record<string, unknown> {
  const s = m.model.spec;
  const shape = (name: string) => m.model.shapes.find(([n]) => n === name)![1];
  return {
    architectures: ["BertForSequenceClassification"],
    model_type: "bert",
    hidden_size: s.hidden,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    intermediate_size: s.intermediate,
    max_position_embeddings: shape("bert.embeddings.position_embeddings.weight")[0],
    type_vocab_size: shape("bert.embeddings.token_type_embeddings.weight")[0],
    vocab_size: m.input.text.vocab,
    hidden_act: "gelu",
    hidden_dropout_prob: s.dropout ?? 0.1,
    attention_probs_dropout_prob: s.dropout ?? 0.1,
    layer_norm_eps: 1e-12,
    position_embedding_type: "absolute",
    initializer_range: 0.02,
    pad_token_id: m.input.text.padId,
    classifier_dropout: null,
    num_labels: m.classes.length,
    id2label: Object.fromEntries(m.classes.map((n, i) => [String(i), n])),
    label2id: Object.fromEntries(m.classes.map((n, i) => [n, i])),
    problem_type: "single_label_classification",
    torch_dtype: "float32",
    [DISTILL_CONFIG_KEY]: { model: s, input: m.input },
  };
}

/** preprocessor_config.json: resize to the model's size, pixels / 255, no normalisation (grayscale when 1 channel). */
function preprocessorConfig(m: ClassifierExportable): Record<string, unknown> {
  return {
    image_processor_type: "ViTImageProcessor",
    do_resize: true,
    size: { height: m.input.height, width: m.input.width },
    resample: 2,
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: false,
    do_convert_rgb: m.input.channels === 3,
  };
}

/** model.safetensors: F32 tensors by the model's own names (already Hugging Face's for LMs); no lm_head when tied. */
export function hfSafetensors(m: Exportable): Uint8Array {
  const tensors: Record<string, HostTensor> = {};
  for (const [name] of m.model.shapes) {
    const p = m.params[name];
    tensors[name] = { dtype: "F32", shape: p.shape, data: p.data };
  }
  // transformers' safetensors loader refuses a file whose metadata does not say its framework.
  return encodeSafetensors(tensors, { format: "pt" });
}

const json = (x: unknown) => JSON.stringify(x, null, 2) + "\n";

export interface HfFolder {
  dir: string;
  /** Each file written, relative to `dir`, with its size. */
  files: { name: string; bytes: number }[];
  bytes: number;
}

/**
 * Writes DIR/{config.json, model.safetensors, onnx/model.onnx} plus, for LMs, tokenizer.json,
 * tokenizer_config.json, generation_config.json, for text classifiers tokenizer.json and
 * tokenizer_config.json, and for image classifiers preprocessor_config.json.
 * Everything is built, then written into a temporary folder renamed to DIR at the end: a failure
 * leaves nothing behind, and an existing DIR is refused unless `replace` (then swapped whole).
 */
export async function writeHfFolder(m: Exportable, dir: string, opts: { replace?: boolean } = {}): Promise<HfFolder> {
  // Build every file first: an export error (an operator with no ONNX form) touches nothing.
  const files: [string, string | Uint8Array][] = [["model.safetensors", hfSafetensors(m)], ["onnx/model.onnx", exportOnnx(m)]];
  if (m.family === "lm") {
    const tok = hfTokenizerFiles(m.tokenizer);
    files.push(
      ["config.json", json(llamaConfig(m))],
      ["tokenizer.json", json(tok.tokenizer)],
      ["tokenizer_config.json", json({ ...tok.config, model_max_length: m.model.spec.context })],
      // Greedy by default, and never past the context the rotary tables cover.
      ["generation_config.json", json({ bos_token_id: null, eos_token_id: null, pad_token_id: null, do_sample: false, max_length: m.model.spec.context })],
    );
  } else if (m.family === "text") {
    const tok = hfTokenizerFiles(m.tokenizer);
    files.push(
      ["config.json", json(bertConfig(m))],
      ["tokenizer.json", json(tok.tokenizer)],
      // Clients truncate to the rows the model was trained on (at most its position table).
      ["tokenizer_config.json", json({ ...tok.config, model_max_length: m.input.text.length })],
    );
  } else {
    files.push(["config.json", json(classifierConfig(m))], ["preprocessor_config.json", json(preprocessorConfig(m))]);
  }
  await writeDirAtomic(
    dir,
    (tmp) => {
      for (const [name, data] of files) {
        const path = join(tmp, name);
        mkdirSync(join(path, ".."), { recursive: true });
        writeFileSync(path, data);
      }
    },
    opts,
  );
  const listed = files.map(([name]) => ({ name, bytes: statSync(join(dir, name)).size })).sort((a, b) => (a.name < b.name ? -1 : 1));
  return { dir, files: listed, bytes: listed.reduce((n, f) => n + f.bytes, 0) };
}
