import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  byteTokenizer,
  charTokenizer,
  checkSameVocab,
  hfTokenizer,
  loadTokenizerFile,
  tokenizerFromJSON,
  type Tokenizer,
  type TokenizerJSON,
} from "../src/text/tokenizer.js";
import { DEBIAN_FORTUNES, evalWindows, readCorpus, sampleWindows, splitHeldOut } from "../src/text/corpus.js";
import { UserError } from "../src/util/errors.js";
import { Rng } from "../src/util/rng.js";
import { tinyWhitespaceBpe } from "./helpers/tokenizers.js";

function userError(re: RegExp) {
  return (e: unknown) => e instanceof UserError && re.test(e.message);
}

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), "distill-text-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Round trip through the saved JSON form (as a checkpoint would store it). */
function restore(t: Tokenizer): Tokenizer {
  return tokenizerFromJSON(JSON.parse(JSON.stringify(t.toJSON())) as TokenizerJSON, "ckpt.json");
}

// GPT-2's byte ↔ printable-character map, to write a byte-level BPE by hand.
function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const map: string[] = new Array(256);
  for (const b of bs) map[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (map[b] === undefined) map[b] = String.fromCharCode(256 + n++);
  return map;
}

/** A tiny GPT-2-style byte-level BPE: 256 byte tokens, 5 merges, one special token. */
function tinyByteLevelBpe() {
  const vocab: Record<string, number> = {};
  bytesToUnicode().forEach((c, b) => (vocab[c] = b));
  const merges = ["h e", "l l", "he ll", "hell o", "Ġ w"];
  for (const m of merges) vocab[m.replace(" ", "")] = Object.keys(vocab).length;
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [{ id: 261, content: "<|endoftext|>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "", end_of_word_suffix: "", fuse_unk: false, byte_fallback: false, vocab, merges },
  };
}

test("char tokenizer: sorted code-point vocabulary, a non-BMP emoji is one token", () => {
  const text = "hello, wörld 🙂!";
  const tok = charTokenizer(text);
  const chars = (tok.toJSON() as { chars: string[] }).chars;
  assert.deepEqual(chars, [" ", "!", ",", "d", "e", "h", "l", "o", "r", "w", "ö", "🙂"]);
  assert.equal(tok.vocabSize, chars.length + 1); // + id 0 = unknown
  const ids = tok.encode(text);
  assert.equal(ids.length, [...text].length); // 15 code points, 16 UTF-16 units
  assert.equal(ids[ids.length - 2], chars.indexOf("🙂") + 1);
  assert.ok(ids.every((id) => id >= 1));
  assert.equal(tok.decode(ids), text);
  assert.equal(restore(tok).decode(restore(tok).encode(text)), text);
  assert.deepEqual(restore(tok).toJSON(), tok.toJSON());
});

test("char tokenizer: unknown characters map to id 0 and decode as U+FFFD", () => {
  const tok = charTokenizer("abc");
  assert.deepEqual(Array.from(tok.encode("abxc😀")), [1, 2, 0, 3, 0]);
  assert.equal(tok.decode([1, 0, 2, 99, -1, 3]), "a\uFFFDb\uFFFD\uFFFDc");
  assert.throws(() => charTokenizer(""), userError(/empty/));
});

test("byte tokenizer: UTF-8 round trip, lenient decode, save/restore", () => {
  const tok = byteTokenizer();
  assert.equal(tok.vocabSize, 256);
  const text = "naïve café 🙂\n\ttab";
  const ids = tok.encode(text);
  assert.equal(ids.length, new TextEncoder().encode(text).length);
  assert.equal(tok.decode(ids), text);
  assert.equal(tok.decode(ids.subarray(0, ids.length - 1)), text.slice(0, -1)); // fine
  assert.equal(tok.decode([0xf0, 0x9f, 0x99]), "\uFFFD"); // a cut emoji: no throw
  assert.equal(tok.decode([104, 300, 105]), "h\uFFFDi");
  const back = restore(tok);
  assert.equal(back.kind, "byte");
  assert.equal(back.decode(back.encode(text)), text);
});

test("hf tokenizer: byte-level BPE round trips, merges apply, vocab size counts added tokens", () => {
  const tok = hfTokenizer(tinyByteLevelBpe());
  assert.equal(tok.kind, "hf");
  assert.equal(tok.vocabSize, 262); // 256 bytes + 5 merges + <|endoftext|>
  const ids = tok.encode("hello world");
  // merges get ids 256..260: "hello" → 259, " w" → "Ġw" = 260
  assert.deepEqual(Array.from(ids.subarray(0, 2)), [259, 260]);
  for (const s of ["hello world", "naïve café 🙂\n  two  spaces .", "<|endoftext|>hello", ""]) {
    assert.equal(tok.decode(tok.encode(s)), s);
  }
  assert.equal(tok.encode("<|endoftext|>")[0], 261);
  assert.equal(tok.encode("").length, 0);
  assert.equal(tok.decode([]), "");
  assert.equal(tok.decode([259, 9999]), "hello\uFFFD");
  const back = restore(tok);
  assert.equal(back.vocabSize, 262);
  assert.deepEqual(Array.from(back.encode("hello world")), Array.from(ids));
  checkSameVocab(tok, back, "recipe.teacher");
});

test("hf tokenizer: whitespace BPE, unknown text maps to [UNK]", () => {
  const tok = hfTokenizer(tinyWhitespaceBpe(), { clean_up_tokenization_spaces: false });
  assert.equal(tok.vocabSize, 8);
  assert.deepEqual(Array.from(tok.encode("hug hugs!")), [6, 6, 4, 7]);
  assert.deepEqual(Array.from(tok.encode("hux")), [5, 0]);
  assert.equal(tok.decode(tok.encode("hug hugs")), "hug hug s"); // no decoder: tokens joined by spaces
  assert.deepEqual((restore(tok).toJSON() as { config: unknown }).config, { clean_up_tokenization_spaces: false });
});

test("loadTokenizerFile: reads a file or folder; clear errors for missing, non-JSON, non-tokenizer", (t) => {
  const dir = tempDir(t);
  const file = join(dir, "tokenizer.json");
  writeFileSync(file, JSON.stringify(tinyByteLevelBpe()));
  assert.equal(loadTokenizerFile(file).vocabSize, 262);
  assert.equal(loadTokenizerFile(dir).decode(loadTokenizerFile(dir).encode("hello")), "hello");
  assert.throws(() => loadTokenizerFile(join(dir, "nope.json")), userError(/nope\.json: no such tokenizer file/));
  writeFileSync(join(dir, "bad.json"), "{ not json");
  assert.throws(() => loadTokenizerFile(join(dir, "bad.json")), userError(/bad\.json: not valid JSON/));
  writeFileSync(join(dir, "other.json"), JSON.stringify({ hello: 1 }));
  assert.throws(() => loadTokenizerFile(join(dir, "other.json")), userError(/other\.json: not a Hugging Face tokenizer\.json/));
  writeFileSync(join(dir, "weird.json"), JSON.stringify({ model: { type: "Nonsense" } }));
  assert.throws(() => loadTokenizerFile(join(dir, "weird.json")), userError(/weird\.json: cannot build the tokenizer/));
});

test("tokenizerFromJSON rejects bad saves with the source named", () => {
  assert.throws(() => tokenizerFromJSON({ kind: "bpe" } as unknown as TokenizerJSON, "run/ckpt.json"), userError(/^run\/ckpt\.json: tokenizer\.kind/));
  assert.throws(() => tokenizerFromJSON({ kind: "char", chars: ["a", "bc"] }, "c.json"), userError(/chars\[1\]/));
  assert.throws(() => tokenizerFromJSON({ kind: "char", chars: ["a", "a"] }, "c.json"), userError(/repeats/));
});

test("checkSameVocab names both sizes; same size but different tokens is caught too", () => {
  const chars = charTokenizer(Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join(""));
  assert.equal(chars.vocabSize, 96);
  assert.throws(
    () => checkSameVocab(chars, byteTokenizer(), "recipe.student"),
    userError(/^recipe\.student: teacher vocabulary has 96 tokens, student 256: they must match$/),
  );
  assert.throws(() => checkSameVocab(charTokenizer("abc"), charTokenizer("abd"), "x"), userError(/differ at id 3: "c" vs "d"/));
  checkSameVocab(charTokenizer("cab"), charTokenizer("abcabc"), "x");
  checkSameVocab(byteTokenizer(), byteTokenizer(), "x");
});

test("readCorpus: nested folder in sorted path order, .dat and duplicate symlinks skipped", (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, "b", "inner"), { recursive: true });
  writeFileSync(join(dir, "c.txt"), "third");
  writeFileSync(join(dir, "a"), "first");
  writeFileSync(join(dir, "a.dat"), Buffer.from([0, 0, 0, 2, 0, 0, 0, 9]));
  symlinkSync("a", join(dir, "a.u8"));
  writeFileSync(join(dir, "b", "inner", "z"), "second\u00e9");
  writeFileSync(join(dir, "b", "bad"), Buffer.from([0x68, 0xff, 0x69])); // invalid UTF-8
  writeFileSync(join(dir, ".hidden"), "no");
  const { text, files } = readCorpus(dir);
  assert.deepEqual(files, [join(dir, "a"), join(dir, "b", "bad"), join(dir, "b", "inner", "z"), join(dir, "c.txt")]);
  assert.equal(text, "first\nh\uFFFDi\nsecond\u00e9\nthird");
});

