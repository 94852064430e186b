// The `distill` command line. Every user-fixable problem is a UserError: one line on stderr,
// exit code 2, and no output file is touched (files are written whole, by rename).
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Command, InvalidArgumentError, Option } from "commander";
import { z } from "zod";
import { initDevice, relaxedSimd, type Device } from "../engine/index.js";
import { loadAnyRecipe } from "../recipe/recipe.js";
import { runLMRecipe } from "../pipeline-lm.js";
import { runTextRecipe } from "../pipeline-text.js";
import { WORKLOADS, formatBench, formatDeployBench, runDeployBench, runWorkload, type BenchResult, type DeployBenchRow } from "../bench/bench.js";
import { findTorchPython, runTorchBaseline, torchHasCuda } from "../bench/pytorch.js";
import { formatServeBench, runServeBench, type ServeBenchResult } from "../bench/serve-bench.js";
import { runCacheBench } from "../bench/cache-bench.js";
import { cpus, totalmem } from "node:os";
import { Interrupted, runRecipe, type RunOptions } from "../pipeline.js";
import { formatDeployTable, formatLMTable, formatTable } from "../report/results.js";
import { renderHtmlReport, type ReportResults } from "../report/html.js";
import { readCurves } from "../report/curves.js";
import { readFileBounded, sizeText, writeFileAtomic } from "../util/fs.js";
import { EXPORT_FORMATS, exportCheckpoint } from "../export/index.js";
import { makeProgress } from "./progress.js";
import { UserError, fsErrorLine } from "../util/errors.js";
import { evalCheckpoint } from "./eval.js";
import { cacheRecipe, parseShard } from "../cache/build.js";
import { serveCommand } from "../serve/cli.js";
import { INFERENCE_ENGINES, type InferenceEngine } from "../teachers/own-onnx.js";

function parseSeeds(v: string): number[] {
  const seeds = v.split(",").map((s) => Number(s.trim()));
  if (seeds.length === 0 || seeds.some((s) => !Number.isInteger(s) || s < 0)) {
    throw new InvalidArgumentError(`expected comma-separated non-negative integers, got "${v}"`);
  }
  return seeds;
}

