// The failures a probe of bad inputs and faults found (issue 9, item 5), each driven the way a
// user meets it: mostly the real CLI in a child process, on generated data, checking exit code
// 2, one line on stderr naming the path/field/value, no stack trace, and that what the user had
// (results.json, checkpoints, their own files) is byte for byte unchanged. See docs/RELIABILITY.md.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify as toYaml } from "yaml";
import { initDevice, relaxedSimd, tree } from "../src/engine/index.js";
import { llama } from "../src/nn/llama.js";
import { textSource } from "../src/data/text-source.js";
import { train } from "../src/train/trainer.js";
import { paramsToHost } from "../src/checkpoint/params.js";
import { loadCheckpoint, saveCheckpoint } from "../src/checkpoint/checkpoint.js";
import { readFileBounded, removeStaleTemps, writeFileAtomic } from "../src/util/fs.js";
import { UserError } from "../src/util/errors.js";
import { lossInfo } from "../src/losses/index.js";
import { withWorkers } from "../src/pipeline.js";
import { mergeResults } from "../src/report/merge.js";
import { loadAnyRecipe } from "../src/recipe/recipe.js";
import { REPO_ROOT, makeFashionFixture, runCli, runUntil, snapshot, writeTinyRecipe, type CliResult } from "./helpers/fixtures.js";

const FAULT = join(REPO_ROOT, "test/helpers/fs-fault.mjs");

let tmp = "";
let data = "";
let recipe = "";
/** OUT of one good classification run; tests copy it rather than change it. */
let goodOut = "";

