// `distill run` on a text-classification recipe, end to end through the CLI: a CSV with two
// classes told apart by their words, a tokenizer trained on the training split, a BERT teacher,
// and students from scratch, by logit KD, by logit + intermediate-layer KD, and initialised from
// the teacher's layers (DistilBERT). Bad input stops before anything is written, with one line
// and exit code 2.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { runCli, snapshot } from "./helpers/fixtures.js";
import { tempDir } from "./helpers/tmp.js";
import { loadCheckpoint } from "../src/checkpoint/checkpoint.js";
import { Rng } from "../src/util/rng.js";

const SPORT = ["match", "goal", "team", "league", "coach", "score", "season", "striker", "keeper", "referee"];
const FOOD = ["recipe", "oven", "flour", "butter", "garlic", "sauce", "simmer", "pepper", "dough", "onion"];
const FILLER = ["the", "a", "and", "then", "with", "very", "some", "of", "today", "again"];

/** A CSV of texts whose class is told by its words (filler shared); every 10th text is long. */
function writeCorpus(dir: string, n = 360): string {
  const rng = new Rng(7);
  const pick = (xs: string[]) => xs[rng.int(xs.length)];
  const coin = () => rng.int(10) < 4;
  const rows = ["id,text,label"];
  for (let i = 0; i < n; i++) {
    const label = i % 2 === 0 ? "sport" : "food";
    const words = label === "sport" ? SPORT : FOOD;
    const len = i % 10 === 0 ? 60 : 6 + rng.int(8);
    const text = Array.from({ length: len }, () => (coin() ? pick(words) : pick(FILLER))).join(" ");
    rows.push(`${i},"${text}, item ${i}",${label}`);
  }
  const path = join(dir, "texts.csv");
  writeFileSync(path, rows.join("\n") + "\n");
  return path;
}

const adam = { name: "adam", lr: 0.003 };
const train = (extra: Record<string, unknown> = {}) => ({ epochs: 6, batchSize: 16, optimizer: adam, loss: { name: "ce" }, ...extra });
const student = { type: "bert", layers: 1, hidden: 8, heads: 2, intermediate: 16, dropout: 0 };
const kd = { name: "hinton", temperature: 2, lambda: 0.5 };

function recipe(csv: string, edit: (r: Record<string, any>) => void = () => {}): Record<string, any> {
  const r: Record<string, any> = {
    kind: "text-classification",
    name: "tiny-text",
    data: { source: "csv", path: csv, maxLength: 24, split: { validation: 0.2, test: 0.2 } },
    tokenizer: { train: { type: "wordpiece", vocabSize: 300 } },
    teacher: { model: { type: "bert", layers: 2, hidden: 16, heads: 2, intermediate: 32, dropout: 0 }, train: train({ keep: "best-validation" }) },
    students: [
      { name: "scratch", role: "scratch", model: student, train: train() },
      { name: "kd-logits", role: "distilled", model: student, train: train({ loss: kd }) },
      {
        name: "kd-inter",
        role: "distilled",
        model: student,
        train: train({
          loss: kd,
          intermediate: {
            terms: [
              { name: "hidden-mse", weight: 1 },
              { name: "embedding-mse", weight: 1 },
              { name: "attention-kl", weight: 1 },
              { name: "value-relation", weight: 1 },
              { name: "hidden-cosine", weight: 1 },
            ],
          },
        }),
      },
      { name: "distilbert", role: "distilled", model: { ...student, hidden: 16, intermediate: 32 }, init: { from: "teacher" }, train: train({ loss: kd }) },
    ],
    export: ["onnx", "hf", "web"],
  };
  edit(r);
  return r;
}

function writeRecipe(dir: string, r: Record<string, any>): string {
  const p = join(dir, "recipe.yaml");
  writeFileSync(p, stringify(r));
  return p;
}

