// The report page as a person sees it: real runs of the CLI (a classifier over two seeds, a
// language model over one), their results.json checked against hand-computed budgets and their
// own stored metrics, then each report.html opened in headless Chromium (Debian's
// /usr/bin/chromium, driven by playwright-core) at 1400 and 390 px: no console errors, no
// request but the file itself, no page-level horizontal scrolling, and the numbers on the page
// equal to results.json.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { stringify } from "yaml";
import type { Browser, Page } from "playwright-core";
import { eceFromBins, type ReliabilityBin } from "../src/eval/metrics.js";
import { renderHtmlReport, type LossCurve } from "../src/report/html.js";
import type { Results, RunRecord } from "../src/report/results.js";
import { REPO_ROOT, makeFashionFixture, runCli, tinyLMParts, writeTinyRecipe } from "./helpers/fixtures.js";

const CHROMIUM = "/usr/bin/chromium";
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} not found (apt-get install chromium): the report page is not rendered`;

let tmp = "";
let clsOut = "";
let lmOut = "";
let browser: Browser | undefined;

const read = (out: string) => JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as Results;

before(async () => {
  if (skip) return;
  tmp = mkdtempSync(join(tmpdir(), "distill-page-"));
  const data = makeFashionFixture(join(tmp, "data"), { train: 600, test: 200, seed: 7 });
  clsOut = join(tmp, "cls");
  const r = runCli(["run", writeTinyRecipe(join(tmp, "tiny.yaml")), "--out", clsOut, "--data", data, "--seeds", "0,1", "-q"]);
  assert.equal(r.code, 0, r.stderr);

  const { corpus, opt, model } = tinyLMParts(tmp);
  const lm = {
    kind: "lm",
    name: "page-lm",
    data: { corpus, tokenizer: "char", evalWindows: 8 },
    teacher: { model: { ...model, width: 16 }, train: { steps: 6, batchSize: 4, optimizer: opt, loss: { name: "ce" } } },
    students: [
      { name: "scratch", role: "scratch", model, train: { steps: 4, batchSize: 4, optimizer: opt, loss: { name: "ce" } } },
      { name: "jsd", role: "distilled", model, train: { steps: 4, batchSize: 4, modes: { corpus: 1, student: 1 }, optimizer: opt, loss: { name: "hinton", temperature: 2, divergence: "jsd" } } },
    ],
    samples: { prompts: 1, promptLength: 4, tokens: 6 },
  };
  writeFileSync(join(tmp, "lm.yaml"), stringify(lm));
  lmOut = join(tmp, "lm");
  const l = runCli(["run", join(tmp, "lm.yaml"), "--out", lmOut, "-q"]);
  assert.equal(l.code, 0, l.stderr);
  // The teacher's loss log gone (as for a teacher loaded from a checkpoint): the page must list it.
  for (const f of readdirSync(join(lmOut, "seed-0"))) if (/^teacher-.*\.metrics\.jsonl$/.test(f)) rmSync(join(lmOut, "seed-0", f));
  const rep = runCli(["report", lmOut]);
  assert.equal(rep.code, 0, rep.stderr);

  const { chromium } = await import("playwright-core");
  browser = await chromium.launch({ executablePath: CHROMIUM });
});

after(async () => {
  await browser?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const close = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

describe("results.json records what the page shows", { skip }, () => {
  test("classifier: settings with the budgets of the tiny recipe, confusion and reliability bins that agree with the metrics", () => {
    const res = read(clsOut);
    assert.deepEqual(res.classes, ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]);
    for (const r of res.runs) {
      // 600 training images, batch 32: 18 whole batches an epoch, 2 epochs.
      const st = r.settings!;
      assert.equal(st.steps, 36, r.name);
      assert.equal(st.examples, 36 * 32, r.name);
      assert.equal(st.epochs, 2);
      assert.equal(st.batchSize, 32);
      assert.equal(st.lr, 0.003);
      assert.equal(st.labels, 600, `${r.name} reads every label`);
      if (r.name === "distilled") assert.deepEqual([st.loss, st.temperature, st.lambda, st.divergence], ["hinton", 2, 0.5, "forward-kl"]);
      else assert.deepEqual([st.loss, st.temperature, st.lambda], ["ce", undefined, undefined]);
      // Confusion: 200 test images, the diagonal is the accuracy.
      const m = r.confusion!;
      assert.equal(m.length, 10);
      assert.equal(m.flat().reduce((a, b) => a + b, 0), 200);
      close(m.reduce((a, row, t) => a + row[t], 0) / 200, r.metrics.accuracy);
      // The stored bins reproduce the stored ECE, and their accuracy the stored accuracy.
      const bins = r.reliability!;
      assert.equal(bins.length, 15);
      assert.equal(bins.reduce((a, b) => a + b.count, 0), 200);
      close(eceFromBins(bins), r.metrics.ece);
      close(bins.reduce((a, b) => a + b.count * b.accuracy, 0) / 200, r.metrics.accuracy, 1e-9);
    }
  });

  test("language model: windows and tokens read, batch sources, bins that reproduce the ECE", () => {
    const res = read(lmOut);
    const by = Object.fromEntries(res.runs.map((r) => [r.name, r]));
    assert.deepEqual([by.teacher.settings!.steps, by.teacher.settings!.examples, by.teacher.settings!.tokens], [6, 24, 24 * 16]);
    assert.deepEqual([by.scratch.settings!.steps, by.scratch.settings!.examples, by.scratch.settings!.tokens], [4, 16, 16 * 16]);
    assert.deepEqual(by.jsd.settings!.modes, { corpus: 0.5, teacher: 0, student: 0.5 });
    assert.deepEqual([by.jsd.settings!.temperature, by.jsd.settings!.lambda, by.jsd.settings!.divergence, by.jsd.settings!.beta], [2, 0.5, "jsd", 0.5]);
    for (const r of res.runs) {
      assert.equal(r.confusion, undefined, "no vocabulary-sized confusion matrix");
      close(eceFromBins(r.reliability!), r.metrics.ece);
    }
  });

  test("environment: distill's version, Node, the engine's version, device and workers", () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { version: string };
    const jax = JSON.parse(readFileSync(join(REPO_ROOT, "node_modules/@jax-js/jax/package.json"), "utf8")) as { version: string };
    for (const out of [clsOut, lmOut]) {
      const e = read(out).environment!;
      assert.equal(e.distill, pkg.version);
      assert.equal(e.node, process.version);
      assert.equal(e.engine, `@jax-js/jax ${jax.version}`);
      assert.equal(e.device, "wasm");
      assert.equal(e.workers, "auto");
      if (e.commit !== undefined) assert.match(e.commit, /^[0-9a-f]{40}$/);
    }
  });
});

// ---------------------------------------------------------------- the page in Chromium

interface Seen {
  errors: string[];
  requests: string[];
}

async function open(file: string, width: number): Promise<{ page: Page; seen: Seen; url: string }> {
  const page = await browser!.newPage({ viewport: { width, height: 900 } });
  const seen: Seen = { errors: [], requests: [] };
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") seen.errors.push(`${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => seen.errors.push(`pageerror: ${e.message}`));
  page.on("request", (r) => seen.requests.push(r.url()));
  const url = pathToFileURL(file).href;
  await page.goto(url, { waitUntil: "load" });
  return { page, seen, url };
}

