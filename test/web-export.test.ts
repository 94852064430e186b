// The browser folder as a person uses it: written by writeWebFolder, served by a plain static
// file server (node:http on 127.0.0.1), opened in headless Chromium (Debian's /usr/bin/chromium
// with playwright-core). Its predictions and logits must equal onnxruntime-node's on the same
// model.onnx and inputs and distill's own forward; its greedy text must equal distill's; a text
// classifier's rows must equal distill's encodeBatch; the console must stay clean (the page's
// Content-Security-Policy reports there); and every request must be for a file inside the folder.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize, sep } from "node:path";
import * as ort from "onnxruntime-node";
import type { Browser, Page } from "playwright-core";
import { initDevice } from "../src/engine/index.js";
import { paramsFromHost } from "../src/checkpoint/params.js";
import { generateFullRecompute } from "../src/nn/generate.js";
import type { ClassifierExportable, LMExportable, TextExportable } from "../src/export/exportable.js";
import { DEFAULT_TEXTS, WEB_CONFIG, writeWebFolder } from "../src/export/web.js";
import { exportOnnx } from "../src/export/onnx.js";
import { FASHION_MNIST_CLASSES } from "../src/data/fashion-mnist.js";
import { tokenizerFromJSON, type TokenizerJSON } from "../src/text/tokenizer.js";
import { trainEncoderTokenizer, type TextTokenizer } from "../src/text/encoder-tokenizer.js";
import { UserError } from "../src/util/errors.js";
import { classifierExportable, distillClassifierLogits, distillTextLogits, int64, lmExportable, lmFeeds, maxAbsDiff, textExportable, toNCHW } from "./helpers/onnx-models.js";
import { makeFashionFixture } from "./helpers/fixtures.js";
import { tempDir } from "./helpers/tmp.js";
import { tinyWhitespaceBpe } from "./helpers/tokenizers.js";

const CHROMIUM = "/usr/bin/chromium";
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} not found (apt-get install chromium): the browser folder is not opened`;

const TYPES: Record<string, string> = { ".html": "text/html", ".mjs": "text/javascript", ".js": "text/javascript", ".json": "application/json", ".wasm": "application/wasm", ".onnx": "application/octet-stream" };

/** A static file server for one folder; records every path asked for. */
function serve(root: string): Promise<{ server: Server; url: string; asked: string[] }> {
  const asked: string[] = [];
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    asked.push(path);
    const file = normalize(join(root, path === "/" ? "index.html" : path));
    if (!file.startsWith(root + sep) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" }).end(readFileSync(file));
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, asked })));
}

interface Opened {
  page: Page;
  errors: string[];
  requests: string[];
  results: () => Promise<Record<string, unknown>>;
  close: () => Promise<void>;
}

let browser: Browser | undefined;
let tmp = "";
const servers: (() => Promise<void>)[] = [];

before(async () => {
  if (skip) return;
  await initDevice("wasm");
  tmp = tempDir("distill-web-");
  const { chromium } = await import("playwright-core");
  browser = await chromium.launch({ executablePath: CHROMIUM });
});

after(async () => {
  await browser?.close();
  for (const stop of servers) await stop();
});

/** Opens the folder's index.html over HTTP and waits until the page has results. */
async function open(dir: string): Promise<Opened> {
  const { server, url, asked } = await serve(dir);
  // Stopped in `after` too when a test fails before it closes the page (else the process hangs).
  const stop = () => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  };
  servers.push(stop);
  const page = await browser!.newPage();
  const errors: string[] = [];
  const requests: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") errors.push(`${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("request", (r) => requests.push(r.url()));
  await page.goto(url);
  const results = async () => {
    await page.waitForFunction(() => {
      const r = (globalThis as unknown as { distillResults?: { status: string } }).distillResults;
      return r && (r.status === "done" || r.status === "error");
    }, undefined, { timeout: 60_000 });
    return page.evaluate(() => (globalThis as unknown as { distillResults: Record<string, unknown> }).distillResults);
  };
  const close = async () => {
    await page.close();
    await stop();
    // Every request went to this server, for a file the folder holds.
    const files = new Set(readdirSync(dir));
    for (const r of requests) {
      assert.ok(r.startsWith(url), `request outside the folder: ${r}`);
      const name = decodeURIComponent(new URL(r).pathname.slice(1)) || "index.html";
      assert.ok(files.has(name), `request for a file the folder does not hold: ${r}`);
    }
    assert.deepEqual(asked.filter((p) => p !== "/" && !files.has(p.slice(1))), [], "the server was asked for missing files");
  };
  return { page, errors, requests, results, close };
}

