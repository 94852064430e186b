// Tokenizers for encoder (BERT-style) classification: a Hugging Face `tokenizer.json`
// (WordPiece or BPE) read by @huggingface/tokenizers, or one trained on the recipe's corpus by
// Hugging Face's own `tokenizers` library (its Node binding). Every row is
// [CLS] tokens… [SEP] then padding, cut to `maxLength` (truncation is counted, not silent).
//
// Training and encoding are both the Hugging Face libraries: the binding learns the vocabulary
// (and merges), and the tokenizer.json built from them is what @huggingface/tokenizers encodes
// with, here and in every Hugging Face folder the student is exported to.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type * as HfTrain from "tokenizers";
import { hfTokenizer, loadTokenizerFile, type Tokenizer, type TokenizerJSON } from "./tokenizer.js";
import { UserError } from "../util/errors.js";
import { readFileBounded } from "../util/fs.js";

// A CommonJS native addon: loaded through require so its named exports are certain.
const requireHere = createRequire(import.meta.url);
const trainLib = requireHere("tokenizers") as typeof HfTrain;

export interface EncodedTexts {
  /** n × maxLength token ids as exact float32 integers (the rows the model reads), padded with padId. */
  ids: Float32Array;
  /** Tokens per row before padding, after truncation ([CLS] and [SEP] included). */
  lengths: Int32Array;
  /** How many rows were longer than maxLength and were cut. */
  truncated: number;
}

export interface TextTokenizer {
  kind: "wordpiece" | "bpe";
  vocabSize: number;
  padId: number;
  clsId: number;
  sepId: number;
  unkId: number;
  /** Encodes `texts` into fixed-length rows: [CLS] … [SEP], truncated to `maxLength`, padded. */
  encodeBatch(texts: string[], maxLength: number): EncodedTexts;
  /** Token strings of one encoded row (for tests and reports). */
  tokens(text: string): string[];
  /** The tokenizer.json (and tokenizer_config.json) a Hugging Face folder carries. */
  toJSON(): Extract<TokenizerJSON, { kind: "hf" }>;
}

export interface TrainTokenizerOptions {
  type: "wordpiece" | "bpe";
  /** Upper bound on the vocabulary (special tokens included). */
  vocabSize: number;
  /** Lower-case before tokenizing (BERT uncased); default true for WordPiece, false for BPE. */
  lowercase?: boolean;
}

type HfJSON = Extract<TokenizerJSON, { kind: "hf" }>;

/** The special tokens, in the order they take ids 0..4 in a trained tokenizer. */
const SPECIALS = {
  // BERT: [PAD] 0 as in bert-base-uncased, so zero-padded rows are padding.
  wordpiece: { pad: "[PAD]", unk: "[UNK]", cls: "[CLS]", sep: "[SEP]", mask: "[MASK]" },
  // RoBERTa's order: <s> 0, <pad> 1, </s> 2, <unk> 3, <mask> 4.
  bpe: { cls: "<s>", pad: "<pad>", sep: "</s>", unk: "<unk>", mask: "<mask>" },
} as const;

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/** token → id over the model's vocabulary and the added tokens (which win, as in the library). */
function vocabOf(json: Record<string, unknown>, source: string): Map<string, number> {
  const model = json.model as Record<string, unknown>;
  const out = new Map<string, number>();
  if (!isObject(model.vocab)) throw new UserError(`${source}: model.vocab must be an object of token → id`);
  for (const [t, id] of Object.entries(model.vocab)) if (typeof id === "number") out.set(t, id);
  if (Array.isArray(json.added_tokens)) {
    for (const a of json.added_tokens as unknown[]) {
      if (isObject(a) && typeof a.content === "string" && typeof a.id === "number") out.set(a.content, a.id);
    }
  }
  return out;
}

class EncoderTokenizer implements TextTokenizer {
  readonly kind: "wordpiece" | "bpe";
  readonly vocabSize: number;
  readonly padId: number;
  readonly clsId: number;
  readonly sepId: number;
  readonly unkId: number;
  private readonly idToToken: string[] = [];

