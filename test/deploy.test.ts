// Deployment numbers end to end: `distill run` on recipes with `export: [onnx]` writes each run's
// exports and records `deploy` in results.json, prints the deployment table, and the report
// shows it; `distill bench --workload deploy` prints the teacher and the student. The exported
// files must be the run's own final parameters (not, say, the initial ones), so they are
// compared with what loadExportable reads from the run's checkpoint.
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { decodeSafetensors } from "../src/checkpoint/safetensors.js";
import { loadExportable } from "../src/export/exportable.js";
import { exportOnnx } from "../src/export/onnx.js";
import type { DeployRecord } from "../src/export/deploy.js";
import { formatDeployTable, type Results } from "../src/report/results.js";
import { makeFashionFixture, runCli, tinyLMParts, writeTinyRecipe } from "./helpers/fixtures.js";
import { tempDir } from "./helpers/tmp.js";

let tmp = "";
let clsOut = "";
let clsStdout = "";
let lmOut = "";

const read = (out: string) => JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as Results;

function checkLatency(d: DeployRecord, where: string, fasterInBatches: boolean) {
  for (const [k, l] of Object.entries(d.latency)) {
    for (const v of [l!.batch1, l!.batch64]) assert.ok(Number.isFinite(v) && v > 0, `${where} ${k}: ${v}`);
    // Batching amortises the per-call overhead, which dominates a tiny model's one-example call
    // (measured ≥ 5× for these MLPs on a busy 2-core machine: a genuine margin, not noise).
    if (fasterInBatches) assert.ok(l!.batch64 < l!.batch1, `${where} ${k}: batch 64 ${l!.batch64} ms/example vs batch 1 ${l!.batch1}`);
  }
  assert.ok(d.latency.onnxruntime, `${where}: no onnxruntime latency`);
}

/** The checkpoint of run NAME in OUT/seed-0. */
function checkpointOf(out: string, name: string): string {
  const f = readdirSync(join(out, "seed-0")).find((x) => x.startsWith(`${name}-`) && x.endsWith(".safetensors"));
  assert.ok(f, `no checkpoint for ${name}`);
  return join(out, "seed-0", f);
}

before(() => {
  tmp = tempDir("distill-deploy-");
  const data = makeFashionFixture(join(tmp, "data"), { train: 300, test: 100, seed: 7 });
  const recipe = writeTinyRecipe(join(tmp, "tiny.yaml"), (r) => {
    r.export = ["onnx"];
    (r.teacher as { train: { epochs: number } }).train.epochs = 1;
  });
  clsOut = join(tmp, "cls");
  const r = runCli(["run", recipe, "--out", clsOut, "--data", data, "-q"]);
  assert.equal(r.code, 0, r.stderr);
  clsStdout = r.stdout;

  const { corpus, opt, model } = tinyLMParts(tmp);
  const lm = {
    kind: "lm",
    name: "deploy-lm",
    data: { corpus, tokenizer: "char", evalWindows: 4 },
    teacher: { model: { ...model, width: 16 }, train: { steps: 3, batchSize: 4, optimizer: opt, loss: { name: "ce" } } },
    students: [{ name: "scratch", role: "scratch", model, train: { steps: 3, batchSize: 4, optimizer: opt, loss: { name: "ce" } } }],
    samples: { prompts: 0, promptLength: 4, tokens: 4, scoredPrompts: 0 },
    export: ["onnx"],
  };
  writeFileSync(join(tmp, "lm.yaml"), stringify(lm));
  lmOut = join(tmp, "lm");
  const l = runCli(["run", join(tmp, "lm.yaml"), "--out", lmOut, "-q"]);
  assert.equal(l.code, 0, l.stderr);
});

