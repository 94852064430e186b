// End-to-end tests of the `distill` CLI: the real bin.ts in a child process, on a tiny learnable
// Fashion-MNIST look-alike (600 train / 200 test) and a tiny recipe, all under a temp dir.
// Each CLI call takes a second or two; the whole file stays well under a minute.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { spawnSync } from "node:child_process";
import { gzipSync } from "node:zlib";
import { makeFashionFixture, runCli, writeTinyRecipe, snapshot, type CliResult } from "./helpers/fixtures.js";
import { decodeCorrect, type PerExample } from "../src/report/verdicts.js";

interface Run {
  name: string;
  role: string;
  model: string;
  params: number;
  seed: number;
  metrics: { accuracy: number; agreement: number; ece: number; loss: number; macroF1: number };
  seconds: number;
}
interface Results {
  recipe: string;
  device: string;
  runs: Run[];
}

let tmp = "";
let data = "";
let recipe = "";
/** OUT of the first good `run`; later tests copy it rather than change it. */
let goodOut = "";
/** results.json of that first run. */
let firstRunResults: Results | undefined;

before(() => {
  tmp = mkdtempSync(join(tmpdir(), "distill-cli-"));
  data = makeFashionFixture(join(tmp, "data"), { train: 600, test: 200, seed: 7 });
  recipe = writeTinyRecipe(join(tmp, "tiny.yaml"));
  goodOut = join(tmp, "out");
});
after(() => {
  rmSync(tmp, { recursive: true, force: true });
});

let dirCount = 0;
/** A fresh path under the temp dir (not created). */
function fresh(name: string): string {
  return join(tmp, `${name}-${dirCount++}`);
}

const ok = (r: CliResult) => assert.equal(r.code, 0, `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);

function readResults(out: string): Results {
  return JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as Results;
}

/** A copy of the good OUT plus a file of the user's own, for the failure tests to (not) touch. */
function copyOfGoodOut(): string {
  assert.ok(existsSync(join(goodOut, "results.json")), "the end-to-end run must have passed first");
  const out = fresh("out-copy");
  cpSync(goodOut, out, { recursive: true });
  writeFileSync(join(out, "notes.txt"), "the user's own file\n");
  return out;
}

function checkpointFiles(out: string, seed = 0): string[] {
  return readdirSync(join(out, `seed-${seed}`)).filter((f) => f.endsWith(".safetensors")).sort();
}

/**
 * The user-error contract: exit code 2, nothing on stdout, stderr exactly one line
 * `distill: error: ...` that contains each of `parts` (strings, or regexps to match).
 */
function assertUserError(r: CliResult, ...parts: (string | RegExp)[]): string {
  const detail = `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
  assert.equal(r.code, 2, detail);
  assert.equal(r.stdout, "", detail);
  const lines = r.stderr.replace(/\n$/, "").split("\n");
  assert.equal(lines.length, 1, `stderr must be one line:\n${r.stderr}`);
  const line = lines[0]!;
  assert.match(line, /^distill: error: \S/);
  for (const p of parts) {
    if (typeof p === "string") assert.ok(line.includes(p), `"${line}" lacks "${p}"`);
    else assert.match(line, p);
  }
  return line;
}

/** Runs a failing command against a copy of the good OUT and checks that OUT is unchanged. */
function failsLeavingOutIntact(args: (out: string) => string[], ...parts: (string | RegExp)[]): string {
  const out = copyOfGoodOut();
  const before = snapshot(out);
  const line = assertUserError(runCli(args(out)), ...parts);
  assert.deepEqual(snapshot(out), before, "a failed command must not touch OUT");
  return line;
}

const runArgs = (out: string, ...extra: string[]) => ["run", recipe, "--out", out, "--data", data, "--seeds", "0", ...extra];

/** The four metrics of every run, keyed by name (what must be reproducible). */
const metricsByName = (res: Results) => Object.fromEntries(res.runs.map((r) => [r.name, r.metrics]));