/** onnxruntime-node on the folder's own model.onnx. */
async function nodeSession(dir: string) {
  return ort.InferenceSession.create(readFileSync(join(dir, "model.onnx")));
}

function argmaxRows(x: ArrayLike<number>, k: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < x.length / k; i++) {
    let b = 0;
    for (let j = 1; j < k; j++) if (x[i * k + j] > x[i * k + b]) b = j;
    out.push(b);
  }
  return out;
}

async function checkClassifier(m: ClassifierExportable, dir: string): Promise<{ labels: number[] | null; predictions: number[]; classNames: string[] }> {
  const { height: H, width: W, channels: C, classes: K } = m.input;
  const inputs = JSON.parse(readFileSync(join(dir, "inputs.json"), "utf8")) as { pixels: number[][]; labels: number[] | null };
  const n = inputs.pixels.length;
  const x = Float32Array.from(inputs.pixels.flat(), (b) => b / 255);
  const s = await nodeSession(dir);
  const nodeLogits = (await s.run({ pixel_values: new ort.Tensor("float32", toNCHW(x, n, m.input), [n, C, H, W]) })).logits.data as Float32Array;
  await s.release();
  const distill = await distillClassifierLogits(m, x, n);

  const o = await open(dir);
  const r = (await o.results()) as { status: string; error?: string; predictions: number[]; logits: number[][]; classNames: string[]; labels: number[] | null };
  assert.equal(r.status, "done", r.error);
  const pageLogits = r.logits.flat();
  assert.equal(pageLogits.length, n * K);
  assert.ok(maxAbsDiff(pageLogits, nodeLogits) <= 1e-4, `page vs onnxruntime-node: ${maxAbsDiff(pageLogits, nodeLogits)}`);
  assert.ok(maxAbsDiff(pageLogits, distill) <= 1e-4, `page vs distill: ${maxAbsDiff(pageLogits, distill)}`);
  assert.deepEqual(r.predictions, argmaxRows(nodeLogits, K));
  assert.deepEqual(r.predictions, argmaxRows(distill, K));
  // Not a constant model: the bundled images get more than one class.
  assert.ok(new Set(r.predictions).size > 1, `predictions ${r.predictions}`);
  // One canvas per image, captioned with its predicted class.
  assert.equal(await o.page.locator("canvas").count(), n);
  const captions = await o.page.locator("figcaption").allTextContents();
  captions.forEach((c, i) => assert.ok(c.startsWith(r.classNames[i]), `${c} vs ${r.classNames[i]}`));
  assert.deepEqual(o.errors, []);
  await o.close();
  return r;
}