  constructor(
    private readonly inner: Tokenizer,
    private readonly saved: HfJSON,
    source: string,
  ) {
    const json = saved.json as Record<string, unknown>;
    const type = (json.model as Record<string, unknown>).type;
    if (type !== "WordPiece" && type !== "BPE") {
      throw new UserError(`${source}: model.type must be WordPiece or BPE for an encoder, got ${JSON.stringify(type)}`);
    }
    this.kind = type === "WordPiece" ? "wordpiece" : "bpe";
    const vocab = vocabOf(json, source);
    // BERT's names, or RoBERTa's (<s>, </s>, <pad>, <unk>) when a BPE file does not have BERT's.
    const bertNames = SPECIALS.wordpiece;
    const names = this.kind === "bpe" && !vocab.has(bertNames.cls) ? SPECIALS.bpe : bertNames;
    const find = (role: "pad" | "cls" | "sep" | "unk"): number => {
      const id = vocab.get(names[role]);
      if (id === undefined) throw new UserError(`${source}: no ${names[role]} token (the ${role} token a ${this.kind === "bpe" ? "BPE" : "WordPiece"} encoder needs)`);
      return id;
    };
    this.padId = find("pad");
    this.clsId = find("cls");
    this.sepId = find("sep");
    this.unkId = find("unk");
    let top = inner.vocabSize - 1;
    for (const [t, id] of vocab) {
      this.idToToken[id] = t;
      top = Math.max(top, id);
    }
    this.vocabSize = top + 1;
  }

  private body(text: string): Int32Array {
    return this.inner.encode(text);
  }

  /**
   * The tokens of `text`, or, when it has more than `keep`, at least its first keep + 1 (enough
   * to cut and to count the cut). A long text (an e-mail, a whole address) is encoded only up to
   * a whitespace well past what the row can hold: BERT's, byte-level, whitespace and Metaspace
   * pre-tokenizers split at whitespace and the normalizers act character by character, so that
   * prefix's tokens are the whole text's first tokens (test/encoder-tokenizer.test.ts compares
   * them with whole texts encoded by the Rust library). Too few tokens: a longer prefix.
   */
  private head(text: string, keep: number): Int32Array {
    // Rarely more than 6 characters a token; a prefix too short is grown fourfold.
    for (let chars = 6 * (keep + 2); text.length > 2 * chars; chars *= 4) {
      const cut = text.slice(0, chars).search(/\s\S*$/);
      if (cut > 0) {
        const ids = this.body(text.slice(0, cut));
        if (ids.length > keep) return ids;
      }
    }
    return this.body(text);
  }

  encodeBatch(texts: string[], maxLength: number): EncodedTexts {
    if (!Number.isInteger(maxLength) || maxLength < 2) throw new UserError(`maximum length must be at least 2 ([CLS] and [SEP]), got ${maxLength}`);
    const n = texts.length;
    const ids = new Float32Array(n * maxLength).fill(this.padId);
    const lengths = new Int32Array(n);
    let truncated = 0;
    for (let r = 0; r < n; r++) {
      let body = this.head(texts[r], maxLength - 2);
      if (body.length > maxLength - 2) {
        truncated++;
        body = body.subarray(0, maxLength - 2);
      }
      const row = r * maxLength;
      ids[row] = this.clsId;
      ids.set(body, row + 1);
      ids[row + 1 + body.length] = this.sepId;
      lengths[r] = body.length + 2;
    }
    return { ids, lengths, truncated };
  }

  tokens(text: string): string[] {
    return [this.clsId, ...this.body(text), this.sepId].map((id) => this.idToToken[id] ?? `<${id}>`);
  }

  toJSON(): HfJSON {
    return structuredClone(this.saved);
  }
}

/** Reads a tokenizer.json (WordPiece or BPE model); `where` names the recipe field in errors. */
export function loadEncoderTokenizer(path: string, where: string): TextTokenizer {
  let inner: Tokenizer;
  try {
    inner = loadTokenizerFile(path);
  } catch (e) {
    if (e instanceof UserError) throw new UserError(`${where}: ${e.message}`);
    throw e;
  }
  return new EncoderTokenizer(inner, inner.toJSON() as HfJSON, `${where}: ${path}`);
}

/** Restores a tokenizer saved with a checkpoint or written into a Hugging Face folder. */
export function encoderTokenizerFromJSON(j: HfJSON): TextTokenizer {
  if (!isObject(j) || j.kind !== "hf") throw new UserError(`encoder tokenizer: expected a Hugging Face tokenizer (kind "hf")`);
  const inner = hfTokenizer(j.json, j.config, "tokenizer.json");
  return new EncoderTokenizer(inner, inner.toJSON() as HfJSON, "tokenizer.json");
}

// ---------------------------------------------------------------------------------------------
// Training

/** Private-use planes 15 and 16: a word's first character and its continuations as symbols. */
const FIRST_BASE = 0xf0000;
const CONT_BASE = 0x100000;
const PLANE = 0xfffe;