describe("distill run with export: [onnx]", () => {
  test("classifier: every run carries deploy, and its files are the run's final parameters", () => {
    const res = read(clsOut);
    assert.deepEqual(res.runs.map((r) => r.name), ["teacher", "scratch", "distilled"]);
    for (const r of res.runs) {
      const d = r.deploy!;
      assert.ok(d, `${r.name}: no deploy`);
      const dir = join(clsOut, "seed-0", "export", r.name);
      assert.deepEqual(readdirSync(dir).sort(), ["model.onnx", "model.safetensors"]);
      assert.equal(d.bytes.onnx, readFileSync(join(dir, "model.onnx")).length);
      assert.equal(d.bytes.safetensors, readFileSync(join(dir, "model.safetensors")).length);
      // The same bytes as exporting the run's finished checkpoint (the ONNX writer is deterministic).
      const ck = loadExportable(checkpointOf(clsOut, r.name));
      assert.ok(Buffer.from(exportOnnx(ck)).equals(readFileSync(join(dir, "model.onnx"))), `${r.name}: model.onnx is not the checkpoint's model`);
      const st = decodeSafetensors(readFileSync(join(dir, "model.safetensors")), "model.safetensors");
      assert.deepEqual(Object.keys(st.tensors).sort(), Object.keys(ck.params).sort());
      for (const [k, t] of Object.entries(ck.params)) assert.deepEqual(st.tensors[k].data, t.data, `${r.name} ${k}`);
      // 4 bytes a parameter plus a small header; the teacher's file is the larger.
      assert.ok(d.bytes.safetensors > r.params * 4 && d.bytes.safetensors < r.params * 4 + 4096, `${d.bytes.safetensors} for ${r.params} parameters`);
      checkLatency(d, r.name, true);
    }
    const size = (name: string) => res.runs.find((r) => r.name === name)!.deploy!.bytes.onnx;
    assert.ok(size("teacher") > size("scratch"));
  });

  test("classifier: the deployment table is printed after the results table, and the report has the section", () => {
    const res = read(clsOut);
    const table = formatDeployTable(res);
    assert.ok(clsStdout.includes(table), clsStdout);
    assert.ok(clsStdout.indexOf("deployment") > clsStdout.indexOf("accuracy %"));
    for (const name of ["teacher", "scratch", "distilled"]) assert.match(table, new RegExp(`^${name}\\s`, "m"));
    const html = readFileSync(join(clsOut, "report.html"), "utf8");
    const section = html.slice(html.indexOf(`<section class="card" id="deployment">`));
    assert.ok(section.length > 0 && html.includes("<h2>Deployment</h2>"));
    // The numbers the page shows are results.json's.
    const rows = section.slice(0, section.indexOf("</section>"));
    for (const r of res.runs) assert.ok(rows.includes(`<td>${r.name}</td>`), r.name);
    // `distill report` (results.json read back through its schema) renders the same section.
    const again = runCli(["report", clsOut]);
    assert.equal(again.code, 0, again.stderr);
    assert.ok(readFileSync(join(clsOut, "report.html"), "utf8").includes("<h2>Deployment</h2>"));
  });

  test("language model: the teacher trained here and the student are exported and measured", () => {
    const res = read(lmOut);
    for (const r of res.runs) {
      const d = r.deploy!;
      assert.ok(d, `${r.name}: no deploy`);
      assert.ok(existsSync(join(lmOut, "seed-0", "export", r.name, "model.onnx")));
      const ck = loadExportable(checkpointOf(lmOut, r.name));
      assert.ok(Buffer.from(exportOnnx(ck)).equals(readFileSync(join(lmOut, "seed-0", "export", r.name, "model.onnx"))));
      checkLatency(d, r.name, false);
    }
  });

  test("a classification recipe refuses formats that are for language models only", () => {
    const bad = writeTinyRecipe(join(tmp, "bad.yaml"), { export: ["onnx", "gguf"] });
    const r = runCli(["run", bad, "--out", join(tmp, "bad"), "--data", join(tmp, "data")]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /export\[1\]/);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.ok(!existsSync(join(tmp, "bad")));
  });
});

test("distill bench --workload deploy prints the teacher and the student with their ratio", () => {
  const r = runCli(["bench", "--workload", "deploy"]);
  assert.equal(r.code, 0, r.stderr);
  const row = (name: string) => r.stdout.split("\n").find((l) => l.startsWith(name)) ?? "";
  assert.match(row("teacher "), /mlp 784-512-256-10\s+535,818\s+2\.04 MiB/);
  assert.match(row("student "), /mlp 784-128-10\s+101,770/);
  // 535,818 / 101,770 parameters.
  assert.match(row("teacher/student"), /^teacher\/student\s+5\.3×\s+5\.3×\s+5\.3×/);
  assert.ok(!/pytorch/i.test(r.stdout), "no PyTorch baseline for deploy");
});
