// Tokenizers for language-model distillation: characters, UTF-8 bytes, or a Hugging Face
// tokenizer.json. A tokenizer is saved with a checkpoint as TokenizerJSON and restored from it
// with tokenizerFromJSON, so a student always decodes with the vocabulary it was trained on.

import { existsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { Tokenizer as HfTokenizerClass } from "@huggingface/tokenizers";
import { UserError } from "../util/errors.js";
import { readFileBounded } from "../util/fs.js";

// The package's .d.ts files import each other without extensions, which NodeNext resolution
// cannot follow, so its class arrives untyped: this is the part of its API used here.
interface HfTokenizer {
  model: { vocab: (string | undefined)[] } | null;
  encode(text: string, options: { add_special_tokens: boolean }): { ids: number[]; tokens: string[] };
  decode(ids: number[], options: { skip_special_tokens: boolean; clean_up_tokenization_spaces: boolean }): string;
}
const HfTokenizerCtor = HfTokenizerClass as unknown as new (tokenizer: object, config: object) => HfTokenizer;

export type TokenizerJSON =
  | { kind: "char"; chars: string[] }
  | { kind: "byte" }
  // `config` is the optional tokenizer_config.json beside the tokenizer.json (special tokens,
  // clean-up flag); older saves without it restore with the library's defaults.
  | { kind: "hf"; json: unknown; config?: unknown };

export interface Tokenizer {
  kind: "char" | "byte" | "hf";
  vocabSize: number;
  encode(text: string): Int32Array;
  decode(ids: ArrayLike<number>): string;
  toJSON(): TokenizerJSON;
}

const REPLACEMENT = "\uFFFD";

/** id → token text, for comparing vocabularies id by id (checkSameVocab). */
const tokenLists = new WeakMap<Tokenizer, () => readonly (string | undefined)[]>();

function isValidId(id: number, vocabSize: number): boolean {
  return Number.isInteger(id) && id >= 0 && id < vocabSize;
}

// ---------------------------------------------------------------------------------------------
// Characters

/**
 * Character tokenizer. The vocabulary is the sorted set of Unicode code points of the corpus
 * (a non-BMP character such as an emoji is one token, not two UTF-16 halves).
 *
 * Unknown characters: id 0 is reserved for "unknown"; code point `chars[i]` has id i + 1, so
 * vocabSize = chars.length + 1. A character that is not in the vocabulary (e.g. in a prompt typed
 * at generation time) encodes to 0 instead of failing, and 0 decodes as U+FFFD. Any other id
 * outside [0, vocabSize) also decodes as U+FFFD, so sampling from a model whose output layer is
 * wider than the vocabulary never crashes.
 */
class CharTokenizer implements Tokenizer {
  readonly kind = "char" as const;
  readonly vocabSize: number;
  private readonly chars: string[];
  private readonly bmp = new Int32Array(0x10000); // code unit → id (0 = unknown)
  private readonly astral = new Map<number, number>(); // code point ≥ 0x10000 → id

  constructor(chars: string[]) {
    this.chars = chars.slice();
    this.vocabSize = chars.length + 1;
    chars.forEach((c, i) => {
      const cp = c.codePointAt(0)!;
      if (cp < 0x10000) this.bmp[cp] = i + 1;
      else this.astral.set(cp, i + 1);
    });
  }

  encode(text: string): Int32Array {
    const out = new Int32Array(text.length);
    let n = 0;
    for (let i = 0; i < text.length; i++) {
      const u = text.charCodeAt(i);
      if (u >= 0xd800 && u <= 0xdbff && i + 1 < text.length) {
        const lo = text.charCodeAt(i + 1);
        if (lo >= 0xdc00 && lo <= 0xdfff) {
          out[n++] = this.astral.get((u - 0xd800) * 0x400 + (lo - 0xdc00) + 0x10000) ?? 0;
          i++;
          continue;
        }
      }
      out[n++] = this.bmp[u]; // a lone surrogate is its own code point
    }
    return out.slice(0, n);
  }

  decode(ids: ArrayLike<number>): string {
    const parts: string[] = new Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      parts[i] = id >= 1 && isValidId(id, this.vocabSize) ? this.chars[id - 1] : REPLACEMENT;
    }
    return parts.join("");
  }

  toJSON(): TokenizerJSON {
    return { kind: "char", chars: this.chars.slice() };
  }

  tokens(): readonly (string | undefined)[] {
    return [undefined, ...this.chars];
  }
}

function makeChar(chars: string[]): Tokenizer {
  const t = new CharTokenizer(chars);
  tokenLists.set(t, () => t.tokens());
  return t;
}

/** A character tokenizer whose vocabulary is every code point in `corpus` (plus id 0 = unknown). */
export function charTokenizer(corpus: string): Tokenizer {
  const seen = new Set<number>();
  for (const ch of corpus) seen.add(ch.codePointAt(0)!);
  if (seen.size === 0) throw new UserError("char tokenizer: the corpus is empty, so there is no vocabulary");
  const cps = [...seen].sort((a, b) => a - b);
  return makeChar(cps.map((cp) => String.fromCodePoint(cp)));
}