/**
 * The texts as WordPiece's trainer sees them, each word written as symbols that say whether a
 * character starts the word or continues it ("##"). The binding's WordPiece trainer gives ids to
 * the "##" symbols in hash-map order, so ties between equally frequent pairs break differently
 * from run to run (the vocabulary itself changed between runs on the same texts). Its BPE trainer
 * orders ties by symbol id over a sorted alphabet and is deterministic; and HF's WordPiece trainer
 * is exactly that BPE trainer over words with "##"-marked continuations. So the BPE trainer runs
 * on these marked words, and `unmark` turns its tokens back into WordPiece's.
 */
function markWords(texts: string[], lowercase: boolean): { lines: string[]; first: string[]; cont: string[] } {
  const normalizer = trainLib.bertNormalizer({ cleanText: true, handleChineseChars: true, stripAccents: lowercase, lowercase });
  const firstOf = new Map<string, string>();
  const contOf = new Map<string, string>();
  const first: string[] = [];
  const cont: string[] = [];
  const symbol = (c: string, map: Map<string, string>, list: string[], base: number): string => {
    let s = map.get(c);
    if (s === undefined) {
      if (list.length >= PLANE) throw new UserError(`tokenizer training: more than ${PLANE} distinct characters in the corpus`);
      s = String.fromCodePoint(base + list.length);
      map.set(c, s);
      list.push(c);
    }
    return s;
  };
  const lines = texts.map((text) =>
    bertWords(normalizer.normalizeString(text))
      .map((word) => {
        const chars = [...word];
        return chars.map((c, i) => (i === 0 ? symbol(c, firstOf, first, FIRST_BASE) : symbol(c, contOf, cont, CONT_BASE))).join("");
      })
      .join(" "),
  );
  return { lines, first, cont };
}

/**
 * BertPreTokenizer's words: split at whitespace, every punctuation character a word of its own
 * (BERT counts the ASCII symbols as punctuation too). The binding's preTokenizeString gives the
 * same words but builds an object per word (30 s over SpamAssassin, against 1 s here); encoding
 * still uses the library's own BertPreTokenizer, so a difference could only change training
 * counts (test/encoder-tokenizer.test.ts compares the two).
 */