test("distill run on a CSV: teacher, scratch, logit KD, intermediate KD and a DistilBERT-initialised student; class names, macro-F1, class counts and truncation recorded", { timeout: 600_000 }, () => {
  const dir = tempDir("text-run-");
  const csv = writeCorpus(dir);
  const out = join(dir, "out");
  const r = runCli(["run", writeRecipe(dir, recipe(csv)), "--out", out, "--seeds", "0", "--workers", "1"], { timeoutMs: 540_000 });
  assert.equal(r.code, 0, r.stderr);
  // Every 10th text is 60 words long: cut to 24 tokens, and counted in the log per split. The
  // others are at most 13 words + ", item N" (≤ 5 tokens with a 300-token vocabulary) + [CLS] + [SEP].
  const trunc = /truncated to 24 tokens: train (\d+) of (\d+), validation (\d+) of (\d+), test (\d+) of (\d+)/.exec(r.stderr);
  assert.ok(trunc, `no truncation line in:\n${r.stderr}`);
  assert.equal(Number(trunc[1]) + Number(trunc[3]) + Number(trunc[5]), 36, trunc[0]);
  assert.equal(Number(trunc[2]) + Number(trunc[4]) + Number(trunc[6]), 360, trunc[0]);

  const res = JSON.parse(readFileSync(join(out, "results.json"), "utf8"));
  assert.deepEqual(res.classes, ["food", "sport"], "class names in sorted order, kept in results");
  assert.deepEqual(res.runs.map((x: { name: string }) => x.name), ["teacher", "scratch", "kd-logits", "kd-inter", "distilbert"]);
  const counts = res.data.classCounts;
  const total = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  assert.equal(total(counts.train) + total(counts.validation) + total(counts.test), 360);
  for (const run of res.runs) {
    assert.ok(run.metrics.macroF1 >= 0 && run.metrics.macroF1 <= 1, `${run.name}: macro-F1 ${run.metrics.macroF1}`);
    assert.equal(run.confusion.flat().reduce((a: number, b: number) => a + b, 0), total(counts.test));
  }
  // The words decide the class: a teacher that learned nothing (labels misaligned with rows,
  // masks inverted) would sit near 50 %.
  const teacher = res.runs.find((x: { name: string }) => x.name === "teacher");
  assert.ok(teacher.metrics.accuracy > 0.85, `teacher accuracy ${teacher.metrics.accuracy}`);

  // The intermediate-KD student's checkpoint holds its projections (8 → 16 wide); the others do not.
  const seedDir = join(out, "seed-0");
  const ckpt = (name: string) => join(seedDir, readdirSync(seedDir).find((f) => f.startsWith(`${name}-`) && f.endsWith(".safetensors"))!);
  const inter = Object.keys(loadCheckpoint(ckpt("kd-inter")).tensors);
  assert.ok(inter.some((n) => n.startsWith("distill.proj.hidden-mse.")), inter.join(", "));
  assert.ok(!Object.keys(loadCheckpoint(ckpt("kd-logits")).tensors).some((n) => n.startsWith("distill.proj.")));
  // The checkpoint carries the tokenizer and class names, so the exported folder is complete.
  const cfg = JSON.parse(readFileSync(join(seedDir, "export", "kd-inter", "hf", "config.json"), "utf8"));
  assert.deepEqual(cfg.id2label, { 0: "food", 1: "sport" });
  assert.ok(existsSync(join(seedDir, "export", "kd-inter", "hf", "tokenizer.json")));
  assert.ok(existsSync(join(seedDir, "export", "kd-inter", "onnx", "model.onnx")) || existsSync(join(seedDir, "export", "kd-inter", "model.onnx")));
  // The browser folder bundles the first test texts with their classes (the page itself is tested in web-export.test.ts).
  const web = JSON.parse(readFileSync(join(seedDir, "export", "kd-inter", "web", "inputs.json"), "utf8")) as { texts: string[]; labels: number[]; source: string };
  assert.equal(web.source, "the first 8 test texts");
  const labelOf = new Map(readFileSync(csv, "utf8").trim().split("\n").slice(1).map((l) => [/"(.*)"/.exec(l)![1], l.slice(l.lastIndexOf(",") + 1)]));
  assert.deepEqual(web.labels.map((y) => res.classes[y]), web.texts.map((t) => labelOf.get(t)), "each bundled text with its own class");
  // DistilBERT's student starts from the teacher's block 0, embeddings and head.
  const settings = JSON.parse(readFileSync(ckpt("distilbert").replace(/\.safetensors$/, ".json"), "utf8"));
  assert.deepEqual(settings.config.init, { from: "teacher", layers: [0] });
  assert.match(readFileSync(join(out, "report.html"), "utf8"), /<h2>Data<\/h2>/);
});

test("bad text input: one line naming the file and what is wrong, exit code 2, nothing written", { timeout: 300_000 }, () => {
  const dir = tempDir("text-bad-");
  const csv = writeCorpus(dir, 60);
  const cases: [string, (p: string) => void, RegExp][] = [
    ["missing column", (p) => writeFileSync(p, readFileSync(csv, "utf8").replace("id,text,label", "id,body,label")), /bad\.csv: no "text" column/],
    ["ragged row", (p) => writeFileSync(p, readFileSync(csv, "utf8").replace(/\n5,"([^"]*)",food\n/, '\n5,"$1",food,extra\n')), /bad\.csv:7: 4 fields, but the header has 3/],
    ["not UTF-8", (p) => writeFileSync(p, Buffer.concat([Buffer.from("id,text,label\n1,caf"), Buffer.from([0xe9]), Buffer.from(",food\n2,x,sport\n")])), /bad\.csv:2: not UTF-8/],
  ];
  for (const [what, make, message] of cases) {
    const bad = join(dir, "bad.csv");
    make(bad);
    const out = join(dir, `out-${what.replace(/\W/g, "")}`);
    const r = runCli(["run", writeRecipe(dir, recipe(bad)), "--out", out, "--seeds", "0"]);
    assert.equal(r.code, 2, `${what}: ${r.stderr}`);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, `${what}: ${r.stderr}`);
    assert.match(lines[0], message, what);
    assert.ok(!existsSync(out) || snapshot(out).size === 0, `${what}: wrote into ${out}`);
  }
  // A class listed in data.classes with no example at all.
  const r = runCli(["run", writeRecipe(dir, recipe(csv, (x) => (x.data.classes = ["food", "sport", "weather"]))), "--out", join(dir, "out-empty"), "--seeds", "0"]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr.trim(), /data\.classes: class "weather" has no examples/);
});

test("--inference onnxruntime with text classifiers is refused with one line before anything trains", () => {
  const dir = tempDir("distill-text-ort-");
  const csv = writeCorpus(dir, 60);
  const out = join(dir, "out");
  const r = runCli(["run", writeRecipe(dir, recipe(csv)), "--out", out, "--seeds", "0", "--inference", "onnxruntime", "-q"]);
  assert.equal(r.code, 2, r.stderr);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /--inference onnxruntime: text classifiers \(model\.type bert\)/);
  const written = existsSync(out) ? [...snapshot(out).keys()].filter((f) => f.endsWith(".safetensors")) : [];
  assert.deepEqual(written, []);
});
