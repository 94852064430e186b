// Text corpora and token windows for language-model distillation.

import { readdirSync, realpathSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { UserError } from "../util/errors.js";
import { readFileBounded } from "../util/fs.js";
import type { Rng } from "../util/rng.js";

/** The default cap on a corpus's size (`data.maxBytes`): more than any corpus this toolkit trains on in memory. */
export const DEFAULT_CORPUS_MAX_BYTES = 2 ** 30;

/** Where Debian's `fortunes` package (fortune-mod's data) puts its English fortune files. */
export const DEBIAN_FORTUNES = "/usr/share/games/fortunes";

// Invalid UTF-8 becomes U+FFFD rather than an error; a leading BOM is dropped.
const utf8 = new TextDecoder("utf-8", { fatal: false });

/** A regular file's bytes, at most `budget` of them (see readFileBounded). */
function readBytes(path: string, budget: number): Uint8Array {
  return readFileBounded(path, budget, "corpus", "data.maxBytes");
}

/** The `text` fields of a JSON Lines file, joined with "\n". Blank lines are skipped. */
function readJsonl(path: string, bytes: Uint8Array): string {
  const lines = utf8.decode(bytes).split("\n");
  const texts: string[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch {
      // JSON.parse's message quotes the line; the line number is enough to find it.
      throw new UserError(`${path}:${i + 1}: not valid JSON`);
    }
    const text = typeof obj === "object" && obj !== null ? (obj as Record<string, unknown>).text : undefined;
    if (typeof text !== "string") throw new UserError(`${path}:${i + 1}: no string "text" field`);
    texts.push(text);
  });
  return texts.join("\n");
}

/** The text of one file: JSON Lines for `.jsonl`, else plain UTF-8. null for binary data (a NUL byte). */
function readTextFile(path: string, budget: number): { text: string | null; bytes: number } {
  const bytes = readBytes(path, budget);
  return { text: decodeText(path, bytes), bytes: bytes.length };
}

function decodeText(path: string, bytes: Uint8Array): string | null {
  if (path.endsWith(".jsonl")) return readJsonl(path, bytes);
  if (bytes.includes(0)) return null;
  return utf8.decode(bytes);
}

/**
 * The files of a folder to read, recursively, sorted by their path relative to `root` (plain
 * code-unit order, so the order does not depend on the locale).
 *
 * Skipped, which is what the Debian `fortunes` package needs (it installs, for each file such
 * as `art`, an `art.dat` strfile index and an `art.u8` symlink to `art`):
 * - `*.dat` files: strfile's binary random-access indexes, not text;
 * - a symlink to a file that is also read under its own name (`art.u8 -> art`): the same text
 *   twice would put it in both the training and the held-out part; a symlink to a file not
 *   otherwise read is read once;
 * - symlinked folders (not followed, so a link cycle cannot loop);
 * - hidden entries (a name starting with "."), e.g. `.git` or editor files.
 * Files that hold a NUL byte are skipped later as binary.
 */
function listFiles(root: string): string[] {
  const regular: string[] = [];
  const links: string[] = [];
  const walk = (dir: string) => {
    for (const ent of readdirSync(dir, { withFileTypes: true })) {
      if (ent.name.startsWith(".")) continue;
      const p = join(dir, ent.name);
      if (ent.isDirectory()) walk(p);
      else if (ent.name.endsWith(".dat")) continue;
      else if (ent.isFile()) regular.push(p);
      else if (ent.isSymbolicLink()) {
        try {
          if (statSync(p).isFile()) links.push(p);
        } catch {
          // a dangling link: nothing to read
        }
      }
    }
  };
  walk(root);
  const real = new Set(regular.map((p) => realpathSync(p)));
  const chosen = [...regular];
  for (const p of links.sort()) {
    const r = realpathSync(p);
    if (real.has(r)) continue;
    real.add(r);
    chosen.push(p);
  }
  const key = (p: string) => relative(root, p);
  return chosen.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/**
 * Reads a text corpus: a plain UTF-8 file, a `.jsonl` file (the string `text` field of each
 * line), or a folder (every file in it, recursively, in sorted path order, each read by the same
 * rules; see listFiles for what is skipped). Texts are joined with "\n". Invalid UTF-8 is
 * replaced by U+FFFD. `files` lists the files that gave text, in order.
 */
export function readCorpus(path: string, maxBytes = DEFAULT_CORPUS_MAX_BYTES): { text: string; files: string[] } {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new UserError(`${path}: no such file or folder`);
  }
  // A device or pipe (/dev/zero, a FIFO) would be read until memory runs out.
  if (!st.isDirectory() && !st.isFile()) throw new UserError(`${path}: not a regular file or folder (a device, pipe or socket); refusing to read it as a corpus`);
  const candidates = st.isDirectory() ? listFiles(path) : [path];
  const texts: string[] = [];
  const files: string[] = [];
  let left = maxBytes; // the cap covers the whole corpus, not each file
  for (const f of candidates) {
    if (f !== path && statSync(f).size > left) {
      throw new UserError(`${path}: corpus is larger than ${maxBytes} bytes (at ${relative(path, f)}; raise data.maxBytes to read it)`);
    }
    const { text, bytes } = readTextFile(f, left);
    left -= bytes;
    if (text === null || text.length === 0) continue;
    texts.push(text);
    files.push(f);
  }
  if (files.length === 0) throw new UserError(`${path}: no readable text`);
  return { text: texts.join("\n"), files };
}

