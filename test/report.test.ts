// The HTML report: rendering a small hand-made results file (escaping, verdicts, charts,
// determinism), reading the training logs back, and the `distill report` command.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderHtmlReport, type LossCurve } from "../src/report/html.js";
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
    assert.match(html, /kd-good vs scratch: \+2\.00 points of test accuracy \(mean of 2 seeds\): distillation helped/);
    assert.match(html, /kd-bad vs scratch: -2\.00 points of test accuracy \(mean of 2 seeds\): distillation did NOT help/);
    assert.match(html, /<div class="verdict good"><div class="badge"><b>\+2\.00 pts<\/b><span>distillation helped<\/span>/);
    assert.match(html, /<div class="verdict bad"><div class="badge"><b>-2\.00 pts<\/b><span>distillation did NOT help<\/span>/);
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
    assert.match(html, /did NOT help/);
    assert.equal(html.match(/<path d="M/g)?.length, 1);
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