test("readCorpus: JSONL, empty folder, missing text field", (t) => {
  const dir = tempDir(t);
  const jsonl = join(dir, "d.jsonl");
  writeFileSync(jsonl, '{"text": "one"}\n\n{"text": "two 🙂", "id": 2}\n');
  assert.deepEqual(readCorpus(jsonl), { text: "one\ntwo 🙂", files: [jsonl] });
  const broken = join(dir, "broken.jsonl");
  writeFileSync(broken, '{"text": "ok"}\n{"body": "no text"}\n');
  assert.throws(() => readCorpus(broken), userError(/broken\.jsonl:2: no string "text" field/));
  writeFileSync(broken, '{"text": "ok"}\n{"text": 5}\n');
  assert.throws(() => readCorpus(broken), userError(/broken\.jsonl:2:/));
  writeFileSync(broken, '{"text": "ok"}\n{oops\n');
  assert.throws(() => readCorpus(broken), userError(/broken\.jsonl:2: not valid JSON/));
  const empty = join(dir, "empty");
  mkdirSync(join(empty, "sub"), { recursive: true });
  writeFileSync(join(empty, "sub", "x.dat"), "index");
  writeFileSync(join(empty, "blank"), "");
  assert.throws(() => readCorpus(empty), userError(new RegExp(`^${empty}: no readable text$`)));
  assert.throws(() => readCorpus(join(dir, "missing")), userError(/missing: no such file or folder/));
});