before(async () => {
  await initDevice("wasm");
  tmp = mkdtempSync(join(tmpdir(), "distill-rel-"));
  data = makeFashionFixture(join(tmp, "data"), { train: 320, test: 100, seed: 3 });
  recipe = writeTinyRecipe(join(tmp, "tiny.yaml"));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
const fresh = (name: string) => join(tmp, `${name}-${n++}`);

const ok = (r: CliResult) => assert.equal(r.code, 0, `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);

/** Exit 2, stderr one line `distill: error: ...` containing each part, and no stack trace. */
function userError(r: CliResult, ...parts: (string | RegExp)[]): string {
  const detail = `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
  assert.equal(r.code, 2, detail);
  const lines = r.stderr.replace(/\n$/, "").split("\n");
  const line = lines.at(-1)!;
  // -q keeps progress off stderr; without it, info lines may come first, but the error is last
  // and nothing after it (no stack trace).
  assert.match(line, /^distill: error: \S/, detail);
  assert.doesNotMatch(r.stderr, /^\s+at /m, `a stack trace:\n${r.stderr}`);
  for (const p of parts) {
    if (typeof p === "string") assert.ok(line.includes(p), `"${line}" lacks "${p}"`);
    else assert.match(line, p);
  }
  return line;
}

function goodCopy(): string {
  if (!goodOut) {
    goodOut = fresh("good");
    ok(runCli(["run", recipe, "--out", goodOut, "--data", data, "-q"]));
  }
  const out = fresh("copy");
  cpSync(goodOut, out, { recursive: true });
  writeFileSync(join(out, "notes.txt"), "the user's own file\n");
  return out;
}

const tempsUnder = (dir: string) => [...snapshot(dir).keys()].filter((f) => /(^|\/)\..*\.tmp$/.test(f));

// ---------------------------------------------------------------------------------------------
// Periodic checkpoints

const V = 7;
const ids = Int32Array.from({ length: 3000 }, (_, i) => (i * 3 + Math.floor(i / 5)) % V);
const lm = () => llama({ type: "llama", layers: 1, width: 16, heads: 2, context: 12 }, V);

/** Trains an LM for 40 steps (one "epoch", as LM runs are); `crashAt` throws after that step. */
async function lmRun(ckpt: string, opts: { workers: number; every?: number; seconds?: number; crashAt?: number; resume?: boolean }) {
  const model = lm();
  return train({
    name: "lm",
    model,
    spec: { epochs: 1, batchSize: 8, optimizer: { name: "adamw", lr: 1e-2 }, loss: { name: "ce" }, checkpointEvery: opts.every },
    data: textSource({ ids, context: 12, batchSize: 8, steps: 40, seed: 0 }),
    seed: 0,
    checkpoint: ckpt,
    config: { test: true },
    resume: opts.resume,
    workers: opts.workers,
    checkpointSeconds: opts.seconds,
    progress: (done) => {
      if (done === opts.crashAt) throw new Error("simulated crash");
    },
  });
}

const flat = async (p: Record<string, unknown>) => Object.values(await paramsToHost(p as never)).flatMap((t) => Array.from(t.data as Float32Array));

describe("periodic checkpoints (checkpointEvery, and by time)", () => {
  for (const workers of [1, 2]) {
    test(`a run that dies mid-epoch resumes from its last periodic checkpoint to the same weights (${workers} worker${workers > 1 ? "s" : ""})`, async () => {
      const dir = fresh(`ckpt-w${workers}`);
      const straight = await lmRun(join(dir, "straight.safetensors"), { workers });
      const path = join(dir, "crashed.safetensors");
      await assert.rejects(lmRun(path, { workers, every: 10, crashAt: 27 }), /simulated crash/);
      const st = loadCheckpoint(path).state as { step: number; done: boolean };
      assert.deepEqual([st.step, st.done], [20, false], "the last periodic checkpoint before the crash");
      const resumed = await lmRun(path, { workers, every: 10, resume: true });
      assert.equal(resumed.status, "done");
      assert.deepEqual(await flat(resumed.params), await flat(straight.params), "resumed = uninterrupted, bit for bit");
      tree.dispose(straight.params);
      tree.dispose(resumed.params);
    });
  }

  test("by default a checkpoint follows whenever the time since the last one has passed (here 0 s: every step)", async () => {
    const dir = fresh("ckpt-time");
    const path = join(dir, "t.safetensors");
    await assert.rejects(lmRun(path, { workers: 2, seconds: 0, crashAt: 7 }), /simulated crash/);
    // The crash comes in step 7's progress report, before step 7's save.
    assert.equal((loadCheckpoint(path).state as { step: number }).step, 6);
    // With the default of 300 s, a short run saves only at its end.
    const p2 = join(dir, "u.safetensors");
    await assert.rejects(lmRun(p2, { workers: 1, crashAt: 30 }), /simulated crash/);
    assert.equal(existsSync(p2), false);
  });

  test("checkpointEvery does not change a run's config hash (it names and reuses checkpoints)", () => {
    const base = { role: "teacher", train: { epochs: 2, batchSize: 32, loss: { name: "ce" } }, seed: 0 };
    const withEvery = { ...base, train: { ...base.train, checkpointEvery: 100 } };
    // fma: the Wasm engine's fused multiply-add, on by default (test/matmul.test.ts).
    const fma = relaxedSimd ? { fma: true } : {};
    assert.deepEqual(withWorkers(withEvery, 32, { workers: 1 }, "x"), { ...base, ...fma });
    assert.deepEqual(withWorkers(withEvery, 32, { workers: 2 }, "x"), { ...base, workers: 2, ...fma });
  });
});

/** The state of the teacher's checkpoint in `dir`, or null. */
function teacherState(dir: string): { step: number; done: boolean } | null {
  if (!existsSync(dir)) return null;
  const f = readdirSync(dir).find((x) => /^teacher-[0-9a-f]{10}\.json$/.test(x));
  if (!f) return null;
  try {
    return JSON.parse(readFileSync(join(dir, f), "utf8")).state;
  } catch {
    return null; // caught between writes
  }
}

function lmCorpus(): string {
  const d = fresh("corpus");
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, "a.txt"), "the quick brown fox jumps over the lazy dog. ".repeat(60));
  return d;
}

function lmRecipe(corpus: string, edit?: (r: Record<string, any>) => void): string {
  const opt = { name: "adamw", lr: 0.01 };
  const r: Record<string, any> = {
    kind: "lm",
    name: "tiny-lm",
    data: { corpus, tokenizer: "char", evalWindows: 4 },
    teacher: { model: { type: "llama", layers: 1, width: 16, heads: 2, context: 16 }, train: { steps: 150, batchSize: 4, optimizer: opt, loss: { name: "ce" } } },
    students: [{ name: "scratch", role: "scratch", model: { type: "llama", layers: 1, width: 8, heads: 2, context: 16 }, train: { steps: 3, batchSize: 4, optimizer: opt, loss: { name: "ce" } } }],
    samples: { prompts: 0, promptLength: 4, tokens: 4 },
  };
  edit?.(r);
  const path = fresh("lm") + ".yaml";
  writeFileSync(path, toYaml(r));
  return path;
}