/** A table's header cells and body rows, as text. */
async function tableText(page: Page, selector: string): Promise<{ head: string[]; rows: string[][] }> {
  return page.$eval(selector, (t) => ({
    head: [...t.querySelectorAll("thead th")].map((c) => (c.textContent ?? "").trim()),
    rows: [...t.querySelectorAll("tbody tr")].map((tr) => [...tr.querySelectorAll("td")].map((c) => (c.textContent ?? "").trim())),
  }));
}

/** The cell of `row` (by its first cell) under `column` (by its header). */
function cell(t: { head: string[]; rows: string[][] }, row: string, column: string): string {
  const c = t.head.indexOf(column);
  assert.ok(c >= 0, `no column "${column}" in ${t.head.join(" | ")}`);
  const r = t.rows.find((x) => x[0] === row);
  assert.ok(r, `no row "${row}"`);
  return r[c];
}

/** Mean and sample std over seeds, formatted as the summary table does: "72.00 ± 4.95". */
function meanStd(xs: number[], scale: number, digits: number): string {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  if (xs.length === 1) return (m * scale).toFixed(digits);
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1));
  return `${(m * scale).toFixed(digits)} ± ${(sd * scale).toFixed(digits)}`;
}

const names = (res: Results) => [...new Set(res.runs.map((r) => r.name))];
const runsOf = (res: Results, name: string) => res.runs.filter((r) => r.name === name);