const BERT_WORD = /[\p{P}!-/:-@[-`{-~]|[^\s\p{P}!-/:-@[-`{-~]+/gu;
export function bertWords(normalized: string): string[] {
  return normalized.match(BERT_WORD) ?? [];
}

function unmark(token: string, first: string[], cont: string[]): string {
  const cps = [...token].map((c) => c.codePointAt(0)!);
  const chars = cps.map((cp) => (cp >= CONT_BASE ? cont[cp - CONT_BASE] : first[cp - FIRST_BASE]));
  return cps[0] >= CONT_BASE ? `##${chars.join("")}` : chars.join("");
}

/**
 * Runs the binding's trainer on `lines` (one text each) and returns its saved tokenizer.json.
 * In a child process: the native trainer writes blank lines (its hidden progress bars) straight
 * to the process's stdout, which would break the command's own output.
 */
function trainOnLines(preTokenizer: "whitespace" | "byte-level", lines: string[]): Record<string, unknown> {
  const dir = mkdtempSync(join(tmpdir(), "distill-tokenizer-"));
  try {
    const corpus = join(dir, "corpus.txt");
    const out = join(dir, "tokenizer.json");
    writeFileSync(corpus, lines.map((l) => l.replace(/[\r\n]+/g, " ")).join("\n") + "\n");
    const script = `
      const [lib, pre, corpus, out] = process.argv.slice(1);
      const T = require(lib);
      const t = new T.Tokenizer(T.BPE.empty());
      t.setPreTokenizer(pre === "whitespace" ? T.whitespaceSplitPreTokenizer() : T.byteLevelPreTokenizer(false, true));
      t.train([corpus]);
      t.save(out, false);`;
    const p = spawnSync(process.execPath, ["-e", script, requireHere.resolve("tokenizers"), preTokenizer, corpus, out], {
      stdio: ["ignore", "ignore", "pipe"],
      encoding: "utf8",
    });
    if (p.status !== 0) throw new Error(`tokenizer training failed: ${p.stderr || p.error?.message || `exit ${p.status}`}`);
    return JSON.parse(readFileBounded(out, 2 ** 30, "trained tokenizer").toString("utf8")) as Record<string, unknown>;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The trained tokens in the trainer's id order: its alphabet, then one per merge, in merge order. */
function inIdOrder(vocab: Record<string, number>): string[] {
  return Object.entries(vocab)
    .sort((a, b) => a[1] - b[1])
    .map(([t]) => t);
}

const addedToken = (content: string, id: number) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });

/** Trains a tokenizer on `texts` (the training split only). Deterministic for the same texts. */
export function trainEncoderTokenizer(texts: string[], opts: TrainTokenizerOptions): TextTokenizer {
  if (texts.length === 0) throw new UserError("tokenizer training: no texts");
  const specials = Object.values(SPECIALS[opts.type === "wordpiece" ? "wordpiece" : "bpe"]);
  const names = SPECIALS[opts.type === "wordpiece" ? "wordpiece" : "bpe"];
  const byteAlphabet = opts.type === "bpe" ? trainLib.byteLevelAlphabet().sort() : [];
  const least = specials.length + byteAlphabet.length + 1;
  if (!Number.isInteger(opts.vocabSize) || opts.vocabSize < least) {
    throw new UserError(`tokenizer.vocabSize: must be an integer of at least ${least} for ${opts.type}, got ${opts.vocabSize}`);
  }
  // The binding's train() takes no trainer options: no vocabulary size (it stops at its default
  // 30,000) and no special tokens (added ones are ignored, and its ids start at 0, where the
  // specials belong). So the specials are put at ids 0..4 here, and the vocabulary is cut to
  // `vocabSize` keeping the trainer's own order (alphabet, then merges as learned), which is
  // what its vocab_size option would have kept.
  const vocab: Record<string, number> = Object.create(null) as Record<string, number>;
  specials.forEach((s, i) => (vocab[s] = i));
  let size = specials.length;
  // A trained token equal to a special's text (say "<s>" in HTML mail) keeps the special's id.
  const add = (t: string) => {
    if (size < opts.vocabSize && !Object.hasOwn(vocab, t)) vocab[t] = size++;
  };
  let json: Record<string, unknown>;
  if (opts.type === "wordpiece") {
    const lowercase = opts.lowercase ?? true;
    const { lines, first, cont } = markWords(texts, lowercase);
    const trained = trainOnLines("whitespace", lines);
    for (const t of inIdOrder((trained.model as { vocab: Record<string, number> }).vocab)) add(unmark(t, first, cont));
    json = {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: specials.map((s, i) => addedToken(s, i)),
      normalizer: { type: "BertNormalizer", clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase },
      pre_tokenizer: { type: "BertPreTokenizer" },
      post_processor: { type: "BertProcessing", sep: [names.sep, vocab[names.sep]], cls: [names.cls, vocab[names.cls]] },
      decoder: { type: "WordPiece", prefix: "##", cleanup: true },
      model: { type: "WordPiece", unk_token: names.unk, continuing_subword_prefix: "##", max_input_chars_per_word: 100, vocab: { ...vocab } },
    };
  } else {
    const lowercase = opts.lowercase ?? false;
    const lines = lowercase ? texts.map((t) => t.toLowerCase()) : texts;
    const trained = trainOnLines("byte-level", lines);
    // Every byte, seen in training or not, so any text encodes (byte-level BPE has no unknown).
    for (const c of byteAlphabet) add(c);
    for (const t of inIdOrder((trained.model as { vocab: Record<string, number> }).vocab)) add(t);
    const merges = ((trained.model as { merges: unknown[] }).merges ?? [])
      .map((m) => (Array.isArray(m) ? (m as string[]) : String(m).split(" ")))
      .filter(([a, b]) => Object.hasOwn(vocab, a) && Object.hasOwn(vocab, b) && Object.hasOwn(vocab, a + b) && vocab[a + b] >= specials.length);
    const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
    json = {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: specials.map((s, i) => addedToken(s, i)),
      normalizer: lowercase ? { type: "Lowercase" } : null,
      pre_tokenizer: byteLevel,
      post_processor: { type: "RobertaProcessing", sep: [names.sep, vocab[names.sep]], cls: [names.cls, vocab[names.cls]], trim_offsets: true, add_prefix_space: false },
      decoder: byteLevel,
      model: {
        type: "BPE",
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab: { ...vocab },
        merges,
      },
    };
  }
  const config = {
    tokenizer_class: opts.type === "wordpiece" ? "BertTokenizerFast" : "RobertaTokenizerFast",
    do_lower_case: opts.type === "wordpiece" ? (opts.lowercase ?? true) : (opts.lowercase ?? false),
    cls_token: names.cls,
    sep_token: names.sep,
    pad_token: names.pad,
    unk_token: names.unk,
    mask_token: names.mask,
    clean_up_tokenization_spaces: false,
  };
  return encoderTokenizerFromJSON({ kind: "hf", json, config });
}