describe("language-model runs: killed part-way, resumed", () => {
  test("SIGKILL after a periodic checkpoint; --resume finishes with the same weights as an uninterrupted run", async () => {
    const corpus = lmCorpus();
    const withEvery = lmRecipe(corpus, (r) => (r.teacher.train.checkpointEvery = 20));
    const out = fresh("lm-killed");
    const seedDir = join(out, "seed-0");
    const r1 = await runUntil(["run", withEvery, "--out", out, "-q"], () => {
      const st = teacherState(seedDir);
      return st !== null && st.step >= 40 && !st.done;
    }, "SIGKILL");
    assert.equal(r1.signal, "SIGKILL", `the run ended by itself before the kill:\n${r1.stderr}`);
    const killedAt = teacherState(seedDir)!;
    assert.equal(killedAt.done, false);
    assert.equal(killedAt.step % 20, 0, "a periodic checkpoint, not an epoch end");
    assert.ok(!existsSync(join(out, "results.json")));

    const r2 = runCli(["run", withEvery, "--out", out, "--resume"]);
    ok(r2);
    assert.doesNotMatch(r2.stderr, /^teacher seed 0: --resume: no checkpoint/m);
    assert.match(r2.stderr, new RegExp(`^teacher seed 0: resuming from \\S+teacher-[0-9a-f]{10}\\.safetensors at step ${killedAt.step}$`, "m"));
    // The run without checkpointEvery: same config hash, so the same file names.
    const straight = fresh("lm-straight");
    ok(runCli(["run", lmRecipe(corpus), "--out", straight, "-q"]));
    const files = readdirSync(seedDir).filter((f) => f.endsWith(".safetensors")).sort();
    assert.deepEqual(files, readdirSync(join(straight, "seed-0")).filter((f) => f.endsWith(".safetensors")).sort());
    for (const f of files) assert.deepEqual(readFileSync(join(seedDir, f)), readFileSync(join(straight, "seed-0", f)), `${f}: resumed = uninterrupted`);
    const metrics = (o: string) => JSON.parse(readFileSync(join(o, "results.json"), "utf8")).runs.map((x: { name: string; metrics: unknown }) => [x.name, x.metrics]);
    assert.deepEqual(metrics(out), metrics(straight));
  });

  test("--resume with nothing to resume says so in one info line", () => {
    const out = fresh("lm-noresume");
    const r = runCli(["run", lmRecipe(lmCorpus(), (x) => (x.teacher.train.steps = 5)), "--out", out, "--resume"]);
    ok(r);
    assert.match(r.stderr, /^teacher seed 0: --resume: no checkpoint to resume from at \S+teacher-[0-9a-f]{10}\.safetensors; starting at step 0$/m);
  });
});

describe("SIGTERM", () => {
  test("saves a checkpoint and exits 143, as Ctrl-C does with 130; --resume completes the run", async () => {
    const r = writeTinyRecipe(fresh("long") + ".yaml", (x) => ((x.teacher as { train: { epochs: number } }).train.epochs = 40));
    const out = fresh("term");
    const res = await runUntil(["run", r, "--out", out, "--data", data], () => {
      const st = teacherState(join(out, "seed-0"));
      return st !== null && st.step > 0; // after the first epoch's checkpoint: the run is well under way
    }, "SIGTERM");
    assert.equal(res.code, 143, res.stderr);
    assert.match(res.stderr, /SIGTERM: saving a checkpoint after this step/);
    assert.match(res.stderr, /interrupted: checkpoint saved at .*teacher-[0-9a-f]+\.safetensors; rerun with --resume/);
    const st = teacherState(join(out, "seed-0"))!;
    assert.equal(st.done, false);
    ok(runCli(["run", r, "--out", out, "--data", data, "--resume", "-q"]));
    assert.equal(teacherState(join(out, "seed-0"))!.done, true);
  });
});

// ---------------------------------------------------------------------------------------------
// Names that reach Object.prototype