/** Pooled ECE, computed here from the raw bins: Σ_b |Σ_seeds n·acc − Σ_seeds n·conf| / N. */
function pooledEce(runs: RunRecord[]): number {
  const k = runs[0].reliability!.length;
  let n = 0;
  let sum = 0;
  for (let b = 0; b < k; b++) {
    const bs: ReliabilityBin[] = runs.map((r) => r.reliability![b]);
    sum += Math.abs(bs.reduce((a, x) => a + x.count * x.accuracy, 0) - bs.reduce((a, x) => a + x.count * x.confidence, 0));
    n += bs.reduce((a, x) => a + x.count, 0);
  }
  return sum / n;
}

/** What must hold at every width, for either kind of page. */
async function commonChecks(page: Page, seen: Seen, url: string, res: Results, width: number): Promise<void> {
  assert.deepEqual(seen.errors, [], "no console errors or warnings");
  assert.deepEqual(seen.requests, [url], "nothing loaded but the file itself");
  // A string, evaluated in the page: the test's TypeScript has no DOM types.
  const [scrollWidth, innerWidth] = (await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")) as [number, number];
  assert.ok(scrollWidth <= innerWidth, `page scrolls sideways at ${width} px: ${scrollWidth} > ${innerWidth}`);
  // Every verdict lies within the screen, its text at a readable size.
  for (const v of await page.locator(".verdict").all()) {
    const box = (await v.boundingBox())!;
    assert.ok(box.x >= 0 && box.x + box.width <= innerWidth, `verdict at ${box.x}+${box.width} of ${innerWidth}`);
    const size = await v.locator("strong").first().evaluate((e) => parseFloat((globalThis as unknown as { getComputedStyle(x: unknown): { fontSize: string } }).getComputedStyle(e).fontSize));
    assert.ok(size >= 13, `verdict text ${size}px`);
  }
  // Settings per run, as recorded.
  const st = await tableText(page, "#settings table");
  for (const name of names(res)) {
    const s = runsOf(res, name)[0].settings!;
    assert.equal(cell(st, name, "steps"), s.steps.toLocaleString("en-US"), `${name} steps`);
    assert.equal(cell(st, name, "lr"), String(s.lr));
    assert.equal(cell(st, name, "batch"), String(s.batchSize));
    assert.equal(cell(st, name, "T"), s.temperature === undefined ? "–" : String(s.temperature));
    assert.equal(cell(st, name, "λ"), s.lambda === undefined ? "–" : String(s.lambda));
    assert.equal(cell(st, name, res.classes ? "examples read" : "windows read"), s.examples.toLocaleString("en-US"));
    if (res.classes) assert.equal(cell(st, name, "labels read"), s.labels!.toLocaleString("en-US"));
    else assert.equal(cell(st, name, "tokens read"), s.tokens!.toLocaleString("en-US"));
  }
  // Calibration: the ECE beside each diagram, from the bins (pooled over seeds).
  for (const name of names(res)) {
    const shown = await page.locator(`.ece[data-run="${name}"]`).textContent();
    const runs = runsOf(res, name);
    assert.equal(shown, pooledEce(runs).toFixed(4), `${name} ECE`);
    if (runs.length === 1) assert.equal(shown, runs[0].metrics.ece.toFixed(4));
  }
  // Environment.
  const env = res.environment!;
  const dd = async (key: string) => page.locator(`dd[data-key="${key}"]`).textContent();
  assert.equal(await dd("distill"), env.distill);
  assert.equal(await dd("node"), env.node);
  assert.equal(await dd("engine"), env.engine);
  assert.equal(await dd("device"), env.device);
  assert.equal(await dd("workers"), String(env.workers));
}

describe("the report page in Chromium", { skip }, () => {
  for (const width of [1400, 390]) {
    test(`classifier page at ${width} px`, async () => {
      const res = read(clsOut);
      const { page, seen, url } = await open(join(clsOut, "report.html"), width);
      try {
        await commonChecks(page, seen, url, res, width);
        // Summary table: accuracy, agreement (mean ± std over the two seeds), ECE, test loss.
        const sum = await tableText(page, "section:has(h2:text-is('Summary')) table");
        for (const name of names(res)) {
          const rs = runsOf(res, name);
          assert.equal(cell(sum, name, "accuracy %"), meanStd(rs.map((r) => r.metrics.accuracy), 100, 2), `${name} accuracy`);
          assert.equal(cell(sum, name, "agreement %"), meanStd(rs.map((r) => r.metrics.agreement), 100, 2));
          assert.equal(cell(sum, name, "test loss"), (rs.reduce((a, r) => a + r.metrics.loss, 0) / rs.length).toFixed(4));
          assert.equal(cell(sum, name, "params"), rs[0].params.toLocaleString("en-US"));
        }
        // Per-class accuracy and confusion counts, summed over the seeds.
        const pc = await tableText(page, "#per-class table");
        for (const name of names(res)) {
          const m = Array.from({ length: 10 }, (_, t) => Array.from({ length: 10 }, (_, p) => runsOf(res, name).reduce((a, r) => a + r.confusion![t][p], 0)));
          res.classes!.forEach((cls, t) => {
            const total = m[t].reduce((a, b) => a + b, 0);
            assert.equal(cell(pc, cls, name), total ? ((m[t][t] / total) * 100).toFixed(1) : "–", `${name} ${cls}`);
          });
          const shown = await page.locator(`svg[data-run="${name}"] .cm-n`).evaluateAll((els) => els.map((e) => [e.getAttribute("data-cell"), e.textContent]));
          const want = m.flatMap((row, t) => row.flatMap((c, p) => (c > 0 ? [[`${t},${p}`, String(c)]] : [])));
          assert.deepEqual(shown, want, `${name} confusion matrix`);
        }
        // Captions say what the data is: two seeds here.
        const body = (await page.textContent("body"))!;
        assert.match(body, /Bars: mean over 2 seeds; whiskers: ± sample std/);
        assert.match(body, /counts summed over 2 seeds/);
        assert.doesNotMatch(body, /No training log/, "every run of this page has its log");
      } finally {
        await page.close();
      }
    });

    test(`language-model page at ${width} px`, async () => {
      const res = read(lmOut);
      const { page, seen, url } = await open(join(lmOut, "report.html"), width);
      try {
        await commonChecks(page, seen, url, res, width);
        const sum = await tableText(page, "section:has(h2:text-is('Summary')) table");
        for (const r of res.runs) {
          assert.equal(cell(sum, r.name, "held-out loss (nats/token)"), r.metrics.loss.toFixed(4));
          assert.equal(cell(sum, r.name, "perplexity"), (r.metrics as unknown as { perplexity: number }).perplexity.toFixed(3));
        }
        assert.equal(await page.locator("#per-class").count(), 0, "no per-class table for a language model");
        const body = (await page.textContent("body"))!;
        // One seed: no whiskers promised, no "mean ± std over seeds".
        assert.doesNotMatch(body, /whiskers|± std over seeds/);
        assert.match(body, /One seed: each bar is that seed's value/);
        // The run whose log was removed is listed, not dropped.
        const missing = (await page.locator(".no-logs").textContent()) ?? "";
        assert.match(missing, /No training log/);
        assert.match(missing, /teacher\s*seed 0/);
        assert.doesNotMatch(missing, /scratch|jsd/);
      } finally {
        await page.close();
      }
    });
  }
});

// ---------------------------------------------------------------- without a browser

/** A hand-made classifier results file; `seeds` seeds of a teacher, a scratch and a distilled run. */
function handMade(seeds: number[]): Results {
  const runs: RunRecord[] = seeds.flatMap((seed) =>
    (["teacher", "scratch", "distilled"] as const).map((role) => ({
      name: role,
      role,
      model: "mlp",
      params: 100,
      seed,
      metrics: { accuracy: 0.8, agreement: 0.9, ece: 0.05, loss: 0.5 },
      seconds: 1,
    })),
  );
  return { recipe: "r", device: "wasm", runs };
}

describe("report page sections (no browser)", () => {
  const curve = (name: string, seed: number): LossCurve => ({ name, seed, points: [{ step: 1, loss: 1 }, { step: 2, loss: 0.5 }] });

  test("runs without a loss log are listed by name and seed, not dropped", () => {
    const page = renderHtmlReport(handMade([0, 1]), [curve("teacher", 0), curve("teacher", 1), curve("scratch", 0), curve("distilled", 0), curve("distilled", 1)]);
    const note = page.slice(page.indexOf('<div class="no-logs">'), page.indexOf("</div>", page.indexOf('<div class="no-logs">')));
    assert.match(note, /for this run/);
    assert.match(note, /<li>scratch <span class="muted">seed 1<\/span><\/li>/);
    assert.equal(note.match(/<li>/g)?.length, 1);
    const none = renderHtmlReport(handMade([0]), []);
    assert.match(none, /for these 3 runs/);
  });

  test("captions follow the number of seeds", () => {
    const one = renderHtmlReport(handMade([0]), []);
    assert.doesNotMatch(one, /whiskers|over seeds|over \d+ seeds/);
    assert.match(one, /One seed: each bar is that seed&#39;s value/);
    const two = renderHtmlReport(handMade([0, 1]), []);
    assert.match(two, /Bars: mean over 2 seeds; whiskers: ± sample std; dots: individual seeds/);
    assert.match(two, /points: mean; lines: ± std over seeds/);
  });

  test("results written before settings, confusion, bins and environment were recorded still render, saying so", () => {
    const page = renderHtmlReport(handMade([0]), []);
    assert.match(page, /not recorded \(e\.g\. a teacher loaded from a checkpoint\)/);
    assert.match(page, /No confusion matrices in these results/);
    assert.match(page, /No reliability bins in these results/);
    assert.match(page, /Environment<\/h2>\n<p class="muted">Not recorded/);
  });

  test("distill report: a malformed confusion matrix or reliability bin in results.json is a one-line user error", () => {
    const dir = mkdtempSync(join(tmpdir(), "distill-page-bad-"));
    try {
      for (const [field, value, where] of [
        ["confusion", [[1, -2]], "runs[0].confusion[0][1]"],
        ["reliability", [{ count: 1, confidence: "high", accuracy: 1 }], "runs[0].reliability[0].confidence"],
      ] as const) {
        const res = handMade([0]);
        (res.runs[0] as unknown as Record<string, unknown>)[field] = value;
        writeFileSync(join(dir, "results.json"), JSON.stringify(res));
        const r = runCli(["report", dir]);
        assert.equal(r.code, 2, r.stderr);
        assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
        assert.ok(r.stderr.includes(where), r.stderr);
        assert.equal(existsSync(join(dir, "report.html")), false);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