describe("the browser folder", { skip }, () => {
  test("a Fashion-MNIST-shaped MLP on the dataset's own test images: predictions and logits equal Node's", async () => {
    const data = makeFashionFixture(join(tmp, "fmnist"), { train: 20, test: 40, seed: 3 });
    const m = classifierExportable({ type: "mlp", hidden: [16] }, { height: 28, width: 28, channels: 1, classes: 10 }, 5);
    const dir = join(tmp, "mlp-web");
    await writeWebFolder(m, dir, { dataDir: data });
    // Only what the page needs: no other onnxruntime-web build, no source maps.
    assert.deepEqual(readdirSync(dir).sort(), ["app.mjs", WEB_CONFIG, "index.html", "inputs.json", "model.onnx", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm", "ort.wasm.min.mjs"].sort());
    const r = await checkClassifier(m, dir);
    const inputs = JSON.parse(readFileSync(join(dir, "inputs.json"), "utf8")) as { labels: number[]; source: string };
    assert.equal(inputs.labels.length, 16);
    assert.match(inputs.source, /Fashion-MNIST test images/);
    assert.deepEqual(r.labels, inputs.labels);
    assert.deepEqual(r.classNames, r.predictions.map((p) => FASHION_MNIST_CLASSES[p]));
  });

  test("a colour, non-square input (6×5×3): the page lays pixels out as NCHW as Node does", async () => {
    const m = classifierExportable({ type: "mlp", hidden: [12] }, { height: 6, width: 5, channels: 3, classes: 4 }, 9);
    const dir = join(tmp, "rgb-web");
    await writeWebFolder(m, dir, { count: 12 });
    const inputs = JSON.parse(readFileSync(join(dir, "inputs.json"), "utf8")) as { labels: null; source: string; pixels: number[][] };
    assert.equal(inputs.pixels.length, 12);
    assert.equal(inputs.labels, null);
    assert.match(inputs.source, /random images/);
    await checkClassifier(m, dir);
  });

  async function checkLM(m: LMExportable, dir: string, prompts: string[], tokens: number): Promise<void> {
    const tok = tokenizerFromJSON(m.tokenizer, "test");
    const host = Object.fromEntries(Object.entries(m.params).map(([k, v]) => [k, { dtype: "F32" as const, ...v }]));
    const s = await nodeSession(dir);
    const expected = async (prompt: string) => {
      const ids = tok.encode(prompt);
      const n = Math.min(tokens, m.model.spec.context - ids.length);
      const [seq] = await generateFullRecompute(m.model, paramsFromHost(host, m.model.shapes, m.source), [ids], n, { temperature: 0, seed: 0 });
      const want = Array.from(seq.subarray(ids.length));
      // The same greedy decoding in onnxruntime-node on the folder's model.onnx.
      const seqOrt = Array.from(ids);
      for (let i = 0; i < n; i++) {
        const L = seqOrt.length;
        const logits = (await s.run(lmFeeds(m, seqOrt, 1, L))).logits.data as Float32Array;
        seqOrt.push(argmaxRows(logits.subarray((L - 1) * m.model.vocab), m.model.vocab)[0]);
      }
      assert.deepEqual(seqOrt.slice(ids.length), want, "onnxruntime-node and distill disagree");
      return want;
    };
    const o = await open(dir);
    let r = (await o.results()) as { status: string; error?: string; prompt: string; ids: number[]; text: string };
    assert.equal(r.status, "done", `${r.error} ${o.errors.join("; ")}`);
    for (const [i, prompt] of prompts.entries()) {
      if (i > 0) {
        // A prompt typed into the box, generated with the button.
        await o.page.fill("#prompt", prompt);
        await o.page.evaluate(() => ((globalThis as unknown as { distillResults: unknown }).distillResults = { status: "clicked" }));
        await o.page.click("#generate");
        r = (await o.results()) as typeof r;
        assert.equal(r.status, "done", r.error);
      }
      assert.equal(r.prompt, prompt);
      const want = await expected(prompt);
      assert.deepEqual(r.ids, want, `greedy ids for ${JSON.stringify(prompt)}`);
      assert.equal(r.text, tok.decode(want));
      assert.ok(new Set(want).size > 1, `a degenerate continuation ${want} would hide a wrong position`);
      assert.equal(await o.page.locator("#output").textContent(), tok.decode(tok.encode(prompt)) + tok.decode(want));
    }
    await s.release();
    assert.deepEqual(o.errors, []);
    await o.close();
  }

  test("a char-tokenizer LM generates greedily in the page the text distill and onnxruntime-node generate", async () => {
    const m = lmExportable({ type: "llama", layers: 2, width: 16, heads: 2, context: 24 }, 12, 4);
    // Letters a..k: with id 0 for "unknown", a vocabulary of 12, the model's.
    m.tokenizer = { kind: "char", chars: Array.from("abcdefghijk") };
    const dir = join(tmp, "lm-web");
    await writeWebFolder(m, dir, { prompt: "abc", tokens: 12 });
    // Second prompt: 20 of the 24 positions taken, so generation stops at the context (4 tokens),
    // with a character outside the vocabulary (id 0, "unknown") in it.
    await checkLM(m, dir, ["abc", "kjihgfedcbaz" + "abcdefgh"], 12);
  });

  test("byte and Hugging Face tokenizers in the page: the same text as distill's tokenizers", async () => {
    const byte = lmExportable({ type: "llama", layers: 1, width: 16, heads: 2, context: 16 }, 256, 6);
    byte.tokenizer = { kind: "byte" };
    await writeWebFolder(byte, join(tmp, "byte-web"), { prompt: "hé", tokens: 8 });
    await checkLM(byte, join(tmp, "byte-web"), ["hé", "ab"], 8);

    const hfJson = tinyWhitespaceBpe();
    const hf = lmExportable({ type: "llama", layers: 1, width: 16, heads: 2, context: 16 }, 8, 7);
    hf.tokenizer = { kind: "hf", json: hfJson } as TokenizerJSON;
    const dir = join(tmp, "hf-web");
    await writeWebFolder(hf, dir, { prompt: "hugs", tokens: 6 });
    assert.ok(existsSync(join(dir, "tokenizers.min.mjs")) && existsSync(join(dir, "tokenizer.json")));
    await checkLM(hf, dir, ["hugs", "hug!"], 6);
  });

  // Text classifiers: a tiny bert with a tokenizer trained on a few sentences (WordPiece, [PAD] 0;
  // byte-level BPE, RoBERTa's <pad> 1, so padding with 0 would show).
  const TEXT_SPEC = { type: "bert" as const, layers: 2, hidden: 16, heads: 2, intermediate: 24, dropout: 0.1 };
  const TEXT_CLASSES = ["ham", "spam", "speech"];
  const CORPUS = [
    "Win free money now, click here to claim your prize!",
    "The meeting is moved to noon; bring the report.",
    "My fellow citizens, the state of our union is strong.",
    "Cheap loans, no credit check, reply today.",
    "Can you send me the minutes of the committee meeting?",
    "We will meet these challenges together, as a nation.",
  ];
  const TEXT_LENGTH = 24;

  function textModel(type: "wordpiece" | "bpe", vocabSize: number, seed: number): { m: TextExportable; tok: TextTokenizer } {
    const tok = trainEncoderTokenizer(CORPUS, { type, vocabSize });
    const m = textExportable(TEXT_SPEC, { vocab: tok.vocabSize, length: TEXT_LENGTH, padId: tok.padId }, TEXT_CLASSES, tok.toJSON(), seed);
    return { m, tok };
  }

  interface PageRow { text: string; ids: number[]; tokens: number; truncated: boolean; logits: number[]; probabilities: number[]; prediction: number; className: string }
  type TextResults = { status: string; error?: string; typed: PageRow; examples: PageRow[]; labels: number[] | null };

  /** The page's rows against distill's encodeBatch, its logits against onnxruntime-node's and distill's forward on distill's rows. */
  async function checkTextRows(m: TextExportable, tok: TextTokenizer, s: ort.InferenceSession, rows: PageRow[], texts: string[]): Promise<void> {
    const L = TEXT_LENGTH;
    const n = texts.length;
    assert.deepEqual(rows.map((r) => r.text), texts);
    const enc = tok.encodeBatch(texts, L);
    assert.deepEqual(rows.map((r) => r.ids), Array.from({ length: n }, (_, i) => Array.from(enc.ids.subarray(i * L, (i + 1) * L))), "token rows");
    assert.deepEqual(rows.map((r) => r.tokens), Array.from(enc.lengths));
    assert.equal(rows.filter((r) => r.truncated).length, enc.truncated);
    // The mask from distill's lengths (1 on [CLS] … [SEP]), as the ONNX tests feed it.
    const mask = Array.from({ length: n * L }, (_, j) => ((j % L) < enc.lengths[Math.floor(j / L)] ? 1 : 0));
    const feeds = { input_ids: int64(enc.ids, [n, L]), attention_mask: int64(mask, [n, L]), token_type_ids: int64(new Array(n * L).fill(0), [n, L]) };
    const nodeLogits = (await s.run(feeds)).logits.data as Float32Array;
    const distill = await distillTextLogits(m, enc.ids, n);
    const page = rows.flatMap((r) => r.logits);
    assert.ok(maxAbsDiff(page, nodeLogits) <= 1e-4, `page vs onnxruntime-node: ${maxAbsDiff(page, nodeLogits)}`);
    assert.ok(maxAbsDiff(page, distill) <= 1e-4, `page vs distill: ${maxAbsDiff(page, distill)}`);
    for (const r of rows) {
      const e = r.logits.map((v) => Math.exp(v - Math.max(...r.logits)));
      const sum = e.reduce((a, b) => a + b, 0);
      assert.ok(maxAbsDiff(r.probabilities, e.map((v) => v / sum)) < 1e-6, `probabilities ${r.probabilities} for logits ${r.logits}`);
      assert.equal(r.className, TEXT_CLASSES[r.prediction]);
    }
  }

  async function checkTextPage(m: TextExportable, tok: TextTokenizer, dir: string, bundled: string[], typed: string[]): Promise<void> {
    const s = await nodeSession(dir);
    const o = await open(dir);
    let r = (await o.results()) as TextResults;
    assert.equal(r.status, "done", `${r.error} ${o.errors.join("; ")}`);
    // The box starts with the first bundled text; the bundled texts are classified in one batch.
    assert.equal(r.typed.text, bundled[0]);
    await checkTextRows(m, tok, s, [r.typed], [bundled[0]]);
    await checkTextRows(m, tok, s, r.examples, bundled);
    // Not a constant model: the bundled texts get different logits (a wrong id would show).
    assert.ok(maxAbsDiff(r.examples[0].logits, r.examples[1].logits) > 1e-3, "the logits vary between texts");
    assert.equal(await o.page.locator("#examples section").count(), bundled.length);
    for (const text of typed) {
      await o.page.fill("#text", text);
      await o.page.evaluate(() => ((globalThis as unknown as { distillResults: unknown }).distillResults = { status: "clicked" }));
      await o.page.click("#classify");
      r = (await o.results()) as TextResults;
      assert.equal(r.status, "done", r.error);
      await checkTextRows(m, tok, s, [r.typed], [text]);
      // The probabilities shown, one line per class, the predicted class first.
      const lines = await o.page.locator("#typed li").allTextContents();
      assert.equal(lines.length, TEXT_CLASSES.length);
      assert.ok(lines[0].endsWith(` ${r.typed.className}`), `${lines[0]} vs ${r.typed.className}`);
    }
    await s.release();
    assert.deepEqual(o.errors, []);
    await o.close();
  }

  // Longer than the row (24): cut to 22 tokens with [SEP] last; upper case and an accent (BERT's
  // normalizer), a character no vocabulary holds, and an empty text ([CLS] [SEP]).
  const TYPED = ["Café MEETING at noon: win FREE money now, the nation's report is strong and the loans are cheap today, so reply to the committee and claim your prize", "citizens ☃ union", ""];

  test("a text classifier (WordPiece): the page's rows are distill's encodeBatch rows and its logits onnxruntime-node's", async () => {
    const { m, tok } = textModel("wordpiece", 80, 21);
    const dir = join(tmp, "text-wordpiece-web");
    // The last one is long enough (1,000+ characters) that distill encodes only a prefix of it
    // (TextTokenizer's head) while the page encodes it whole: the rows must still agree.
    const bundled = [CORPUS[1], CORPUS[0], TYPED[0], CORPUS[2], Array(4).fill(CORPUS.join(" ")).join("\n")];
    await writeWebFolder(m, dir, { texts: { texts: bundled, labels: [0, 1, 1, 2, 0], source: "five test texts" } });
    assert.deepEqual(readdirSync(dir).sort(), ["app.mjs", WEB_CONFIG, "index.html", "inputs.json", "model.onnx", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm", "ort.wasm.min.mjs", "tokenizer.json", "tokenizers.min.mjs"].sort());
    const cfg = JSON.parse(readFileSync(join(dir, WEB_CONFIG), "utf8")) as Record<string, unknown>;
    assert.deepEqual([cfg.family, cfg.classes, cfg.length, cfg.padId, cfg.clsId, cfg.sepId], ["text", TEXT_CLASSES, TEXT_LENGTH, tok.padId, tok.clsId, tok.sepId]);
    assert.equal(tok.encodeBatch([TYPED[0]], TEXT_LENGTH).truncated, 1, "the long text is longer than the row");
    assert.ok(tok.encodeBatch([TYPED[1]], TEXT_LENGTH).ids.includes(tok.unkId), "the snowman is unknown");
    await checkTextPage(m, tok, dir, bundled, TYPED);
  });

  test("a text classifier (byte-level BPE, pad id 1) with the default example sentences", async () => {
    const { m, tok } = textModel("bpe", 300, 22);
    assert.equal(tok.padId, 1);
    const dir = join(tmp, "text-bpe-web");
    await writeWebFolder(m, dir);
    assert.deepEqual((JSON.parse(readFileSync(join(dir, "inputs.json"), "utf8")) as { texts: string[] }).texts, DEFAULT_TEXTS);
    // Short typed texts too: rows padded with <pad> (1), not 0.
    await checkTextPage(m, tok, dir, DEFAULT_TEXTS, [...TYPED, "Win!"]);
  });
});

describe("writing the folder", () => {
  test("a folder that holds something else is refused, and nothing is left behind", async () => {
    const d = tempDir("distill-web-refuse-");
    const target = join(d, "mine");
    mkdirSync(target);
    writeFileSync(join(target, "notes.txt"), "keep me");
    const m = classifierExportable({ type: "mlp", hidden: [4] }, { height: 2, width: 2, channels: 1, classes: 3 }, 1);
    await assert.rejects(writeWebFolder(m, target, { onnx: exportOnnx(m) }), (e) => e instanceof UserError && /not an exported web folder/.test(e.message));
    assert.deepEqual(readdirSync(target), ["notes.txt"]);
    assert.deepEqual(readdirSync(d), ["mine"]);
    // A previous export is replaced whole.
    const web = join(d, "web");
    await writeWebFolder(m, web, { count: 2 });
    writeFileSync(join(web, "stale.txt"), "from an older export");
    await writeWebFolder(m, web, { count: 3 });
    assert.ok(!existsSync(join(web, "stale.txt")));
    assert.equal((JSON.parse(readFileSync(join(web, "inputs.json"), "utf8")) as { pixels: unknown[] }).pixels.length, 3);
    assert.deepEqual(readdirSync(d).sort(), ["mine", "web"]);
    // A tokenizer that does not fit the model: one line naming both sizes, the old folder kept.
    const lm = lmExportable({ type: "llama", layers: 1, width: 8, heads: 2, context: 8 }, 6, 1);
    lm.tokenizer = { kind: "char", chars: Array.from("abcdefgh") };
    await assert.rejects(writeWebFolder(lm, web), (e) => e instanceof UserError && /9 tokens but the model's vocabulary is 6/.test(e.message) && !e.message.includes("\n"));
    assert.ok(existsSync(join(web, "inputs.json")));
    assert.deepEqual(readdirSync(d).sort(), ["mine", "web"]);
  });

  test("a text classifier whose tokenizer or bundled labels do not fit is refused in one line", async () => {
    const tok = trainEncoderTokenizer(["the cat sat on the mat", "free money now"], { type: "wordpiece", vocabSize: 40 });
    const spec = { type: "bert" as const, layers: 1, hidden: 8, heads: 2, intermediate: 8, dropout: 0 };
    const d = tempDir("distill-web-text-refuse-");
    const wrongVocab = textExportable(spec, { vocab: tok.vocabSize + 3, length: 8, padId: tok.padId }, ["a", "b"], tok.toJSON());
    await assert.rejects(writeWebFolder(wrongVocab, join(d, "w")), (e) => e instanceof UserError && new RegExp(`${tok.vocabSize} tokens but the model's vocabulary is ${tok.vocabSize + 3}`).test(e.message) && !e.message.includes("\n"));
    const m = textExportable(spec, { vocab: tok.vocabSize, length: 8, padId: tok.padId }, ["a", "b"], tok.toJSON());
    await assert.rejects(writeWebFolder(m, join(d, "w"), { texts: { texts: ["x", "y"], labels: [0, 2], source: "t" } }), (e) => e instanceof UserError && /one label each, below 2/.test(e.message));
    assert.deepEqual(readdirSync(d), []);
  });
});