function parseNonNegativeInt(v: string): number {
  const n = Number(v);
  if (v.trim() === "" || !Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected a non-negative integer, got "${v}"`);
  return n;
}

const collect = (v: string, prev: string[]) => [...prev, v];

interface CommonFlags {
  out?: string;
  seeds: number[];
  device: Device;
  data?: string;
  resume?: boolean;
  fresh?: boolean;
  set: string[];
  quiet?: boolean;
  workers: number | "auto";
  inference: InferenceEngine;
}

function machineLine(): string {
  const c = cpus();
  return `${c.length} × ${c[0]?.model ?? "unknown CPU"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
}

function parseWorkers(v: string): number | "auto" {
  if (v === "auto") return v;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a positive integer or "auto", got "${v}"`);
  return n;
}

/** Replicas run the Wasm engine on worker threads; a GPU device trains on one. */
function workersFor(device: Device, workers: number | "auto"): number | "auto" {
  if (device === "wasm") return workers;
  if (workers !== "auto" && workers > 1) throw new UserError(`--workers ${workers}: data-parallel workers run on the wasm device only`);
  return 1;
}

function withCommon(cmd: Command): Command {
  return cmd
    .option("--out <dir>", "output directory (default: runs/<recipe name>)")
    .option("--seeds <list>", "comma-separated seeds", parseSeeds, [0])
    .addOption(new Option("--device <device>", "compute device").choices(["wasm", "webgpu"]).default("wasm"))
    .option("--data <dir>", "dataset directory (overrides the recipe and DISTILL_DATA)")
    .option("--resume", "continue interrupted runs from their checkpoints")
    .option("--fresh", "retrain even when a finished checkpoint with the same config exists")
    .option("--set <path=value>", "override a recipe field, e.g. --set teacher.train.epochs=2", collect, [])
    .option("--workers <n>", 'data-parallel training threads, or "auto" (one per core, up to 2)', parseWorkers, "auto")
    .addOption(inferenceOption())
    .option("-q, --quiet", "no progress output");
}

function inferenceOption(): Option {
  return new Option("--inference <engine>", "where passes that only read a model run (evaluation, soft labels): distill's engine, or its ONNX export in onnxruntime")
    .choices([...INFERENCE_ENGINES])
    .default("distill");
}

/** The signal that stopped the run, for the exit code (128 + its number, as a shell reports). */
let stoppedBy: NodeJS.Signals | null = null;

/**
 * SIGINT (Ctrl-C) and SIGTERM (kill, a scheduler's time limit, `docker stop`) ask the trainer to
 * checkpoint and stop after the current step; a second signal exits at once.
 */
function stopOnSigint(): { requested: boolean } {
  const stop = { requested: false };
  const onSignal = (sig: NodeJS.Signals) => {
    if (stop.requested) process.exit(sig === "SIGTERM" ? 143 : 130);
    stop.requested = true;
    stoppedBy = sig;
    const what = sig === "SIGINT" ? "Ctrl-C" : sig;
    process.stderr.write(`\n${what}: saving a checkpoint after this step (${sig === "SIGINT" ? "press again" : "signal again"} to quit now)\n`);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return stop;
}

async function runCommand(recipePath: string, flags: CommonFlags, only?: string[]): Promise<void> {
  const recipe = loadAnyRecipe(recipePath, flags.set);
  const device = await initDevice(flags.device);
  const out = flags.out ?? join("runs", recipe.name);
  const opts: RunOptions = {
    out,
    seeds: flags.seeds,
    device,
    dataDir: flags.data,
    resume: flags.resume,
    fresh: flags.fresh,
    only,
    progress: makeProgress(flags.quiet),
    stop: stopOnSigint(),
    workers: workersFor(device, flags.workers),
    inference: flags.inference,
  };
  if (recipe.kind === "lm") {
    const results = await runLMRecipe(recipe, opts);
    console.log(formatLMTable(results));
    for (const s of results.samples) console.log(`sample ${s.name} seed ${s.seed}: ${JSON.stringify(s.prompt)} → ${JSON.stringify(s.text)}`);
    const deploy = formatDeployTable(results);
    if (deploy) console.log(deploy);
  } else {
    const results = recipe.kind === "text-classification" ? await runTextRecipe(recipe, recipePath, opts) : await runRecipe(recipe, opts);
    console.log(formatTable(results));
    const deploy = formatDeployTable(results);
    if (deploy) console.log(deploy);
  }
  console.log(`results: ${join(out, "results.json")}`);
  console.log(`report: ${join(out, "report.html")}`);
}

// Loose objects: fields this schema does not name (a newer metric) are kept, not stripped, so
// a regenerated report shows what the run wrote. Language-model runs add perplexity and, for
// char tokenizers, bitsPerChar to their metrics, and their results carry seeded samples.
const Metrics = z.looseObject({
  accuracy: z.number(),
  // NaN (no teacher in the command that ran it, e.g. `distill train --student`) is written as null.
  agreement: z.number().nullable().transform((v) => v ?? NaN),
  ece: z.number(),
  loss: z.number(),
  perplexity: z.number().optional(),
  bitsPerChar: z.number().optional(),
});
// The per-run evidence behind the verdicts (report/verdicts.ts); absent in older results files.
const PerExample = z
  .object({ n: z.number().int().min(0), correct: z.base64() })
  .refine((p) => Buffer.from(p.correct, "base64").length === Math.ceil(p.n / 8), { message: "correct must hold one bit per example" });
const Generation = z.looseObject({
  prompts: z.number().int().min(1),
  promptLength: z.number().int().positive(),
  tokens: z.number().int().positive(),
  teacherNLL: z.number(),
  perPrompt: z.array(z.number()),
  distinct1: z.number(),
  distinct2: z.number(),
  distinct3: z.number(),
});
// export/deploy.ts: bytes per exported format, median ms per example at batch 1 and 64.
const Latency = z.object({ batch1: z.number().positive(), batch64: z.number().positive() });
const Deploy = z.looseObject({
  bytes: z.record(z.string(), z.number().int().min(0)),
  latency: z.object({ onnxruntime: Latency.optional(), distill: Latency }),
  skipped: z.record(z.string(), z.string()).optional(),
});
const ResultsSchema = z.looseObject({
  recipe: z.string(),
  device: z.string(),
  runs: z.array(
    z.looseObject({
      name: z.string().min(1),
      role: z.enum(["teacher", "scratch", "distilled"]),
      model: z.string(),
      params: z.number().int().min(0),
      seed: z.number().int().min(0),
      metrics: Metrics,
      seconds: z.number(),
      // What the report draws from (see report/results.ts); checked so a hand-edited file
      // is a one-line error, not a crash while rendering.
      settings: z.looseObject({ loss: z.string(), optimizer: z.string(), lr: z.number(), batchSize: z.number().int().positive(), steps: z.number().int().min(0), examples: z.number().int().min(0), workers: z.number(), labels: z.number().int().min(0).optional(), epochs: z.number().int().min(0).optional(), context: z.number().int().positive().optional(), modes: z.object({ corpus: z.number(), teacher: z.number(), student: z.number() }).optional() }).optional(),
      confusion: z.array(z.array(z.number().int().min(0))).optional(),
      reliability: z.array(z.object({ count: z.number().min(0), confidence: z.number(), accuracy: z.number() })).optional(),
      perExample: PerExample.optional(),
      heldOutWindows: z.object({ context: z.number().int().positive(), nll: z.array(z.number()) }).optional(),
      generation: Generation.optional(),
      teacherParams: z.number().int().min(0).optional(),
      deploy: Deploy.optional(),
    }),
  ),
  classes: z.array(z.string()).optional(),
  environment: z.looseObject({ distill: z.string(), node: z.string(), engine: z.string(), device: z.string(), workers: z.union([z.number(), z.literal("auto")]), cpus: z.number() }).optional(),
  samples: z.array(z.object({ name: z.string(), seed: z.number().int().min(0), prompt: z.string(), text: z.string() })).optional(),
});

/** OUT/results.json, checked: `distill report` may be pointed at any directory. */
function loadResults(out: string): ReportResults {
  const path = join(out, "results.json");
  if (!existsSync(path)) throw new UserError(`${path}: not found (is ${out} the --out directory of a finished \`distill run\`?)`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileBounded(path, 256 * 2 ** 20, "results file").toString("utf8"));
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${path}: not valid JSON (not written by \`distill run\`?)`); // the parser's message would quote the file
  }
  const parsed = ResultsSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("").replace(/^\./, "");
    throw new UserError(`${path}: not a distill results file: ${where || "(top level)"}: ${issue.message}`);
  }
  return parsed.data;
}