describe("distill run", () => {
  test("end to end: table, verdict, results.json, checkpoints and logs", () => {
    const r = runCli(runArgs(goodOut));
    ok(r);

    // The table: a header, a row per run, and the verdict line.
    const rows = r.stdout.split("\n");
    assert.ok(rows.some((l) => /^run\s+role\s+model\s+params\s+accuracy %/.test(l)), r.stdout);
    for (const [name, role] of [["teacher", "teacher"], ["scratch", "scratch"], ["distilled", "distilled"]]) {
      assert.ok(rows.some((l) => new RegExp(`^${name}\\s+${role}\\s+mlp 784-`).test(l)), `no ${name} row:\n${r.stdout}`);
    }
    // One seed: an exact McNemar test on the 200 test examples; both students read the same
    // 600 labels and 18 batches of 32 for 2 epochs.
    const verdict = /^distilled vs scratch: [+-]\d+\.\d\d points of test accuracy \(exact McNemar p [=<] [\d.]+ on 200 test examples \(\d+ right only by distilled, \d+ only by scratch\), 1 seed\): (helped|hurt|no measurable difference)\. Same budget: each read 600 labels, 1,152 examples \(2 epochs\)\. (Recovers -?\d+ % of the teacher–scratch gap|The teacher is no better than scratch here: no gap to recover;.*) at 1\/4\.0 of the teacher's size\.$/;
    assert.ok(rows.some((l) => verdict.test(l)), r.stdout);
    assert.ok(r.stdout.includes(`results: ${join(goodOut, "results.json")}`), r.stdout);

    // results.json: exactly the documented shape.
    const res = readResults(goodOut);
    firstRunResults = res;
    assert.deepEqual(Object.keys(res).sort(), ["classes", "device", "environment", "recipe", "runs"]);
    assert.equal(res.recipe, "tiny");
    assert.equal(res.device, "wasm");
    assert.deepEqual(res.runs.map((x) => [x.name, x.role]), [["teacher", "teacher"], ["scratch", "scratch"], ["distilled", "distilled"]]);
    for (const run of res.runs) {
      const evidence = ["settings", "confusion", "reliability", "perExample", ...(run.role === "distilled" ? ["teacherParams"] : [])];
      assert.deepEqual(Object.keys(run).sort(), ["metrics", "model", "name", "params", "role", "seconds", "seed", ...evidence].sort());
      // The per-example record is the run's own predictions: it counts its accuracy exactly.
      const correct = decodeCorrect((run as unknown as { perExample: PerExample }).perExample)!;
      assert.equal(correct.length, 200);
      assert.equal(correct.reduce((a, b) => a + b, 0) / 200, run.metrics.accuracy);
      assert.deepEqual(Object.keys(run.metrics).sort(), ["accuracy", "agreement", "ece", "loss", "macroF1"]);
      // Macro-F1 recomputed from the run's own confusion matrix (rows true, columns predicted).
      const cm = (run as unknown as { confusion: number[][] }).confusion;
      const f1 = cm.map((row, c) => {
        const tp = row[c];
        const fn = row.reduce((a, b) => a + b, 0) - tp;
        const fp = cm.reduce((a, r) => a + r[c], 0) - tp;
        return 2 * tp + fp + fn === 0 ? 1 : (2 * tp) / (2 * tp + fp + fn);
      });
      assert.ok(Math.abs(f1.reduce((a, b) => a + b, 0) / f1.length - run.metrics.macroF1) < 1e-12, `${run.name}: macro-F1`);
      assert.equal(typeof run.model, "string");
      assert.ok(Number.isInteger(run.params) && run.params > 0);
      assert.equal(run.seed, 0);
      assert.ok(typeof run.seconds === "number" && run.seconds >= 0);
      for (const k of ["accuracy", "agreement", "ece"] as const) {
        const v = run.metrics[k];
        assert.ok(typeof v === "number" && v >= 0 && v <= 1, `${run.name}.${k} = ${v}`);
      }
      assert.ok(Number.isFinite(run.metrics.loss) && run.metrics.loss >= 0, `${run.name}.loss = ${run.metrics.loss}`);
    }
    const [teacher, scratch, distilled] = res.runs as [Run, Run, Run];
    assert.equal(teacher.model, "mlp 784-32-10");
    assert.equal(teacher.params, 784 * 32 + 32 + 32 * 10 + 10);
    assert.equal(scratch.model, "mlp 784-8-10");
    assert.equal(distilled.params, scratch.params);
    assert.ok(teacher.metrics.accuracy > 0.5, `teacher accuracy ${teacher.metrics.accuracy} on a learnable fixture`);
    assert.equal(teacher.metrics.agreement, 1, "the teacher agrees with itself");

    // Checkpoints: <name>-<hash>.safetensors + .json + .metrics.jsonl for each run.
    const files = readdirSync(join(goodOut, "seed-0"));
    for (const name of ["teacher", "scratch", "distilled"]) {
      const ck = files.filter((f) => new RegExp(`^${name}-[0-9a-f]{10}\\.safetensors$`).test(f));
      assert.equal(ck.length, 1, `one ${name} checkpoint in ${files.join(", ")}`);
      const base = join(goodOut, "seed-0", ck[0]!.replace(/\.safetensors$/, ""));
      assert.ok(statSync(`${base}.safetensors`).size > 0);
      const meta = JSON.parse(readFileSync(`${base}.json`, "utf8")) as { config: { role: string }; state: { done: boolean }; tensorsSha256: string };
      assert.equal(meta.state.done, true);
      assert.match(meta.tensorsSha256, /^[0-9a-f]{64}$/);
      const log = readFileSync(`${base}.metrics.jsonl`, "utf8").trim().split("\n");
      assert.ok(log.length > 0 && log[0] !== "", `${name} log is empty`);
      for (const line of log) {
        const rec = JSON.parse(line) as Record<string, unknown>;
        assert.equal(rec.run, name);
        for (const k of ["epoch", "step", "loss"]) assert.equal(typeof rec[k], "number", `${k} in ${line}`);
      }
    }
  });

  test("a second run reuses every finished checkpoint and gives the same numbers", () => {
    const before = snapshot(goodOut);
    const r = runCli(runArgs(goodOut));
    ok(r);
    for (const name of ["teacher", "scratch", "distilled"]) {
      assert.match(r.stderr, new RegExp(`^${name} seed 0: reusing finished checkpoint .*${name}-[0-9a-f]{10}\\.safetensors$`, "m"));
    }
    assert.doesNotMatch(r.stderr, /: \d+ steps$/m, "nothing is retrained");
    // No checkpoint or log is rewritten, and results.json differs at most in `seconds` (a reused
    // run reports the training time stored in its checkpoint, taken just before the final save).
    const after = snapshot(goodOut);
    after.delete("results.json");
    before.delete("results.json");
    // report.html carries a generation time and the train seconds, like results.json.
    after.delete("report.html");
    before.delete("report.html");
    assert.deepEqual(after, before);
    const strip = (res: Results) => ({ ...res, runs: res.runs.map(({ seconds: _s, ...rest }) => rest) });
    assert.deepEqual(strip(readResults(goodOut)), strip(firstRunResults!));
  });

  test("--fresh retrains and reproduces the same metrics and weights", () => {
    const out = copyOfGoodOut();
    const before = snapshot(out);
    const r = runCli(runArgs(out, "--fresh"));
    ok(r);
    assert.doesNotMatch(r.stderr, /reusing/);
    assert.match(r.stderr, /^teacher seed 0 \(mlp 784-32-10\): \d+ steps$/m);
    assert.deepEqual(metricsByName(readResults(out)), metricsByName(readResults(goodOut)));
    const after = snapshot(out);
    for (const f of checkpointFiles(out)) {
      assert.equal(after.get(join("seed-0", f)), before.get(join("seed-0", f)), `${f}: same seed, same weights`);
    }
    assert.equal(after.get("notes.txt"), before.get("notes.txt"));
  });

  test("train trains only the teacher; distill then reuses it", () => {
    const out = fresh("out-train");
    const t = runCli(["train", recipe, "--out", out, "--data", data]);
    ok(t);
    const tr = readResults(out);
    assert.deepEqual(tr.runs.map((x) => x.name), ["teacher"]);
    assert.deepEqual(checkpointFiles(out).map((f) => f.split("-")[0]), ["teacher"]);
    assert.deepEqual(tr.runs[0]!.metrics, metricsByName(readResults(goodOut))["teacher"]);

    const d = runCli(["distill", recipe, "--out", out, "--data", data]);
    ok(d);
    assert.match(d.stderr, /^teacher seed 0: reusing finished checkpoint /m);
    assert.doesNotMatch(d.stderr, /^teacher seed 0 \(/m, "the teacher is not retrained");
    assert.doesNotMatch(d.stderr, /^scratch /m, "distill does not train the scratch student");
    // Added to the table `train` wrote, not replacing it.
    const dr = readResults(out);
    assert.deepEqual(dr.runs.map((x) => x.name), ["teacher", "distilled"]);
    assert.deepEqual(dr.runs[1]!.metrics, metricsByName(readResults(goodOut))["distilled"]);
    assert.deepEqual(checkpointFiles(out).map((f) => f.split("-")[0]), ["distilled", "teacher"]);
  });
});

describe("distill eval", () => {
  test("prints the checkpoint's metrics as JSON, matching results.json", () => {
    const [distilled, , teacher] = checkpointFiles(goodOut).map((f) => join(goodOut, "seed-0", f));
    assert.match(distilled!, /distilled-/);
    assert.match(teacher!, /teacher-/);
    const r = runCli(["eval", distilled!, "--teacher", teacher!, "--data", data]);
    ok(r);
    const e = JSON.parse(r.stdout) as { model: string; params: number; metrics: Run["metrics"] };
    assert.equal(e.model, "mlp 784-8-10");
    assert.equal(e.params, 784 * 8 + 8 + 8 * 10 + 10);
    assert.deepEqual(e.metrics, metricsByName(readResults(goodOut))["distilled"]);
  });
});

describe("user errors: exit 2, one line naming the problem, OUT untouched", () => {
  test("a misspelt recipe field names the file and the field", () => {
    const bad = writeTinyRecipe(join(tmp, "misspelt.yaml"), (r) => {
      const train = (r.students as { train: Record<string, unknown> }[])[0]!.train;
      train.epoch = train.epochs;
      delete train.epochs;
    });
    failsLeavingOutIntact((out) => ["run", bad, "--out", out, "--data", data], bad, '"epoch"', "students[0].train");
  });

  test("a truncated train-images-idx3-ubyte.gz names the file", () => {
    const dir = fresh("data-truncated");
    cpSync(data, dir, { recursive: true });
    const file = join(dir, "train-images-idx3-ubyte.gz");
    const bytes = readFileSync(file);
    writeFileSync(file, bytes.subarray(0, Math.floor(bytes.length / 2)));
    failsLeavingOutIntact((out) => ["run", recipe, "--out", out, "--data", dir], file, /truncated|corrupt/);
  });

  test("an IDX file with a wrong magic number names the file", () => {
    const dir = fresh("data-magic");
    cpSync(data, dir, { recursive: true });
    const file = join(dir, "t10k-labels-idx1-ubyte.gz");
    const raw = new Uint8Array(8 + 200);
    raw.set([0x12, 0x34, 0x56, 0x78, 0, 0, 0, 200]);
    writeFileSync(file, gzipSync(raw));
    failsLeavingOutIntact((out) => ["run", recipe, "--out", out, "--data", dir], file, "magic");
  });

  test("a checkpoint with a corrupt header: eval and run fail naming it; --fresh retrains it", () => {
    const out = copyOfGoodOut();
    const scratch = join(out, "seed-0", checkpointFiles(out).find((f) => f.startsWith("scratch-"))!);
    const bytes = readFileSync(scratch);
    bytes.fill(0xff, 8, 24); // inside the JSON header: no longer UTF-8 JSON
    writeFileSync(scratch, bytes);
    const before = snapshot(out);

    assertUserError(runCli(["eval", scratch, "--data", data]), scratch, "header");
    assert.deepEqual(snapshot(out), before);

    // `run` over that OUT stops at the damaged checkpoint rather than silently retraining over
    // it, says how to redo it, and leaves everything as it was: the teacher is reused first,
    // but results.json is only written once every run has finished, so the previous one stays.
    // (-q: the progress lines before the error go to stderr too.)
    assertUserError(runCli(runArgs(out, "-q")), scratch, "header", "--fresh");
    assert.deepEqual(snapshot(out), before);

    // The remedy it names works: --fresh retrains (the same weights as before the damage) and
    // leaves the user's own files alone.
    ok(runCli(runArgs(out, "--fresh", "-q")));
    assert.deepEqual(readFileSync(scratch), readFileSync(join(goodOut, "seed-0", basename(scratch))));
    assert.equal(readFileSync(join(out, "notes.txt"), "utf8"), "the user's own file\n");
    assert.deepEqual(metricsByName(readResults(out)), metricsByName(readResults(goodOut)));
  });

  test("a missing data directory is named", () => {
    failsLeavingOutIntact((out) => ["run", recipe, "--out", out, "--data", "/nonexistent/dir"], "/nonexistent/dir", "no such directory");
  });

  test("an unknown loss name lists the known ones", () => {
    const bad = writeTinyRecipe(join(tmp, "bad-loss.yaml"), (r) => {
      ((r.students as { train: { loss: { name: string } } }[])[1]!).train.loss.name = "hintn";
    });
    failsLeavingOutIntact((out) => ["run", bad, "--out", out, "--data", data], bad, "students[1].train.loss.name", "unknown loss", "hinton");
  });

  test("a negative learning rate names the field", () => {
    const bad = writeTinyRecipe(join(tmp, "neg-lr.yaml"), { teacher: { train: { optimizer: { lr: -0.01 } } } });
    failsLeavingOutIntact((out) => ["run", bad, "--out", out, "--data", data], bad, "teacher.train.optimizer.lr");
  });

  test("--seeds a,b is a usage error in the same one-line form", () => {
    failsLeavingOutIntact((out) => runArgs(out).slice(0, -2).concat(["--seeds", "a,b"]), "--seeds", '"a,b"');
  });
});

describe("distill bench", () => {
  const line = (w: string, unit = "samples/s") => new RegExp(`^${w}\\s+\\d+\\.\\d\\d ms/step\\s+[\\d,]+ ${unit}\\s+peak RSS \\d+ MB`, "m");

  test("times each workload, samples RSS per quarter, writes JSON; without PyTorch it says so", () => {
    const json = fresh("bench") + ".json";
    const r = runCli(["bench", "--workload", "student-kd-mlp,teacher-inference", "--steps", "8", "--json", json], { env: { DISTILL_PYTHON: "/nonexistent/python3" } });
    ok(r);
    assert.match(r.stdout, line("student-kd-mlp"));
    assert.match(r.stdout, line("teacher-inference"));
    assert.match(r.stdout, /peak RSS per quarter of 8 steps: \d+ → \d+ → \d+ → \d+ MB \((flat|GROWING)\)/);
    const last = r.stdout.trim().split("\n").pop()!;
    assert.match(last, /^PyTorch not found \(no python3 with torch at \/nonexistent\/python3\): our numbers only$/);
    assert.doesNotMatch(r.stdout, /^ratio /m);
    const doc = JSON.parse(readFileSync(json, "utf8"));
    assert.equal(doc.device, "wasm");
    const [kd, inf] = doc.results;
    assert.equal(kd.workload, "student-kd-mlp");
    assert.equal(kd.steps, 8);
    assert.equal(kd.rssMB.length, 4);
    assert.ok(kd.throughput > 0 && Math.abs(kd.throughput - (128 * 1000) / kd.msPerStep) < 1e-6 * kd.throughput);
    assert.equal(inf.batch, 10000);
    assert.deepEqual(doc.ratios, {});
  });

  test("with PyTorch found, the output ends with one ratio line per workload", (t) => {
    const probe = spawnSync("/usr/bin/python3", ["-c", "import torch"]);
    if (probe.status !== 0) {
      t.skip("no torch for /usr/bin/python3 (.ci/run installs python3-torch)");
      return;
    }
    const json = fresh("bench") + ".json";
    const r = runCli(["bench", "--workload", "student-kd-mlp", "--steps", "8", "--json", json], { env: { DISTILL_PYTHON: "/usr/bin/python3" } });
    ok(r);
    const lines = r.stdout.trim().split("\n");
    assert.match(lines.at(-1)!, /^ratio student-kd-mlp \d+\.\d\d$/);
    assert.match(r.stdout, /^PyTorch \S+ at \/usr\/bin\/python3 on cpu, best of 1 and 2 threads$/m);
    assert.match(r.stdout, /^pytorch student-kd-mlp\s+\d+\.\d\d ms\/step .*\((1|2) threads?\)$/m);
    const doc = JSON.parse(readFileSync(json, "utf8"));
    const ours = doc.results[0].throughput;
    const theirs = doc.pytorch.best[0].throughput;
    assert.equal(doc.pytorch.all.length, 2, "one PyTorch run per thread count");
    assert.ok(Math.abs(doc.ratios["student-kd-mlp"] - ours / theirs) < 1e-9);
    assert.equal(theirs, Math.max(...doc.pytorch.all.map((a: { throughput: number }) => a.throughput)));
  });

  test("--device webgpu: a clear one-line error on a machine without a GPU adapter", () => {
    const r = runCli(["bench", "--device", "webgpu", "--workload", "teacher-mlp", "--steps", "2", "--no-pytorch"]);
    if (r.code === 0) return; // a machine with a WebGPU adapter: nothing to report
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^distill: error: --device webgpu: (no WebGPU adapter found: .*use --device wasm|the optional `webgpu` package is not installed.*)$/m);
    const w = runCli(["bench", "--device", "webgpu", "--workers", "2", "--no-pytorch"]);
    assert.equal(w.code, 2);
    assert.match(w.stderr, /distill: error: --device webgpu: /);
  });

  test("an unknown workload or an uneven --workers split is a one-line error", () => {
    const a = runCli(["bench", "--workload", "teacher-mlp,nope", "--no-pytorch"]);
    assert.equal(a.code, 2);
    assert.match(a.stderr, /^distill: error: --workload: unknown workload "nope" \(known: teacher-mlp, /);
    const b = runCli(["bench", "--workload", "teacher-mlp", "--workers", "3", "--steps", "2", "--no-pytorch"]);
    assert.equal(b.code, 2);
    assert.match(b.stderr, /batch size 128 does not split evenly over 3 workers/);
  });
});