test("splitHeldOut: last fraction held out, never splitting a surrogate pair", () => {
  const text = "x".repeat(1000);
  const s = splitHeldOut(text);
  assert.equal(s.train.length, 900);
  assert.equal(s.heldOut.length, 100);
  assert.equal(splitHeldOut(text, 0.25).heldOut.length, 250);
  const emoji = "ab🙂cd"; // 6 UTF-16 units; a cut at 3 would split 🙂
  const e = splitHeldOut(emoji, 0.5);
  assert.equal(e.train + e.heldOut, emoji);
  assert.deepEqual([e.train, e.heldOut], ["ab🙂", "cd"]);
  assert.throws(() => splitHeldOut(text, 1), userError(/fraction/));
});

test("sampleWindows: seeded, y is x shifted by one; evalWindows: consecutive, fixed shapes", () => {
  const ids = Int32Array.from({ length: 500 }, (_, i) => i);
  const a = sampleWindows(ids, 16, 8, new Rng(3));
  const b = sampleWindows(ids, 16, 8, new Rng(3));
  const c = sampleWindows(ids, 16, 8, new Rng(4));
  assert.equal(a.x.length, 8 * 16);
  assert.equal(a.y.length, 8 * 16);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.x, c.x);
  for (let r = 0; r < 8; r++) {
    for (let t = 0; t < 16; t++) {
      assert.equal(a.y[r * 16 + t], a.x[r * 16 + t] + 1);
      if (t > 0) assert.equal(a.x[r * 16 + t], a.x[r * 16 + t - 1] + 1);
    }
  }
  // A stream of exactly context + 1 tokens has one possible window.
  const one = sampleWindows(Int32Array.from([5, 6, 7]), 2, 3, new Rng(0));
  assert.deepEqual(Array.from(one.x), [5, 6, 5, 6, 5, 6]);
  assert.deepEqual(Array.from(one.y), [6, 7, 6, 7, 6, 7]);
  assert.throws(() => sampleWindows(Int32Array.from([1, 2, 3]), 3, 1, new Rng(0)), userError(/has 3 tokens, shorter than context \+ 1 = 4/));

  const ev = evalWindows(ids, 16);
  assert.equal(ev.windows, Math.floor(499 / 16)); // 31
  assert.equal(ev.x.length, 31 * 16);
  assert.deepEqual(Array.from(ev.x.subarray(0, 3)), [0, 1, 2]);
  assert.deepEqual(Array.from(ev.x.subarray(16, 19)), [16, 17, 18]);
  for (let i = 0; i < ev.x.length; i++) assert.equal(ev.y[i], ev.x[i] + 1);
  const few = evalWindows(ids, 16, 4);
  assert.equal(few.windows, 4);
  assert.equal(few.x.length, 4 * 16);
  assert.deepEqual([0, 1, 2, 3].map((k) => few.x[k * 16]), [0, 7, 15, 23].map((w) => w * 16));
  assert.deepEqual(evalWindows(ids, 16, 4), few);
  assert.throws(() => evalWindows(Int32Array.from([1]), 4), userError(/has 1 tokens, shorter than context \+ 1 = 5/));
});