/**
 * Splits off the last `fraction` of the text (by UTF-16 length, moved forward by one so a
 * surrogate pair is never cut) as held-out data.
 */
export function splitHeldOut(text: string, fraction = 0.1): { train: string; heldOut: string } {
  if (!(fraction >= 0 && fraction < 1)) throw new UserError(`held-out fraction must be in [0, 1), got ${fraction}`);
  let cut = text.length - Math.round(text.length * fraction);
  if (cut > 0 && cut < text.length) {
    const hi = text.charCodeAt(cut - 1);
    const lo = text.charCodeAt(cut);
    if (hi >= 0xd800 && hi <= 0xdbff && lo >= 0xdc00 && lo <= 0xdfff) cut++;
  }
  return { train: text.slice(0, cut), heldOut: text.slice(cut) };
}

export interface TokenStream {
  ids: Int32Array;
}

function checkShape(ids: Int32Array, context: number, what: string): void {
  if (!Number.isInteger(context) || context < 1) throw new UserError(`context must be a positive integer, got ${context}`);
  if (ids.length < context + 1) {
    throw new UserError(
      `${what} has ${ids.length} tokens, shorter than context + 1 = ${context + 1} (one window of ${context} inputs and its next-token target)`,
    );
  }
}

/**
 * `batch` windows of context + 1 tokens at random offsets (from `rng`, so fixed by its seed):
 * x[b*context + t] = ids[s_b + t], y[b*context + t] = ids[s_b + t + 1] (the next token).
 */
export function sampleWindows(ids: Int32Array, context: number, batch: number, rng: Rng): { x: Int32Array; y: Int32Array } {
  checkShape(ids, context, "token stream");
  if (!Number.isInteger(batch) || batch < 1) throw new UserError(`batch must be a positive integer, got ${batch}`);
  const x = new Int32Array(batch * context);
  const y = new Int32Array(batch * context);
  const starts = ids.length - context; // s in [0, length - context - 1]
  for (let b = 0; b < batch; b++) {
    const s = rng.int(starts);
    x.set(ids.subarray(s, s + context), b * context);
    y.set(ids.subarray(s + 1, s + context + 1), b * context);
  }
  return { x, y };
}

/**
 * Deterministic held-out windows: the stream is cut into consecutive, non-overlapping windows
 * of `context` inputs (window w has inputs ids[w*context .. w*context+context-1] and targets one
 * further on), so every target position is scored once; the tail that does not fill a whole
 * window is dropped, so all windows have one shape. With `maxWindows` below that count,
 * `maxWindows` of them are taken evenly spaced over the stream (still deterministic).
 * x and y are [windows*context].
 */
export function evalWindows(ids: Int32Array, context: number, maxWindows?: number): { x: Int32Array; y: Int32Array; windows: number } {
  checkShape(ids, context, "held-out token stream");
  const total = Math.floor((ids.length - 1) / context);
  if (maxWindows !== undefined && (!Number.isInteger(maxWindows) || maxWindows < 1)) {
    throw new UserError(`maxWindows must be a positive integer, got ${maxWindows}`);
  }
  const windows = maxWindows === undefined ? total : Math.min(total, maxWindows);
  const x = new Int32Array(windows * context);
  const y = new Int32Array(windows * context);
  for (let k = 0; k < windows; k++) {
    const w = windows === total ? k : Math.floor((k * total) / windows);
    const s = w * context;
    x.set(ids.subarray(s, s + context), k * context);
    y.set(ids.subarray(s + 1, s + context + 1), k * context);
  }
  return { x, y, windows };
}