describe("names that are Object.prototype's: one line, exit 2", () => {
  test("loss names constructor, toString, __proto__, hasOwnProperty are unknown losses", () => {
    const out = fresh("proto");
    // The CLI for one (a process each is slow); the same validation in-process for all.
    userError(runCli(["run", recipe, "--out", out, "--data", data, "-q", "--set", "students.0.train.loss.name=constructor"]), "students[0].train.loss.name", "unknown loss");
    assert.ok(!existsSync(out), "nothing written");
    for (const name of ["constructor", "toString", "__proto__", "hasOwnProperty"]) {
      const r = writeTinyRecipe(fresh("proto") + ".yaml", (x) => ((x.teacher as { train: { loss: { name: string } } }).train.loss.name = name));
      assert.throws(() => loadAnyRecipe(r), (e: unknown) => e instanceof UserError && /teacher\.train\.loss\.name: unknown loss/.test(e.message), name);
      assert.throws(() => lossInfo({ name }), UserError);
    }
  });

  test("--set __proto__.x=1 (and other routes to a prototype) is refused and pollutes nothing", () => {
    userError(runCli(["run", recipe, "--data", data, "--out", fresh("p"), "-q", "--set", "__proto__.polluted=1"]), "--set __proto__.polluted", "is not a recipe field");
    for (const path of ["students.__proto__.polluted", "constructor.prototype.polluted", "teacher.constructor", "teacher.toString.x"]) {
      assert.throws(() => loadAnyRecipe(recipe, [`${path}=1`]), (e: unknown) => e instanceof UserError && e.message.startsWith(`--set ${path}: `), path);
    }
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  test("--set with malformed YAML (x=[1) is one line naming the override", () => {
    userError(runCli(["run", recipe, "--data", data, "-q", "--set", "students.0.train.epochs=[1"]), "--set students.0.train.epochs=[1", "not valid YAML");
  });
});

// ---------------------------------------------------------------------------------------------
// File-system errors

describe("file-system errors: one line naming the path, exit 2, earlier results kept", () => {
  test("--out naming an existing file, or a folder under a file", () => {
    const file = fresh("a-file");
    writeFileSync(file, "mine\n");
    userError(runCli(["run", recipe, "--data", data, "--out", file, "-q"]), file, "not a folder");
    userError(runCli(["run", recipe, "--data", data, "--out", join(file, "sub"), "-q"]), join(file, "sub"), /ENOTDIR|EEXIST/);
    assert.equal(readFileSync(file, "utf8"), "mine\n");
  });

  test("ENOSPC writing results.json (injected): the previous results.json and report stay, no temp file", () => {
    const out = goodCopy();
    const before = snapshot(out);
    const r = runCli(["run", recipe, "--data", data, "--out", out, "-q"], { env: { NODE_OPTIONS: `--import ${FAULT}`, DISTILL_TEST_FAULT: "ENOSPC", DISTILL_TEST_FAULT_PATH: "results.json" } });
    userError(r, join(out, "results.json"), "no space left", "previous version is unchanged");
    assert.deepEqual(snapshot(out), before);
  });

  test("ENOSPC writing a checkpoint mid-training (injected): one line naming it, no temp file left", () => {
    const out = goodCopy();
    const before = snapshot(out);
    const r = runCli(["run", recipe, "--data", data, "--out", out, "--fresh", "-q"], { env: { NODE_OPTIONS: `--import ${FAULT}`, DISTILL_TEST_FAULT: "ENOSPC", DISTILL_TEST_FAULT_PATH: ".safetensors" } });
    userError(r, /seed-0\/teacher-[0-9a-f]{10}\.safetensors: cannot write \(no space left/);
    assert.deepEqual(tempsUnder(out), []);
    assert.equal(readFileSync(join(out, "results.json"), "utf8"), readFileSync(join(goodOut, "results.json"), "utf8"));
    for (const f of before.keys()) if (f.endsWith(".safetensors")) assert.equal(snapshot(out).get(f), before.get(f), `${f} kept`);
  });

  test("permission denied on the output folder (EACCES injected: tests run as root): refused before training", () => {
    const out = fresh("denied");
    const r = runCli(["run", recipe, "--data", data, "--out", out], { env: { NODE_OPTIONS: `--import ${FAULT}`, DISTILL_TEST_FAULT: "EACCES", DISTILL_TEST_FAULT_PATH: out } });
    userError(r, out, "permission denied");
    assert.doesNotMatch(r.stderr, /steps$/m, "nothing was trained");
  });

  test("writeFileAtomic refuses to replace a device or pipe, and leaves no temp file when a write fails", () => {
    const dir = fresh("atomic");
    mkdirSync(dir);
    const fifo = join(dir, "pipe");
    if (spawnSync("mkfifo", [fifo]).status === 0) {
      assert.throws(() => writeFileAtomic(fifo, "x"), /pipe: exists and is not a regular file/);
      assert.ok(statSync(fifo).isFIFO(), "still the pipe");
      assert.throws(() => readFileBounded(fifo, 100, "corpus"), /not a regular file/);
    }
    // A target whose folder is a file: the write fails, nothing is left beside it.
    writeFileSync(join(dir, "f"), "");
    assert.throws(() => writeFileAtomic(join(dir, "f", "x.json"), "{}"), UserError);
    assert.deepEqual(readdirSync(dir).sort(), fifo && existsSync(fifo) ? ["f", "pipe"] : ["f"]);
  });
});

// ---------------------------------------------------------------------------------------------
// Partial commands merge into results.json; --fresh applies to the named runs

describe("distill train / distill distill --student: merged into results.json", () => {
  test("train, then distill, then train --student: one table of every run, in recipe order", () => {
    const out = fresh("merge");
    const names = () => JSON.parse(readFileSync(join(out, "results.json"), "utf8")).runs.map((r: { name: string }) => r.name);
    ok(runCli(["train", recipe, "--out", out, "--data", data, "-q"]));
    assert.deepEqual(names(), ["teacher"]);
    const d = runCli(["distill", recipe, "--out", out, "--data", data, "-q"]);
    ok(d);
    assert.deepEqual(names(), ["teacher", "distilled"]);
    assert.match(d.stdout, /^teacher\s+teacher/m, "the printed table is the merged one");
    ok(runCli(["train", recipe, "--student", "scratch", "--out", out, "--data", data, "-q"]));
    assert.deepEqual(names(), ["teacher", "scratch", "distilled"]);
    assert.ok(readFileSync(join(out, "report.html"), "utf8").includes("scratch"));
    // The scratch run had no teacher beside it: its agreement is null in results.json, and the
    // report is still rebuilt from the merged table (it used to be refused as "not a results file").
    const scratch = JSON.parse(readFileSync(join(out, "results.json"), "utf8")).runs.find((r: { name: string }) => r.name === "scratch");
    assert.equal(scratch.metrics.agreement, null);
    ok(runCli(["report", out]));
  });

  test("results.json of another recipe: refused in one line before anything is trained", () => {
    const out = goodCopy();
    const other = writeTinyRecipe(fresh("other") + ".yaml", { name: "another" });
    const before = snapshot(out);
    userError(runCli(["train", other, "--out", out, "--data", data]), join(out, "results.json"), 'recipe "tiny", not "another"');
    assert.deepEqual(snapshot(out), before);
  });

  test("distill --student X --fresh retrains X only, not the teacher", () => {
    const out = goodCopy();
    const teacher = readdirSync(join(out, "seed-0")).find((f) => /^teacher-.*\.safetensors$/.test(f))!;
    const before = snapshot(out);
    const r = runCli(["distill", recipe, "--student", "distilled", "--fresh", "--out", out, "--data", data]);
    ok(r);
    assert.match(r.stderr, /^teacher seed 0: reusing finished checkpoint /m);
    assert.match(r.stderr, /^distilled seed 0 \(mlp 784-8-10\): \d+ steps$/m, "the named student is retrained");
    assert.equal(snapshot(out).get(join("seed-0", teacher)), before.get(join("seed-0", teacher)));
    // Its row is replaced in place (same seed, same numbers: a retrain reproduces them); the
    // other rows are kept.
    const rows = (o: string) => JSON.parse(readFileSync(join(o, "results.json"), "utf8")).runs.map((x: { name: string; seed: number; metrics: unknown }) => [x.name, x.seed, x.metrics]);
    assert.deepEqual(rows(out), rows(goodOut));
  });

  test("mergeResults: same name and seed replaced, others kept, samples likewise", () => {
    const run = (name: string, seed: number, accuracy: number) => ({ name, role: "scratch" as const, model: "m", params: 1, seed, metrics: { accuracy, agreement: 0, ece: 0, loss: 0 }, seconds: 0 });
    const old = { recipe: "r", device: "wasm", runs: [run("teacher", 0, 0.9), run("a", 0, 0.1), run("b", 0, 0.2)], samples: [{ name: "a", seed: 0, prompt: "", text: "old" }] };
    const neu = { recipe: "r", device: "wasm", runs: [run("a", 0, 0.5)], samples: [{ name: "a", seed: 0, prompt: "", text: "new" }] };
    const m = mergeResults(old, neu, ["teacher", "b", "a"]);
    assert.deepEqual(m.runs.map((r) => [r.name, r.metrics.accuracy]), [["teacher", 0.9], ["b", 0.2], ["a", 0.5]]);
    assert.deepEqual(m.samples.map((s) => s.text), ["new"]);
  });
});

// ---------------------------------------------------------------------------------------------
// Checkpoints and recipes checked before use

/** Rewrites a checkpoint through the real codec (so its SHA-256 matches), after `edit`. */
function editCheckpoint(path: string, edit: (ck: ReturnType<typeof loadCheckpoint>) => void): void {
  const ck = loadCheckpoint(path);
  edit(ck);
  saveCheckpoint(path, ck);
}

describe("checkpoints from elsewhere", () => {
  test("eval: an unknown model.type, or NaN weights, is one line naming the checkpoint", () => {
    const out = goodCopy();
    const dir = join(out, "seed-0");
    const ck = join(dir, readdirSync(dir).find((f) => /^scratch-.*\.safetensors$/.test(f))!);
    editCheckpoint(ck, (c) => ((c.config as { model: { type: string } }).model.type = "transformer"));
    userError(runCli(["eval", ck, "--data", data]), ck, "not a distill classifier checkpoint", "model.type");
    editCheckpoint(ck, (c) => ((c.config as { model: { type: string } }).model.type = "mlp"));
    ok(runCli(["eval", ck, "--data", data]));
    editCheckpoint(ck, (c) => ((c.tensors["layers.0.weight"]!.data as Float32Array)[5] = NaN));
    userError(runCli(["eval", ck, "--data", data]), ck, 'tensor "layers.0.weight" holds NaN at index 5');
    // The same checkpoint met by `run` (reuse) is refused too, not trained on from NaN.
    userError(runCli(["run", recipe, "--out", out, "--data", data, "-q"]), ck, "NaN");
  });

  test("an LM teacher checkpoint with an invalid llama config is one line, before any training", () => {
    const corpus = lmCorpus();
    const out = fresh("lm-ck");
    ok(runCli(["run", lmRecipe(corpus, (r) => (r.teacher.train.steps = 3)), "--out", out, "-q"]));
    const dir = join(out, "seed-0");
    const ck = join(dir, readdirSync(dir).find((f) => /^teacher-.*\.safetensors$/.test(f))!);
    editCheckpoint(ck, (c) => ((c.config as { model: { layers: unknown } }).model.layers = "two"));
    const r = runCli(["run", lmRecipe(corpus, (x) => (x.teacher = { checkpoint: ck })), "--out", fresh("lm-ck2"), "-q"]);
    userError(r, ck, "not a distill language-model checkpoint", "model.layers");
  });
});

describe("recipe values checked before training", () => {
  test("promptLength not below the context names the field", () => {
    const bad = lmRecipe(lmCorpus(), (r) => {
      r.students.push({ name: "seq", role: "distilled", model: r.students[0].model, train: { ...r.students[0].train, modes: { teacher: 1 }, promptLength: 16 } });
    });
    userError(runCli(["run", bad, "--out", fresh("pl"), "-q"]), "students[1].train.promptLength", "16");
  });

  test("a held-out part shorter than the context is found before the teacher trains", () => {
    const d = fresh("short");
    mkdirSync(d);
    writeFileSync(join(d, "a.txt"), "abcdefghij".repeat(20)); // 200 characters, 10 % (20) held out
    const out = fresh("short-out");
    const bad = lmRecipe(d, (r) => {
      r.teacher.model.context = 32;
      r.students[0].model.context = 32;
    });
    const r = runCli(["run", bad, "--out", out]);
    userError(r, "teacher.model.context: 32 needs 33 held-out tokens", "has 20");
    assert.doesNotMatch(r.stderr, /steps$/m, "nothing was trained");
    assert.ok(!existsSync(join(out, "seed-0")), "no checkpoint written");
  });

  test("labels larger than the training set names the field", () => {
    const bad = writeTinyRecipe(fresh("labels") + ".yaml", (r) => ((r.students as { train: Record<string, unknown> }[])[1]!.train.labels = 5000));
    const out = fresh("labels-out");
    userError(runCli(["run", bad, "--out", out, "--data", data]), "students[1].train.labels: 5000 is larger than the 320 training examples");
    assert.ok(!existsSync(join(out, "seed-0")));
  });
});

// ---------------------------------------------------------------------------------------------
// Corpora and files that are not what they claim

describe("unreadable inputs: named, never quoted", () => {
  test("a corpus that is a device (/dev/zero) is refused at once; data.maxBytes caps the size", () => {
    const r = runCli(["run", lmRecipe("/dev/zero"), "--out", fresh("zero"), "-q"], { timeoutMs: 30_000 });
    userError(r, "/dev/zero: not a regular file or folder");
    const big = lmRecipe(lmCorpus(), (x) => (x.data.maxBytes = 1000));
    userError(runCli(["run", big, "--out", fresh("big"), "-q"]), "larger than", "data.maxBytes");
  });

  test("a tokenizer path at a system or binary file names the file and the problem, not the content", () => {
    const secret = fresh("secret") + ".json";
    writeFileSync(secret, "root:x:0:0:SECRET-CONTENT:/root:/bin/bash\n");
    const binary = fresh("blob");
    writeFileSync(binary, Buffer.from([0x53, 0x45, 0x43, 0x52, 0x45, 0x54, 0, 1, 2, 3]));
    for (const [tok, why] of [[secret, "not valid JSON"], [binary, "binary data"]] as const) {
      const line = userError(runCli(["run", lmRecipe(lmCorpus(), (r) => (r.data.tokenizer = tok)), "--out", fresh("tok"), "-q"]), tok, why);
      assert.doesNotMatch(line, /SECRET|root:x/, line);
    }
    // The same for a JSON recipe and a results.json given to `distill report`.
    const line = userError(runCli(["run", secret, "-q"]), secret, "not valid JSON");
    assert.doesNotMatch(line, /SECRET/);
    const rep = fresh("rep");
    mkdirSync(rep);
    writeFileSync(join(rep, "results.json"), "SECRET-CONTENT {");
    assert.doesNotMatch(userError(runCli(["report", rep]), "results.json", "not valid JSON"), /SECRET/);
  });

  test("a recipe path at a device or a binary file is refused without reading it", () => {
    assert.throws(() => loadAnyRecipe("/dev/zero"), (e: unknown) => e instanceof UserError && e.message === "/dev/zero: not a regular file (a device, pipe or socket); refusing to read it as a recipe");
    const bin = fresh("bin") + ".yaml";
    writeFileSync(bin, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 0, 1]));
    assert.throws(() => loadAnyRecipe(bin), (e: unknown) => e instanceof UserError && e.message === `${bin}: recipe is binary data, not YAML or JSON`);
  });
});

// ---------------------------------------------------------------------------------------------
// Leftovers

describe("leftovers cleaned up", () => {
  test("stale temp files of a killed process are removed on start; a live process's are kept", () => {
    const out = goodCopy();
    const dead = 2 ** 22 + 12345; // above Linux's default pid_max: no such process
    const stale = [join(out, `.results.json.${dead}.tmp`), join(out, "seed-0", `.teacher-0123456789.safetensors.${dead}.tmp`)];
    for (const p of stale) writeFileSync(p, "half");
    const live = join(out, `.report.html.${process.pid}.tmp`);
    writeFileSync(live, "being written");
    const r = runCli(["run", recipe, "--out", out, "--data", data]);
    ok(r);
    for (const p of stale) {
      assert.ok(!existsSync(p), `${p} removed`);
      assert.ok(r.stderr.includes(`removed ${p}, left by an interrupted write`), r.stderr);
    }
    assert.ok(existsSync(live), "the test process is alive: its file is not touched");
    assert.deepEqual(removeStaleTemps(out), []);
  });

  test("a run that fails before logging anything leaves no empty .metrics.jsonl", () => {
    const bad = writeTinyRecipe(fresh("batch") + ".yaml", (r) => ((r.students as { train: Record<string, unknown> }[])[0]!.train.batchSize = 1000));
    const out = fresh("batch-out");
    userError(runCli(["run", bad, "--out", out, "--data", data, "-q"]), "scratch.train.batchSize: 1000");
    const logs = readdirSync(join(out, "seed-0")).filter((f) => f.endsWith(".metrics.jsonl"));
    assert.deepEqual(logs.map((f) => f.split("-")[0]), ["teacher"], "the teacher logged; the failed scratch run left no log");
    for (const f of logs) assert.ok(statSync(join(out, "seed-0", f)).size > 0);
  });
});