/** Regenerates OUT/report.html from OUT/results.json and the training logs beside it. */
function reportCommand(out: string): void {
  const results = loadResults(out);
  const path = join(out, "report.html");
  writeFileAtomic(path, renderHtmlReport(results, readCurves(out, results), { generated: new Date().toISOString() }));
  console.log(`report: ${path}`);
}

export function buildCli(): Command {
  // exitOverride and configureOutput must come before the subcommands: commander copies them
  // into each subcommand when it is created. A usage error (bad option value, unknown option)
  // is then one line, `distill: error: ...`, like every other user error, and main() sees it.
  const program = new Command("distill")
    .description("Knowledge distillation: train a teacher, distil a small student, and report honestly what it bought")
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`distill: ${str.trimEnd().replace(/\s*\n\s*/g, " ")}\n`) });

  withCommon(program.command("run <recipe>"))
    .description("teacher → scratch student → distilled student for each seed, then the report")
    .action((recipe: string, flags: CommonFlags) => runCommand(recipe, flags));

  withCommon(program.command("train <recipe>"))
    .description("train the recipe's teacher, or with --student NAME a student from scratch")
    .option("--student <name>", "a scratch student of the recipe")
    .action(async (recipe: string, flags: CommonFlags & { student?: string }) => {
      if (flags.student) {
        const r = loadAnyRecipe(recipe, flags.set);
        const s = r.students.find((x) => x.name === flags.student);
        if (!s) throw new UserError(`${recipe}: no student named "${flags.student}" (have: ${r.students.map((x) => x.name).join(", ")})`);
        if (s.role !== "scratch") throw new UserError(`${recipe}: student "${s.name}" is distilled; use \`distill distill\``);
      }
      await runCommand(recipe, flags, [flags.student ?? "teacher"]);
    });

  withCommon(program.command("distill <recipe>"))
    .description("distil the recipe's students from its teacher (trained first if missing)")
    .option("--student <name>", "only this distilled student")
    .action(async (recipe: string, flags: CommonFlags & { student?: string }) => {
      const r = loadAnyRecipe(recipe, flags.set);
      const names = r.students.filter((s) => s.role === "distilled" && (!flags.student || s.name === flags.student)).map((s) => s.name);
      if (names.length === 0) throw new UserError(`${recipe}: no distilled student${flags.student ? ` named "${flags.student}"` : ""}`);
      await runCommand(recipe, flags, names);
    });

  program
    .command("cache <recipe>")
    .description("score the recipe's training and held-out windows with its teacher once, into the soft-label cache of its cache: block")
    .option("--out <dir>", "the cache folder (default: the recipe's cache.dir)")
    .option("--shard <i/N>", "fill only chunks c with c mod N = i (N processes or machines, then --merge)")
    .option("--merge", "verify the shards' checksums and write the cache's one manifest")
    .option("--runs <dir>", "where a teacher trained here is trained or reused (default: runs/<recipe name>, as distill run)")
    .option("--data <dir>", "corpus (overrides the recipe)")
    .option("--set <path=value>", "override a recipe field", collect, [])
    .addOption(new Option("--device <device>", "compute device").choices(["wasm", "webgpu"]).default("wasm"))
    .option("--workers <n>", 'data-parallel threads for a teacher trained here, or "auto"', parseWorkers, "auto")
    .addOption(inferenceOption())
    .option("-q, --quiet", "no progress output")
    .action(async (recipePath: string, flags: { out?: string; shard?: string; merge?: boolean; runs?: string; data?: string; set: string[]; device: Device; workers: number | "auto"; quiet?: boolean; inference: InferenceEngine }) => {
      const recipe = loadAnyRecipe(recipePath, flags.set);
      if (recipe.kind !== "lm") throw new UserError(`${recipePath}: distill cache takes a language-model recipe (kind: lm)`);
      const shard = flags.shard !== undefined ? parseShard(flags.shard) : undefined;
      if (shard && flags.merge) throw new UserError(`--shard ${flags.shard} with --merge: fill the shards first, then merge once`);
      const device = flags.merge ? flags.device : await initDevice(flags.device);
      const r = await cacheRecipe(recipe, {
        out: flags.runs ?? join("runs", recipe.name),
        seeds: [0],
        device,
        dataDir: flags.data,
        progress: makeProgress(flags.quiet),
        stop: stopOnSigint(),
        workers: workersFor(device, flags.workers),
        inference: flags.inference,
        cacheDir: flags.out,
        shard,
        merge: flags.merge,
      });
      if ("merged" in r) {
        const m = r.merged;
        console.log(`merged: ${m.shards.length} chunks, ${m.rows} positions, top ${m.k} of ${m.vocab} (${m.precision})`);
      } else if (r.manifest) {
        console.log(`cache: ${r.dir} complete (${r.scoredWindows} windows scored now; ${r.manifest.rows} positions, top ${r.manifest.k}, ${r.manifest.precision})`);
      } else {
        console.log(`cache: ${r.dir}${shard ? ` shard ${shard.index}/${shard.count}` : ""} done (${r.scoredWindows} windows scored now)${shard ? "; when every shard is done, run with --merge" : ""}`);
      }
    });

  program
    .command("report <out-dir>")
    .description("regenerate OUT/report.html from OUT/results.json and the training logs")
    .action((out: string) => reportCommand(out));

  program
    .command("bench")
    .description("time the training and inference paths (ms/step, samples/s or tokens/s, peak RSS) beside PyTorch")
    .option("--workload <names>", `comma-separated, from ${WORKLOADS.join(", ")}, deploy (model sizes and inference latency, teacher against student), cache (soft-label cache: bytes per token, KL, write and read tokens/s, reader memory), serve (a server teacher's tokens/s through one and two distill serve processes)`, WORKLOADS.join(","))
    .option("--teacher <checkpoint>", "deploy: the teacher checkpoint (default: the seed recipe's teacher MLP, random parameters); serve: the LM checkpoint served (default: a random tiny Llama)")
    .option("--student <checkpoint>", "deploy: the student checkpoint (default: the seed recipe's student MLP, random parameters)")
    .option("--steps <n>", "timed steps per workload (default: 2,000 for the MLPs, fewer for the rest); serve: windows scored (default 512)", (v) => Number(v))
    .option("--batch <n>", "batch size of the classifier training workloads", (v) => Number(v), 128)
    .option("--workers <n>", 'data-parallel training threads, or "auto"', parseWorkers, "auto")
    .option("--no-pytorch", "skip the PyTorch baseline")
    .option("--json <file>", "also write the results as JSON")
    .addOption(new Option("--device <device>", "compute device").choices(["wasm", "webgpu"]).default("wasm"))
    .addOption(inferenceOption())
    .action(
      async (flags: { workload: string; steps?: number; batch: number; workers: number | "auto"; pytorch: boolean; json?: string; device: Device; teacher?: string; student?: string; inference: InferenceEngine }) => {
        if (flags.steps !== undefined && (!Number.isInteger(flags.steps) || flags.steps <= 0)) throw new UserError(`--steps: expected a positive integer, got ${flags.steps}`);
        if (!Number.isInteger(flags.batch) || flags.batch <= 0) throw new UserError(`--batch: expected a positive integer, got ${flags.batch}`);
        const all = flags.workload.split(",").map((w) => w.trim());
        const extra = ["deploy", "cache", "serve"];
        for (const w of all) if (!extra.includes(w) && !(WORKLOADS as readonly string[]).includes(w)) throw new UserError(`--workload: unknown workload "${w}" (known: ${WORKLOADS.join(", ")}, ${extra.join(", ")})`);
        // deploy, cache and serve are not training workloads: no PyTorch baseline for them.
        const names = all.filter((w) => !extra.includes(w));
        const device = await initDevice(flags.device);
        const workers = workersFor(device, flags.workers);
        const fma = device === "wasm" ? (relaxedSimd ? ", fused multiply-add (relaxed SIMD)" : ", no fused multiply-add (DISTILL_RELAXED_SIMD=0 or no relaxed SIMD)") : "";
        const ort = flags.inference === "onnxruntime" ? "; inference and the LM teacher in onnxruntime" : "";
        console.log(`distill bench on ${device}${fma}${ort}: ${machineLine()}`);
        const ours: BenchResult[] = [];
        for (const w of names) {
          const r = await runWorkload(w, { steps: flags.steps, workers, batch: flags.batch, inference: flags.inference });
          console.log(formatBench(r));
          ours.push(r);
        }
        let deploy: DeployBenchRow[] | undefined;
        if (all.includes("deploy")) {
          deploy = await runDeployBench({ teacher: flags.teacher, student: flags.student });
          console.log(formatDeployBench(deploy));
        }
        const cache = all.includes("cache") ? await runCacheBench() : undefined;
        let serve: ServeBenchResult | undefined;
        if (all.includes("serve")) {
          serve = await runServeBench({ model: flags.teacher, ...(flags.steps !== undefined ? { windows: flags.steps } : {}) });
          console.log(formatServeBench(serve));
        }
        if (names.length === 0) {
          if (flags.json) writeFileAtomic(flags.json, JSON.stringify({ device, date: new Date().toISOString(), machine: machineLine(), deploy, cache, serve }, null, 2) + "\n");
          return;
        }
        let torch: ReturnType<typeof runTorchBaseline> | null = null;
        let torchNote: string;
        const py = flags.pytorch ? findTorchPython() : null;
        if (!flags.pytorch) torchNote = "PyTorch baseline skipped (--no-pytorch)";
        else if (!py) torchNote = `PyTorch not found (no python3 with torch at ${process.env.DISTILL_PYTHON ?? "/usr/bin/python3 or on PATH"}): our numbers only`;
        else {
          const torchDevice = device === "webgpu" ? "cuda" : "cpu";
          if (torchDevice === "cuda" && !torchHasCuda(py.python)) {
            torchNote = `PyTorch ${py.torch} at ${py.python} sees no CUDA GPU: no same-GPU baseline`;
          } else {
            const steps = new Map(ours.map((r) => [r.workload, r.steps]));
            torch = runTorchBaseline(py.python, names, { steps: (w) => steps.get(w) ?? 200, threads: torchDevice === "cpu" ? [1, 2] : [1], device: torchDevice, batch: flags.batch });
            torchNote = `PyTorch ${py.torch} at ${py.python} on ${torchDevice}${torchDevice === "cpu" ? ", best of 1 and 2 threads" : ""}`;
          }
        }
        console.log(torchNote);
        for (const e of torch?.errors ?? []) console.log(`pytorch error: ${e}`);
        for (const t of torch?.best ?? []) {
          const unit = ours.find((r) => r.workload === t.workload)?.unit ?? "samples/s";
          console.log(`pytorch ${t.workload.padEnd(18)} ${t.msPerStep.toFixed(2).padStart(9)} ms/step  ${Math.round(t.throughput).toLocaleString("en-US").padStart(10)} ${unit}  peak RSS ${t.peakRssMB.toFixed(0)} MB  (${t.threads} thread${t.threads > 1 ? "s" : ""})`);
        }
        const ratios: Record<string, number> = {};
        for (const r of ours) {
          const t = torch?.best.find((b) => b.workload === r.workload);
          if (t) ratios[r.workload] = r.throughput / t.throughput;
        }
        for (const [w, x] of Object.entries(ratios)) console.log(`ratio ${w} ${x.toFixed(2)}`);
        if (flags.json) {
          const doc = { device, date: new Date().toISOString(), machine: machineLine(), results: ours, ...(deploy ? { deploy } : {}), ...(cache ? { cache } : {}), ...(serve ? { serve } : {}), pytorch: torch ? { note: torchNote, best: torch.best, all: torch.all, errors: torch.errors } : { note: torchNote }, ratios };
          writeFileAtomic(flags.json, JSON.stringify(doc, null, 2) + "\n");
        }
      },
    );

  program
    .command("eval <checkpoint>")
    .description("evaluate a checkpoint on the test set (accuracy, agreement, ECE, loss)")
    .option("--teacher <checkpoint>", "teacher checkpoint for the agreement metric")
    .option("--data <dir>", "dataset directory")
    .addOption(new Option("--device <device>", "compute device").choices(["wasm", "webgpu"]).default("wasm"))
    .action(async (ckpt: string, flags: { teacher?: string; data?: string; device: Device }) => {
      await initDevice(flags.device);
      console.log(JSON.stringify(await evalCheckpoint(ckpt, flags.teacher, flags.data), null, 2));
    });
  program
    .command("export <checkpoint>")
    .description("write a finished checkpoint as ONNX, a Hugging Face folder, GGUF (language models) or a static browser folder")
    .requiredOption("--format <format>", EXPORT_FORMATS.join(" | "))
    .option("--out <path>", "output file or folder (default: beside the checkpoint: X.onnx, X-hf/, X.gguf or X-f16.gguf, X-web/)")
    .option("--dtype <dtype>", "gguf weight type: f32 or f16", "f32")
    .option("--force", "replace an existing output (whole: the old one stays until the new one is complete)")
    .action(async (ckpt: string, flags: { format: string; out?: string; dtype: string; force?: boolean }) => {
      const r = await exportCheckpoint(ckpt, flags.format, flags);
      console.log(`wrote ${r.path} (${sizeText(r.bytes)}${r.bytes >= 2 ** 20 ? `, ${r.bytes} bytes` : ""})`);
    });
  program
    .command("serve <model>")
    .description("serve a language model (distill checkpoint, Hugging Face folder) over an OpenAI-compatible HTTP API on 127.0.0.1")
    .option("--port <n>", "port (default: any free one)", parseNonNegativeInt, 0)
    .option("--max-logprobs <n>", "the largest logprobs / prompt_logprobs a request may ask for", parseNonNegativeInt, 20)
    .option("--generate-only", "answer like llama.cpp's server: generate, but no log-probabilities and no /tokenize")
    .option("--name <name>", "the model name clients use (default: the file's base name)")
    .action((model: string, flags: { port: number; maxLogprobs: number; generateOnly?: boolean; name?: string }) =>
      serveCommand(model, { port: flags.port, maxLogprobs: flags.maxLogprobs, generateOnly: flags.generateOnly ?? false, name: flags.name }),
    );
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildCli();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof UserError) {
      process.stderr.write(`distill: error: ${e.message}\n`);
      return 2;
    }
    // A full disk or a folder we may not write: the user's to fix, so one line, not a trace.
    // Files are written whole (writeFileAtomic), so what was there before is still intact.
    const fsLine = fsErrorLine(e);
    if (fsLine !== null) {
      process.stderr.write(`distill: error: ${fsLine}\n`);
      return 2;
    }
    if (e instanceof Interrupted) {
      process.stderr.write(`distill: ${e.message}\n`);
      return stoppedBy === "SIGTERM" ? 143 : 130;
    }
    const ce = e as { code?: string; exitCode?: number };
    if (typeof ce.code === "string" && ce.code.startsWith("commander.")) {
      if (ce.code === "commander.helpDisplayed" || ce.code === "commander.version") return 0;
      // Help printed because no command was given keeps commander's code; usage errors are 2.
      return ce.code === "commander.help" ? (ce.exitCode ?? 1) : 2;
    }
    throw e;
  }
}