test("Debian fortunes corpus", { skip: existsSync(DEBIAN_FORTUNES) ? false : `${DEBIAN_FORTUNES} not installed (apt-get install fortunes)` }, (t) => {
  const { text, files } = readCorpus(DEBIAN_FORTUNES);
  const vocab = charTokenizer(text).vocabSize;
  const codePoints = [...text].length;
  const ascii = text.replace(/[^\x20-\x7e\n]/g, "").length / text.length;
  const letters = text.replace(/[^a-zA-Z]/g, "").length / text.length;
  const the = (text.match(/\bthe\b/gi) ?? []).length;
  t.diagnostic(
    `fortunes: ${files.length} files, ${text.length} UTF-16 units, ${codePoints} characters, char vocabulary ${vocab} (incl. unknown), ` +
      `${(ascii * 100).toFixed(2)}% printable ASCII, ${(letters * 100).toFixed(1)}% letters, ${the} × "the"`,
  );
  assert.ok(files.every((f) => !f.endsWith(".dat") && !f.endsWith(".u8")));
  assert.ok(codePoints > 2_000_000 && codePoints < 3_000_000, `${codePoints} characters`);
  assert.ok(vocab < 200, `vocabulary ${vocab}`);
  assert.ok(ascii > 0.98 && letters > 0.6 && the > 10_000, "English text");
  const { train, heldOut } = splitHeldOut(text);
  assert.equal(train.length + heldOut.length, text.length);
});
