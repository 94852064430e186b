// `distill export --format web`: a static folder that runs the model in a browser with
// onnxruntime-web, served by any static file server and fetching nothing from outside itself.
import { copyFileSync, existsSync, lstatSync, readdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import * as ort from "onnxruntime-node";
import type { Exportable, LMExportable, TextExportable } from "./exportable.js";
import { exportOnnx } from "./onnx.js";
import { APP_JS, indexHtml } from "./web-page.js";
import { FASHION_MNIST_CLASSES, FASHION_MNIST_FILES, locateFashionMnist } from "../data/fashion-mnist.js";
import { readIdxGz } from "../data/idx.js";
import { encoderTokenizerFromJSON } from "../text/encoder-tokenizer.js";
import { tokenizerFromJSON } from "../text/tokenizer.js";
import { UserError } from "../util/errors.js";
import { writeDirAtomic } from "../util/fs.js";
import { Rng } from "../util/rng.js";

/** The file that marks a folder as written by writeWebFolder (and holds the page's settings). */
export const WEB_CONFIG = "distill-web.json";

/** onnxruntime-web's plain Wasm build: the ES module, its loader and the SIMD binary (one thread). */
const ORT_FILES = ["ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"];

export interface WebFolderOptions {
  /** Classifier: images to bundle, bytes [n, H·W·C] channels-last (distill's own pixel order). */
  images?: { pixels: Uint8Array[]; labels?: number[]; source: string };
  /** Classifier: Fashion-MNIST folder to take the test images from (else DISTILL_DATA or Debian's). */
  dataDir?: string;
  /** Classifier: how many test images (default 16). */
  count?: number;
  /** Text classifier: texts to bundle (default: a few fixed sentences), with their true classes when known. */
  texts?: { texts: string[]; labels?: number[]; source: string };
  /** LM: the prompt the page starts with, and how many tokens it generates (default 32, within the context). */
  prompt?: string;
  tokens?: number;
  /** The model's ONNX bytes when the caller has them already. */
  onnx?: Uint8Array;
}

/** How the classifier's `pixel_values` are laid out, read from the ONNX input's rank and dimensions. */
export type PixelLayout = "nchw" | "nhwc" | "flat";

export interface ModelIO {
  inputs: { name: string; type: string; shape: (number | string)[] }[];
  outputName: string;
}

/** The ONNX model's input and output names, types and shapes, as onnxruntime sees them. */
export async function modelIO(onnx: Uint8Array): Promise<ModelIO> {
  const s = await ort.InferenceSession.create(onnx);
  try {
    const inputs = s.inputMetadata.map((m) => (m.isTensor ? { name: m.name, type: m.type, shape: [...m.shape] } : { name: m.name, type: "non-tensor", shape: [] }));
    return { inputs, outputName: s.outputNames.includes("logits") ? "logits" : s.outputNames[0] };
  } finally {
    await s.release();
  }
}

export function pixelLayout(shape: (number | string)[], input: { height: number; width: number; channels: number }, source: string): PixelLayout {
  const { height: H, width: W, channels: C } = input;
  if (shape.length === 2) return "flat";
  if (shape.length === 4 && shape[1] === C && shape[2] === H && shape[3] === W) return "nchw";
  if (shape.length === 4 && shape[1] === H && shape[2] === W && shape[3] === C) return "nhwc";
  throw new UserError(`${source}: model.onnx's pixel_values is [${shape.join(", ")}], expected [batch, ${C}, ${H}, ${W}], [batch, ${H}, ${W}, ${C}] or [batch, ${H * W * C}]`);
}

/** Pixels (bytes/255, channels-last as distill reads them) rearranged into the model's layout. */
export function toLayout(px: Float32Array, input: { height: number; width: number; channels: number }, layout: PixelLayout): Float32Array {
  const { height: H, width: W, channels: C } = input;
  if (layout !== "nchw" || C === 1) return px;
  const dim = H * W * C;
  const out = new Float32Array(px.length);
  for (let o = 0; o < px.length; o += dim) {
    for (let h = 0; h < H; h++) for (let w = 0; w < W; w++) for (let c = 0; c < C; c++) out[o + (c * H + h) * W + w] = px[o + (h * W + w) * C + c];
  }
  return out;
}

/** The folder a package's file lives in, found through Node's resolution (never a fixed path). */
function packageFile(spec: string): string {
  return createRequire(import.meta.url).resolve(spec);
}

/**
 * The classifier's bundled images: Fashion-MNIST's first test images when the model takes its
 * shape and the files are found, else seeded random pixels (the page says which).
 */
function bundledImages(m: Extract<Exportable, { family: "classifier" }>, opts: WebFolderOptions): { pixels: number[][]; labels: number[] | null; source: string; classes: string[] } {
  const { height: H, width: W, channels: C, classes: K } = m.input;
  const n = opts.count ?? 16;
  const classes = K === FASHION_MNIST_CLASSES.length ? FASHION_MNIST_CLASSES : Array.from({ length: K }, (_, i) => `class ${i}`);
  if (opts.images) return { pixels: opts.images.pixels.map((p) => Array.from(p)), labels: opts.images.labels ?? null, source: opts.images.source, classes };
  if (H === 28 && W === 28 && C === 1 && K === 10) {
    let dir: string | null = null;
    try {
      dir = locateFashionMnist(opts.dataDir);
    } catch (e) {
      if (!(e instanceof UserError) || opts.dataDir) throw e;
    }
    if (dir) {
      // Only the test split (the training images are not needed): the raw bytes, as stored.
      const file = (base: string) => [join(dir, `${base}.gz`), join(dir, base)].find((p) => existsSync(p))!;
      const images = readIdxGz(file(FASHION_MNIST_FILES.testImages));
      const labels = readIdxGz(file(FASHION_MNIST_FILES.testLabels));
      if (images.dims.length !== 3 || images.dims[1] !== 28 || images.dims[2] !== 28 || labels.dims[0] !== images.dims[0]) {
        throw new UserError(`${dir}: the Fashion-MNIST test files are not 28×28 images with one label each`);
      }
      const k = Math.min(n, images.dims[0]);
      if (labels.data.subarray(0, k).some((y) => y >= K)) throw new UserError(`${dir}: a Fashion-MNIST test label is not below ${K}`);
      const pixels = Array.from({ length: k }, (_, i) => Array.from(images.data.subarray(i * 784, (i + 1) * 784)));
      return { pixels, labels: Array.from(labels.data.subarray(0, k)), source: `the first ${k} Fashion-MNIST test images`, classes };
    }
  }
  const rng = new Rng(20240);
  const pixels = Array.from({ length: n }, () => Array.from({ length: H * W * C }, () => rng.int(256)));
  return { pixels, labels: null, source: `${n} random images (no test set of this model's shape was found to bundle)`, classes };
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A folder we may replace: absent, empty, or one this function wrote before. */
function checkTarget(dir: string): "absent" | "replace" {
  let st;
  try {
    st = lstatSync(dir);
  } catch {
    return "absent";
  }
  if (!st.isDirectory()) throw new UserError(`${dir}: exists and is not a folder; choose another --out`);
  const names = readdirSync(dir);
  if (names.length > 0 && !names.includes(WEB_CONFIG)) throw new UserError(`${dir}: exists and is not an exported web folder (no ${WEB_CONFIG}); choose another --out`);
  return "replace";
}

/** Sentences a text classifier's page starts with when the caller bundles none (not from any data set). */
export const DEFAULT_TEXTS = [
  "Congratulations! You have been selected to win a free prize. Reply now to claim your money.",
  "Can we move tomorrow's meeting to noon? I will bring the draft of the report.",
  "Our nation faces hard choices, and together we will meet them with courage.",
  "Please find attached the minutes of last week's committee meeting.",
  "Limited time offer: cheap loans with no credit check, call today!",
];

/** The text classifier's bundled texts: the caller's, else DEFAULT_TEXTS. */
function bundledTexts(m: TextExportable, opts: WebFolderOptions): { texts: string[]; labels: number[] | null; source: string } {
  const b = opts.texts;
  if (!b) return { texts: DEFAULT_TEXTS, labels: null, source: "example sentences (not from the data the model learned from)" };
  if (b.texts.length === 0) throw new UserError(`${m.source}: no texts to bundle in the browser folder`);
  if (b.labels && (b.labels.length !== b.texts.length || b.labels.some((y) => !Number.isInteger(y) || y < 0 || y >= m.classes.length))) {
    throw new UserError(`${m.source}: the bundled texts need one label each, below ${m.classes.length}`);
  }
  return { texts: b.texts, labels: b.labels ?? null, source: b.source };
}

/**
 * Writes a static folder that runs the model with onnxruntime-web (index.html, its script,
 * model.onnx, the runtime's files, a few bundled inputs): a classifier on test images, an LM
 * generating text, a text classifier on typed and bundled texts (tokenized in the page by the
 * library distill uses, on the same tokenizer.json). Built in a temporary folder beside `dir`
 * and renamed into place at the end (`writeDirAtomic`; an earlier export is moved aside until
 * the new one is in place).
 */
export async function writeWebFolder(m: Exportable, dir: string, opts: WebFolderOptions = {}): Promise<void> {
  const target = resolve(dir);
  const replace = checkTarget(target) === "replace";
  const onnx = opts.onnx ?? exportOnnx(m);
  const io = await modelIO(onnx);
  const config = m.family === "classifier" ? classifierConfig(m, io) : m.family === "text" ? textConfig(m, io) : lmConfig(m, io, opts);
  const texts = m.family === "text" ? bundledTexts(m, opts) : null;
  // checkTarget has refused anything but an absent, empty or earlier web folder.
  await writeDirAtomic(
    target,
    (tmp) => {
      writeFileSync(join(tmp, "model.onnx"), onnx);
      const ortDir = dirname(packageFile("onnxruntime-web/ort-wasm-simd-threaded.wasm"));
      for (const f of ORT_FILES) copyFileSync(join(ortDir, f), join(tmp, f));
      writeFileSync(join(tmp, "app.mjs"), APP_JS);
      const what = { classifier: "image classifier", lm: "language model", text: "text classifier" }[m.family];
      const title = `${m.model.name}: ${what} in the browser`;
      writeFileSync(join(tmp, "index.html"), indexHtml(escapeHtml(title)));
      if (m.family === "classifier") {
        const b = bundledImages(m, opts);
        writeFileSync(join(tmp, "inputs.json"), JSON.stringify({ source: b.source, labels: b.labels, pixels: b.pixels }));
        (config as Record<string, unknown>).classes = b.classes;
      } else if (texts) {
        writeFileSync(join(tmp, "inputs.json"), JSON.stringify(texts));
      }
      if (m.family !== "classifier" && m.tokenizer.kind === "hf") {
        // The same tokenizer library distill uses (self-contained ES module), and the vocabulary.
        copyFileSync(join(dirname(packageFile("@huggingface/tokenizers")), "tokenizers.min.mjs"), join(tmp, "tokenizers.min.mjs"));
        writeFileSync(join(tmp, "tokenizer.json"), JSON.stringify(m.tokenizer.json));
      }
      writeFileSync(join(tmp, WEB_CONFIG), JSON.stringify(config, null, 2) + "\n");
    },
    { replace },
  );
}

function classifierConfig(m: Extract<Exportable, { family: "classifier" }>, io: ModelIO): Record<string, unknown> {
  const input = io.inputs[0];
  if (!input) throw new UserError(`${m.source}: the exported model has no input`);
  return { family: "classifier", model: m.model.name, input: m.input, inputName: input.name, outputName: io.outputName, layout: pixelLayout(input.shape, m.input, m.source) };
}

function lmConfig(m: LMExportable, io: ModelIO, opts: WebFolderOptions): Record<string, unknown> {
  const vocab = tokenizerFromJSON(m.tokenizer, m.source).vocabSize;
  if (vocab !== m.model.vocab) throw new UserError(`${m.source}: the tokenizer has ${vocab} tokens but the model's vocabulary is ${m.model.vocab}`);
  const context = m.model.spec.context;
  const tokens = Math.max(1, Math.min(opts.tokens ?? 32, context - 1));
  const tokenizer = m.tokenizer.kind === "hf" ? { kind: "hf", config: m.tokenizer.config ?? {} } : m.tokenizer;
  return { family: "lm", model: m.model.name, context, vocab: m.model.vocab, inputs: io.inputs, outputName: io.outputName, tokenizer, prompt: opts.prompt ?? defaultPrompt(m), tokens };
}

/**
 * What the page needs to build distill's rows (TextTokenizer.encodeBatch): the row length, the
 * [CLS]/[SEP]/[PAD] ids, the class names and the model's inputs. The tokenizer is checked here
 * against the model so the page never feeds ids the model has no embedding for.
 */
function textConfig(m: TextExportable, io: ModelIO): Record<string, unknown> {
  const tok = encoderTokenizerFromJSON(m.tokenizer);
  const t = m.input.text;
  if (tok.vocabSize !== t.vocab) throw new UserError(`${m.source}: the tokenizer has ${tok.vocabSize} tokens but the model's vocabulary is ${t.vocab}`);
  if (tok.padId !== t.padId) throw new UserError(`${m.source}: the tokenizer pads with id ${tok.padId} but the model with ${t.padId}`);
  const known = ["input_ids", "attention_mask", "token_type_ids"];
  const odd = io.inputs.find((i) => !known.includes(i.name));
  if (odd || !io.inputs.some((i) => i.name === "input_ids")) throw new UserError(`${m.source}: model.onnx's inputs are ${io.inputs.map((i) => i.name).join(", ")}; the page feeds ${known.join(", ")}`);
  return {
    family: "text",
    model: m.model.name,
    classes: m.classes,
    length: t.length,
    vocab: t.vocab,
    padId: tok.padId,
    clsId: tok.clsId,
    sepId: tok.sepId,
    unkId: tok.unkId,
    inputs: io.inputs,
    outputName: io.outputName,
    tokenizer: { kind: "hf", config: m.tokenizer.config ?? {} },
  };
}

/** A prompt the tokenizer can encode: "The " when it can, else its first few characters. */
function defaultPrompt(m: LMExportable): string {
  const t = m.tokenizer;
  if (t.kind !== "char") return "The ";
  const have = new Set(t.chars);
  return [..."The "].every((c) => have.has(c)) ? "The " : t.chars.slice(0, 4).join("");
}
