// The HTML report: rendering a small hand-made results file (escaping, verdicts, charts,
// determinism), reading the training logs back, and the `distill report` command.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderHtmlReport, showText, type LossCurve, type ReportResults } from "../src/report/html.js";
import { parseMetricsLog, readCurves } from "../src/report/curves.js";
import type { Results, RunRecord } from "../src/report/results.js";
import { runCli } from "./helpers/fixtures.js";

const EVIL = `tiny <script>alert("x")</script> & 'co'`;

function run(name: string, role: RunRecord["role"], params: number, seed: number, accuracy: number): RunRecord {
  return {
    name,
    role,
    model: role === "teacher" ? "mlp 784-64-10" : "mlp 784-16-10",
    params,
    seed,
    metrics: { accuracy, agreement: role === "teacher" ? 1 : accuracy + 0.03, ece: 0.02, loss: 1 - accuracy },
    seconds: 3.5 + seed,
  };
}

/** Two seeds; one distilled student beats scratch, the other does not. */
function sample(): Results {
  const runs: RunRecord[] = [];
  for (const seed of [0, 1]) {
    runs.push(run("teacher", "teacher", 50890, seed, 0.9 + seed * 0.01));
    runs.push(run("scratch", "scratch", 12730, seed, 0.85 + seed * 0.01));
    runs.push(run("kd-good", "distilled", 12730, seed, 0.87 + seed * 0.01));
    runs.push(run("kd-bad", "distilled", 12730, seed, 0.83 + seed * 0.01));
  }
  return { recipe: EVIL, device: "wasm", runs };
}

function sampleCurves(): LossCurve[] {
  return ["teacher", "scratch", "kd-good", "kd-bad"].flatMap((name, i) =>
    [0, 1].map((seed) => ({
      name,
      seed,
      points: Array.from({ length: 20 }, (_, k) => ({ step: (k + 1) * 10, loss: 2 / (k + 1 + i + seed) })),
    })),
  );
}