// ---------------------------------------------------------------------------------------------
// Bytes

/**
 * UTF-8 byte tokenizer, vocabulary 256. Decoding never fails: a sequence cut in the middle of a
 * multi-byte character, or any id outside 0..255, decodes as U+FFFD.
 */
class ByteTokenizer implements Tokenizer {
  readonly kind = "byte" as const;
  readonly vocabSize = 256;
  private readonly encoder = new TextEncoder();
  private readonly decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

  encode(text: string): Int32Array {
    return Int32Array.from(this.encoder.encode(text));
  }

  decode(ids: ArrayLike<number>): string {
    const bytes = new Uint8Array(ids.length);
    // 0xFF never occurs in UTF-8, so an invalid id becomes a byte that decodes to U+FFFD.
    for (let i = 0; i < ids.length; i++) bytes[i] = isValidId(ids[i], 256) ? ids[i] : 0xff;
    return this.decoder.decode(bytes);
  }

  toJSON(): TokenizerJSON {
    return { kind: "byte" };
  }
}

export function byteTokenizer(): Tokenizer {
  const t = new ByteTokenizer();
  tokenLists.set(t, () => Array.from({ length: 256 }, (_, i) => String(i)));
  return t;
}

// ---------------------------------------------------------------------------------------------
// Hugging Face tokenizer.json (through @huggingface/tokenizers, pure JS)

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Wraps a Hugging Face tokenizer. encode() adds no special tokens (no BOS/EOS from the
 * post-processor): corpus text is one token stream, and prompts continue it. decode() keeps
 * special tokens and does no "clean-up" of spaces before punctuation unless the config sets
 * clean_up_tokenization_spaces: true, so decode(encode(s)) gives s back for lossless (e.g.
 * byte-level BPE) tokenizers. Ids outside [0, vocabSize) decode as U+FFFD.
 */
class HfTokenizerWrapper implements Tokenizer {
  readonly kind = "hf" as const;
  readonly vocabSize: number;
  private readonly tok: HfTokenizer;
  private readonly cleanUp: boolean;

  constructor(
    private readonly json: Record<string, unknown>,
    private readonly config: Record<string, unknown> | undefined,
    private readonly source: string,
  ) {
    // The library requires every top-level key; a hand-written file may leave out the null ones.
    const full = { normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, added_tokens: [], ...json };
    try {
      this.tok = new HfTokenizerCtor(full, config ?? {});
    } catch (e) {
      throw new UserError(`${source}: cannot build the tokenizer: ${errorText(e)}`);
    }
    const vocab = this.tok.model?.vocab;
    if (!vocab || vocab.length === 0) throw new UserError(`${source}: the tokenizer has an empty vocabulary`);
    this.vocabSize = vocab.length;
    this.cleanUp = config?.clean_up_tokenization_spaces === true;
  }

  encode(text: string): Int32Array {
    if (text.length === 0) return new Int32Array(0);
    const enc = this.tok.encode(text, { add_special_tokens: false });
    const out = new Int32Array(enc.ids.length);
    for (let i = 0; i < enc.ids.length; i++) {
      const id = enc.ids[i] as number | undefined;
      if (id === undefined) {
        throw new UserError(
          `${this.source}: cannot encode ${JSON.stringify(enc.tokens[i])}: it is not in the vocabulary and the tokenizer has no unknown token`,
        );
      }
      out[i] = id;
    }
    return out;
  }

  decode(ids: ArrayLike<number>): string {
    // Decode runs of valid ids; an invalid id becomes U+FFFD between them.
    let out = "";
    let run: number[] = [];
    const flush = () => {
      if (run.length > 0) out += this.tok.decode(run, { skip_special_tokens: false, clean_up_tokenization_spaces: this.cleanUp });
      run = [];
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (isValidId(id, this.vocabSize) && this.tok.model!.vocab[id] !== undefined) run.push(id);
      else {
        flush();
        out += REPLACEMENT;
      }
    }
    flush();
    return out;
  }

  toJSON(): TokenizerJSON {
    return this.config === undefined ? { kind: "hf", json: this.json } : { kind: "hf", json: this.json, config: this.config };
  }

  tokens(): readonly (string | undefined)[] {
    return this.tok.model!.vocab;
  }
}

/**
 * A tokenizer from a parsed Hugging Face `tokenizer.json` (and optionally its
 * `tokenizer_config.json`). `source` names the file in error messages.
 */
export function hfTokenizer(tokenizerJson: unknown, config?: unknown, source = "tokenizer.json"): Tokenizer {
  if (!isObject(tokenizerJson) || !isObject(tokenizerJson.model)) {
    throw new UserError(`${source}: not a Hugging Face tokenizer.json (no "model" object)`);
  }
  if (config !== undefined && !isObject(config)) throw new UserError(`${source}: the tokenizer config must be a JSON object`);
  // Our own copies: the caller may change its objects later, and toJSON must give what we built from.
  const json = structuredClone(tokenizerJson);
  const cfg = config === undefined ? undefined : structuredClone(config);
  const t = new HfTokenizerWrapper(json, cfg, source);
  tokenLists.set(t, () => t.tokens());
  return t;
}

/** The largest tokenizer file read (real ones are a few MB; a path to a disk image is a mistake). */
const MAX_TOKENIZER_BYTES = 2 ** 30;

function readJsonFile(path: string, what: string): unknown {
  const bytes = readFileBounded(path, MAX_TOKENIZER_BYTES, what);
  // JSON.parse's message quotes the start of the file: for a path to the wrong file (a system
  // file, a key) that would print its content. Say what is wrong instead.
  if (bytes.includes(0)) throw new UserError(`${path}: binary data, not JSON (expected a ${what})`);
  try {
    return JSON.parse(bytes.toString("utf8"));
  } catch {
    throw new UserError(`${path}: not valid JSON (expected a ${what})`);
  }
}

/**
 * Reads a Hugging Face tokenizer.json. `path` is the file, or a folder holding `tokenizer.json`.
 * A `tokenizer_config.json` beside it, if present, is read too.
 */
export function loadTokenizerFile(path: string): Tokenizer {
  if (!existsSync(path)) throw new UserError(`${path}: no such tokenizer file`);
  let file = path;
  if (statSync(path).isDirectory()) {
    file = join(path, "tokenizer.json");
    if (!existsSync(file)) throw new UserError(`${path}: folder has no tokenizer.json`);
  }
  const json = readJsonFile(file, "tokenizer");
  if (!isObject(json) || !isObject(json.model)) {
    throw new UserError(`${file}: not a Hugging Face tokenizer.json (no "model" object)`);
  }
  const configPath = join(dirname(file), "tokenizer_config.json");
  const config = existsSync(configPath) ? readJsonFile(configPath, "tokenizer config") : undefined;
  if (config !== undefined && !isObject(config)) throw new UserError(`${configPath}: must be a JSON object`);
  return hfTokenizer(json, config, file);
}

// ---------------------------------------------------------------------------------------------
// Saving, restoring, comparing

/** Restores a tokenizer saved with toJSON(); `source` (e.g. the checkpoint path) names it in errors. */
export function tokenizerFromJSON(j: TokenizerJSON, source: string): Tokenizer {
  const raw = j as unknown;
  if (!isObject(raw)) throw new UserError(`${source}: tokenizer must be an object`);
  switch (raw.kind) {
    case "byte":
      return byteTokenizer();
    case "char": {
      const chars = raw.chars;
      if (!Array.isArray(chars) || chars.length === 0) {
        throw new UserError(`${source}: tokenizer.chars must be a non-empty list of characters`);
      }
      const seen = new Set<string>();
      chars.forEach((c: unknown, i) => {
        if (typeof c !== "string" || c.length === 0 || [...c].length !== 1) {
          throw new UserError(`${source}: tokenizer.chars[${i}] must be one character, got ${JSON.stringify(c)}`);
        }
        if (seen.has(c)) throw new UserError(`${source}: tokenizer.chars[${i}] repeats ${JSON.stringify(c)}`);
        seen.add(c);
      });
      return makeChar(chars as string[]);
    }
    case "hf":
      return hfTokenizer(raw.json, raw.config, `${source} (tokenizer.json)`);
    default:
      throw new UserError(`${source}: tokenizer.kind must be "char", "byte" or "hf", got ${JSON.stringify(raw.kind)}`);
  }
}

/**
 * Teacher and student must share one vocabulary, id for id, for their distributions to be
 * compared. A mismatch is a UserError naming `where`.
 */
export function checkSameVocab(teacher: Tokenizer, student: Tokenizer, where: string): void {
  if (teacher.vocabSize !== student.vocabSize) {
    throw new UserError(
      `${where}: teacher vocabulary has ${teacher.vocabSize} tokens, student ${student.vocabSize}: they must match`,
    );
  }
  if (teacher.kind !== student.kind) {
    throw new UserError(
      `${where}: teacher tokenizer is ${teacher.kind} and student ${student.kind} (both ${teacher.vocabSize} tokens): they must match`,
    );
  }
  const a = tokenLists.get(teacher)?.();
  const b = tokenLists.get(student)?.();
  if (!a || !b) return; // a Tokenizer from elsewhere: size and kind are all we can check
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      throw new UserError(
        `${where}: teacher and student vocabularies (${teacher.vocabSize} tokens each) differ at id ${i}: ${JSON.stringify(a[i] ?? null)} vs ${JSON.stringify(b[i] ?? null)}`,
      );
    }
  }
}