describe("renderHtmlReport", () => {
  const results = sample();
  const html = renderHtmlReport(results, sampleCurves(), { generated: "2025-01-02T03:04:05.000Z" });

  test("is one HTML document with inline CSS and SVG only", () => {
    assert.match(html, /^<!doctype html>\n<html lang="en">/);
    assert.match(html, /<\/html>\n$/);
    assert.match(html, /<style>/);
    assert.doesNotMatch(html, /<script/i, "no scripts at all");
    assert.doesNotMatch(html, /\b(src|href)=|url\(|@import|<link/i, "nothing loaded from elsewhere");
    // The only URL is the SVG namespace.
    assert.deepEqual([...new Set(html.match(/https?:\/\/[^"\s]+/g))], ["http://www.w3.org/2000/svg"]);
  });

  test("escapes text from the results", () => {
    assert.ok(html.includes("tiny &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;co&#39;"));
    assert.ok(!html.includes("<script>alert"));
  });

  test("shows both verdicts, the losing one as prominently as the winning one", () => {
    // Both seeds differ by exactly 2 points: a zero-width interval that excludes 0.
    assert.match(html, /kd-good vs scratch: \+2\.00 points of test accuracy \(95 % CI \+2\.00 to \+2\.00, 2 seeds\): helped\./);
    assert.match(html, /kd-bad vs scratch: -2\.00 points of test accuracy \(95 % CI -2\.00 to -2\.00, 2 seeds\): hurt\./);
    assert.match(html, /<div class="verdict good"><div class="badge"><b>\+2\.00 pts<\/b><span>distillation helped<\/span>/);
    assert.match(html, /<div class="verdict bad"><div class="badge"><b>-2\.00 pts<\/b><span>distillation hurt<\/span>/);
  });

  test("has the summary table, every run, and three charts", () => {
    for (const name of ["teacher", "scratch", "kd-good", "kd-bad"]) assert.ok(html.includes(`<td>${name}</td>`), name);
    assert.ok(html.includes("<td class=\"num\">12,730</td>"));
    assert.ok(html.includes("<td class=\"num\">0.05</td>"), "size in MB: 12,730 × 4 bytes");
    assert.ok(html.includes("85.50 ± 0.71"), "accuracy mean ± std (scratch)");
    assert.equal(html.match(/<svg /g)?.length, 3);
    for (const t of ["Test accuracy per run", "Test accuracy against parameter count", "Training loss curves"]) {
      assert.ok(html.includes(`<title>${t}</title>`), t);
    }
    // One line per run and seed in the loss chart.
    assert.equal(html.match(/<path d="M/g)?.length, 8);
    assert.ok(html.includes("generated 2025-01-02T03:04:05.000Z"));
  });

  test("is deterministic", () => {
    const again = renderHtmlReport(sample(), sampleCurves(), { generated: "2025-01-02T03:04:05.000Z" });
    assert.equal(again, html);
  });

  test("still renders with no curves, one seed, no scratch student", () => {
    const one = { ...results, runs: results.runs.filter((r) => r.seed === 0 && r.role !== "scratch") };
    const page = renderHtmlReport(one, []);
    assert.equal(page.match(/<svg /g)?.length, 3);
    assert.ok(page.includes("no training logs found"));
    assert.ok(page.includes("No verdict: no scratch student"));
    assert.doesNotMatch(page, /generated/);
  });
});

/** A language-model run: held-out loss in nats/token, perplexity and bits/char beside it. */
function lmRun(name: string, role: RunRecord["role"], params: number, seed: number, loss: number, charLevel = true): RunRecord {
  const metrics = {
    accuracy: 0.5 - loss / 10,
    agreement: role === "teacher" ? 1 : 0.8 - loss / 10,
    ece: 0.01,
    loss,
    perplexity: Math.exp(loss),
    ...(charLevel ? { bitsPerChar: loss / Math.LN2 } : {}),
  };
  return { name, role, model: role === "teacher" ? "llama 4x128 h4 ctx64" : "llama 2x64 h2 ctx64", params, seed, metrics, seconds: 2 + seed };
}

/** Two seeds; forward KL beats scratch by 0.05 nats/token, reverse KL loses by as much. */
function lmSample(charLevel = true): ReportResults {
  const runs: RunRecord[] = [];
  for (const seed of [0, 1]) {
    runs.push(lmRun("teacher", "teacher", 1078656, seed, 1.2 + seed * 0.02, charLevel));
    runs.push(lmRun("scratch", "scratch", 145856, seed, 1.6 + seed * 0.02, charLevel));
    runs.push(lmRun("fkl", "distilled", 145856, seed, 1.55 + seed * 0.02, charLevel));
    runs.push(lmRun("rkl", "distilled", 145856, seed, 1.65 + seed * 0.02, charLevel));
  }
  const samples = ["teacher", "scratch", "fkl", "rkl"].flatMap((name) =>
    [0, 1].map((seed) => ({ name, seed, prompt: `Q${seed}: `, text: `${name} said <b>hi</b>\tthen "left" & rang\u0007\nnext line\u009d` })),
  );
  return { recipe: EVIL, device: "wasm", runs, samples };
}

describe("renderHtmlReport for language models", () => {
  const curves = sampleCurves().map((c) => ({ ...c, name: c.name.replace("kd-good", "fkl").replace("kd-bad", "rkl") }));
  const html = renderHtmlReport(lmSample(), curves, { generated: "2025-01-02T03:04:05.000Z" });

  test("is one self-contained HTML document, text escaped", () => {
    assert.match(html, /^<!doctype html>\n<html lang="en">/);
    assert.doesNotMatch(html, /<script/i);
    assert.doesNotMatch(html, /\b(src|href)=|url\(|@import|<link/i);
    assert.ok(html.includes("tiny &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;co&#39;"));
  });

  test("judges by held-out loss: lower than scratch helped, higher did NOT", () => {
    assert.match(html, /fkl vs scratch: held-out loss −0\.0500 nats\/token \(95 % CI −0\.0500 to −0\.0500, 2 seeds\): helped\./);
    assert.match(html, /rkl vs scratch: held-out loss \+0\.0500 nats\/token \(95 % CI \+0\.0500 to \+0\.0500, 2 seeds\): hurt\./);
    // Each badge beside its own run's line: green for the lower loss, red for the higher.
    assert.match(html, /<div class="verdict good"><div class="badge"><b>−0\.0500 nats\/tok<\/b><span>distillation helped<\/span><\/div><div><p><strong>fkl vs scratch:/);
    assert.match(html, /<div class="verdict bad"><div class="badge"><b>\+0\.0500 nats\/tok<\/b><span>distillation hurt<\/span><\/div><div><p><strong>rkl vs scratch:/);
    assert.doesNotMatch(html, /points of test accuracy/);
  });

  test("has the language-model table", () => {
    for (const h of ["held-out loss (nats/token)", "perplexity", "bits/char", "agreement %", "next-token accuracy %", "train s"]) {
      assert.ok(html.includes(`<th class="num">${h}</th>`), h);
    }
    assert.doesNotMatch(html, /<th[^>]*>ECE</);
    assert.ok(html.includes(`<td class="num">1.6100 ± 0.0141</td>`), "scratch held-out loss, mean ± std");
    assert.ok(html.includes(`<td class="num">${((Math.exp(1.6) + Math.exp(1.62)) / 2).toFixed(3)}</td>`), "scratch perplexity");
    assert.ok(html.includes(`<td class="num">${((1.6 + 1.62) / 2 / Math.LN2).toFixed(3)}</td>`), "scratch bits/char");
    assert.ok(html.includes(`<td class="num">0.58</td>`), "size in MB");
    // Without a char tokenizer there is no bits/char column.
    const bpe = renderHtmlReport(lmSample(false), []);
    assert.doesNotMatch(bpe, /bits\/char/);
    assert.ok(bpe.includes(`<th class="num">perplexity</th>`));
  });

  test("charts held-out loss, lower is better, with scratch as the line to beat", () => {
    assert.equal(html.match(/<svg /g)?.length, 3);
    for (const t of ["Held-out loss per run", "Held-out loss against parameter count", "Training loss curves"]) {
      assert.ok(html.includes(`<title>${t}</title>`), t);
    }
    assert.doesNotMatch(html, /Test accuracy/);
    assert.ok(html.includes("held-out loss (nats/token)</text>"), "y axis title");
    assert.match(html, /Lower is better/);
    assert.ok(html.includes("best scratch: scratch, 1.6100 nats/token</text>"));
    assert.equal(html.match(/<line [^>]*class="ref"\/>/g)?.length, 2, "the dashed line and its key");
    assert.equal(html.match(/<path d="M/g)?.length, 8, "loss curves as for classification");
  });

  test("shows every run's samples: prompt muted, text escaped, control characters visible", () => {
    assert.match(html, /<h2>Samples<\/h2>/);
    for (const name of ["teacher", "scratch", "fkl", "rkl"]) {
      assert.ok(html.includes(`<span class="prompt">Q1: </span>${name} said &lt;b&gt;hi&lt;/b&gt;`), name);
    }
    assert.doesNotMatch(html, /<b>hi/);
    assert.equal(html.match(/<pre class="sample-text">/g)?.length, 8);
    assert.ok(html.includes(`<span class="ctl" title="U+0009 tab">\\t</span>then &quot;left&quot; &amp; rang<span class="ctl" title="U+0007 bell">\\a</span>`));
    // A line feed is marked and still breaks the line; a C1 control is shown as \xNN.
    assert.ok(html.includes(`<span class="ctl" title="U+000A line feed">\\n</span>\nnext line<span class="ctl" title="U+009D control character">\\x9D</span></pre>`));
    assert.doesNotMatch(html, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/, "no raw control characters left");
    // Runs in table order, each seed's samples in seed order.
    const order = [...html.matchAll(/<h3><span><span class="swatch"[^>]*><\/span>([^<]+)<\/span>/g)].map((m) => m[1]);
    assert.deepEqual(order, ["teacher", "scratch", "fkl", "rkl"]);
  });

  test("showText escapes HTML and makes every control character visible", () => {
    assert.equal(showText(`a<b>&"'`), "a&lt;b&gt;&amp;&quot;&#39;");
    assert.equal(showText("\b\u0000\u007f\u001b"), [
      `<span class="ctl" title="U+0008 backspace">\\b</span>`,
      `<span class="ctl" title="U+0000 null">\\0</span>`,
      `<span class="ctl" title="U+007F delete">\\x7F</span>`,
      `<span class="ctl" title="U+001B escape">\\x1B</span>`,
    ].join(""));
    assert.equal(showText("plain é ü ✓"), "plain é ü ✓");
  });

  test("is deterministic", () => {
    assert.equal(renderHtmlReport(lmSample(), curves, { generated: "2025-01-02T03:04:05.000Z" }), html);
  });

  test("still renders with no samples, no curves, no scratch student", () => {
    const r = lmSample();
    const page = renderHtmlReport({ ...r, runs: r.runs.filter((x) => x.role !== "scratch"), samples: [] }, []);
    assert.ok(page.includes("No verdict: no scratch student"));
    assert.ok(page.includes("No samples in these results."));
    assert.ok(page.includes("no training logs found"));
    assert.equal(page.match(/<svg /g)?.length, 3);
  });

  test("a run without a finite perplexity makes it a classification report", () => {
    const r = lmSample();
    const mixed = { ...r, runs: r.runs.map((x, i) => (i === 0 ? run("teacher", "teacher", 100, 0, 0.9) : x)) };
    const page = renderHtmlReport(mixed, []);
    assert.ok(page.includes("<title>Test accuracy per run</title>"));
    assert.doesNotMatch(page, /Samples/);
  });
});

describe("readCurves", () => {
  let out = "";
  before(() => {
    out = mkdtempSync(join(tmpdir(), "distill-report-"));
    const rec = (run: string, step: number, loss: number) => JSON.stringify({ run, epoch: 1, step, loss, lr: 0.001, seconds: step / 100 });
    mkdirSync(join(out, "seed-0"));
    mkdirSync(join(out, "seed-1"));
    // Two configs of "scratch" in seed 0: the newer log wins.
    const old = join(out, "seed-0", "scratch-aaaaaaaaaa.metrics.jsonl");
    writeFileSync(old, [rec("scratch", 10, 9), rec("scratch", 20, 8)].join("\n") + "\n");
    utimesSync(old, new Date(2020, 0, 1), new Date(2020, 0, 1));
    writeFileSync(
      join(out, "seed-0", "scratch-0123456789.metrics.jsonl"),
      [rec("scratch", 20, 1.5), "{not json", "", rec("scratch", 10, 2), "null", `{"step":30}`, rec("scratch", 30, 1), `{"run":"scratch","step":40,"lo`].join("\n"),
    );
    // Another run whose name starts with "scratch-" is not scratch's log.
    writeFileSync(join(out, "seed-0", "scratch-1k-0123456789.metrics.jsonl"), rec("scratch-1k", 10, 5) + "\n");
    writeFileSync(join(out, "seed-0", "scratch-0123456789.safetensors"), "");
    // A resumed run logs a step again: the later record wins.
    writeFileSync(join(out, "seed-1", "scratch-fedcba9876.metrics.jsonl"), [rec("scratch", 10, 3), rec("scratch", 20, 2.5), rec("scratch", 20, 2.4)].join("\n") + "\n");
    // teacher has no log; kd has an empty one.
    writeFileSync(join(out, "seed-1", "kd-fedcba9876.metrics.jsonl"), "");
  });
  after(() => rmSync(out, { recursive: true, force: true }));

  test("finds the newest log per run and seed and skips malformed lines", () => {
    const results: Results = {
      recipe: "r",
      device: "wasm",
      runs: [0, 1].flatMap((seed) => [
        run("teacher", "teacher", 100, seed, 0.9),
        run("scratch", "scratch", 10, seed, 0.8),
        run("kd", "distilled", 10, seed, 0.8),
      ]),
    };
    assert.deepEqual(readCurves(out, results), [
      { name: "scratch", seed: 0, points: [{ step: 10, loss: 2 }, { step: 20, loss: 1.5 }, { step: 30, loss: 1 }] },
      { name: "scratch", seed: 1, points: [{ step: 10, loss: 3 }, { step: 20, loss: 2.4 }] },
    ]);
  });

  test("parses the pipeline's real log format", () => {
    const line = `{"run":"teacher","epoch":1,"step":50,"loss":1.019976348876953,"lr":0.001,"seconds":0.895918022}`;
    assert.deepEqual(parseMetricsLog(line + "\n"), [{ step: 50, loss: 1.019976348876953 }]);
  });
});

describe("distill report", () => {
  let tmp = "";
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), "distill-report-cli-"));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  test("regenerates report.html from results.json", () => {
    const out = join(tmp, "good");
    mkdirSync(join(out, "seed-0"), { recursive: true });
    writeFileSync(join(out, "results.json"), JSON.stringify(sample(), null, 2));
    writeFileSync(join(out, "seed-0", "kd-bad-0123456789.metrics.jsonl"), `{"run":"kd-bad","epoch":1,"step":5,"loss":0.7,"lr":0.001,"seconds":1}\n`);
    const r = runCli(["report", out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `report: ${join(out, "report.html")}\n`);
    const html = readFileSync(join(out, "report.html"), "utf8");
    assert.match(html, /distillation hurt/);
    assert.equal(html.match(/<path d="M/g)?.length, 1);
  });

  test("regenerates a language-model report, keeping perplexity, bits/char and samples", () => {
    const out = join(tmp, "lm");
    mkdirSync(join(out, "seed-0"), { recursive: true });
    const results = lmSample();
    writeFileSync(join(out, "results.json"), JSON.stringify(results, null, 2));
    writeFileSync(join(out, "seed-0", "rkl-0123456789.metrics.jsonl"), `{"run":"rkl","epoch":1,"step":5,"loss":0.7,"lr":0.001,"seconds":1}\n`);
    const r = runCli(["report", out]);
    assert.equal(r.code, 0, r.stderr);
    const html = readFileSync(join(out, "report.html"), "utf8");
    assert.match(html, /rkl vs scratch: held-out loss \+0\.0500 nats\/token \(95 % CI \+0\.0500 to \+0\.0500, 2 seeds\): hurt\./);
    assert.ok(html.includes("<title>Held-out loss per run</title>"));
    assert.ok(html.includes(`<th class="num">bits/char</th>`));
    assert.equal(html.match(/<pre class="sample-text">/g)?.length, 8);
    assert.ok(html.includes("fkl said &lt;b&gt;hi&lt;/b&gt;"));
    // The lone logged point is drawn, as a dot.
    assert.match(html, /<circle [^>]*><title>rkl seed 0: step 5, loss 0\.7000<\/title><\/circle>/);
    // Same results and logs, same page (apart from the generation time).
    const strip = (s: string) => s.replace(/ · generated [^<]*/, "");
    assert.equal(strip(html), strip(renderHtmlReport(results, readCurves(out, results))));
  });

  test("a malformed sample in results.json is a one-line user error", () => {
    const out = join(tmp, "lm-bad");
    mkdirSync(out);
    writeFileSync(join(out, "results.json"), JSON.stringify({ ...lmSample(), samples: [{ name: "x", seed: 0, prompt: 1, text: "" }] }));
    const r = runCli(["report", out]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^distill: error: .*results\.json: not a distill results file: samples\[0\]\.prompt: .*\n$/);
  });

  test("a missing or invalid results.json is a one-line user error", () => {
    const empty = join(tmp, "empty");
    mkdirSync(empty);
    let r = runCli(["report", empty]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^distill: error: .*results\.json: not found .*\n$/);

    writeFileSync(join(empty, "results.json"), "{ not json");
    r = runCli(["report", empty]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^distill: error: .*results\.json: not valid JSON .*\n$/);

    writeFileSync(join(empty, "results.json"), JSON.stringify({ recipe: "r", device: "wasm", runs: [{ name: "x" }] }));
    r = runCli(["report", empty]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^distill: error: .*results\.json: not a distill results file: runs\[0\]\.role: .*\n$/);
    assert.doesNotMatch(r.stderr, /\n./, "one line");
  });
});
