// `distill bench --workload serve`: what fanning a server teacher out over several addresses
// buys. One, then two `distill serve` processes (child processes, so each has its own core) on the
// same checkpoint; the same windows are scored through the server teacher with one address, then
// with both; tokens scored per second for each, and whether the two gave the same soft labels.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { random, tree } from "../engine/index.js";
import { saveCheckpoint } from "../checkpoint/checkpoint.js";
import { paramsToHost } from "../checkpoint/params.js";
import { llama, type LlamaSpec } from "../nn/llama.js";
import { openServerTeacher } from "../teachers/server.js";
import { charTokenizer, tokenizerFromJSON, type Tokenizer, type TokenizerJSON } from "../text/tokenizer.js";
import { loadCheckpoint } from "../checkpoint/checkpoint.js";
import { UserError } from "../util/errors.js";
import { Rng } from "../util/rng.js";

export interface ServeBenchRow {
  servers: number;
  windows: number;
  /** Tokens scored (windows × context). */
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
  retries: number;
}

export interface ServeBenchResult {
  model: string;
  context: number;
  topK: number;
  concurrencyPerServer: number;
  rows: ServeBenchRow[];
  rounds: number;
  /** The soft labels through two servers equal those through one, bit for bit. */
  same: boolean;
  /** The servers' addresses (stopped when the bench returns). */
  addresses: string[];
}

export interface ServeBenchOptions {
  /** A distill LM checkpoint (default: a random 2-layer Llama of width 64, context 64, written to a temporary folder). */
  model?: string;
  /** Windows scored per configuration (default 512: several seconds per run at a few thousand tokens/s). */
  windows?: number;
  /** Window length (default 48; the model's context must exceed it). */
  context?: number;
  topK?: number;
  /** Requests in flight per server (default 4). */
  concurrencyPerServer?: number;
  /** Timed runs of each configuration, interleaved; the fastest is kept (default 3). */
  rounds?: number;
}

const CORPUS = "the quick brown fox jumps over the lazy dog. pack my box with five dozen liquor jugs!\n";
const DEFAULT_SPEC: LlamaSpec = { type: "llama", layers: 2, width: 64, heads: 4, context: 64, tied: false, normEps: 1e-5, ropeTheta: 10000 };

/** Starts `distill serve MODEL` in a child process; resolves with its address once it prints it. */
function spawnServe(model: string, name: string): Promise<{ url: string; child: ChildProcess }> {
  // TypeScript under tsx (tests, `npm run distill`), JavaScript once built: the CLI beside this file.
  const ext = extname(fileURLToPath(import.meta.url));
  const bin = fileURLToPath(new URL(`../cli/bin${ext === ".ts" ? ".ts" : ".js"}`, import.meta.url));
  const execArgv = ext === ".ts" ? ["--import", import.meta.resolve("tsx")] : [];
  const child = spawn(process.execPath, [...execArgv, bin, "serve", model, "--name", name], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  return new Promise((resolve, reject) => {
    child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /^distill serve: (http:\/\/\S+) model /m.exec(out);
      if (m) resolve({ url: m[1], child });
    });
    child.on("exit", (code) => reject(new UserError(`bench serve: distill serve ${model} exited with code ${code} before it listened (${err.trim().split("\n").at(-1) ?? ""})`)));
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

export async function runServeBench(o: ServeBenchOptions = {}): Promise<ServeBenchResult> {
  const windows = o.windows ?? 512;
  const topK = o.topK ?? 8;
  const perServer = o.concurrencyPerServer ?? 4;
  let tmp: string | null = null;
  let model = o.model;
  let tok: Tokenizer;
  let modelContext: number;
  if (model === undefined) {
    tmp = mkdtempSync(join(tmpdir(), "distill-bench-serve-"));
    tok = charTokenizer(CORPUS);
    const m = llama(DEFAULT_SPEC, tok.vocabSize);
    const params = m.init(random.key(1));
    const host = await paramsToHost(params);
    tree.dispose(params);
    model = join(tmp, "bench-teacher.safetensors");
    saveCheckpoint(model, { tensors: host, config: { role: "scratch", model: DEFAULT_SPEC, tokenizer: tok.toJSON() as TokenizerJSON }, state: { done: true } });
    modelContext = DEFAULT_SPEC.context;
  } else {
    const c = loadCheckpoint(model);
    const cfg = c.config as { tokenizer?: TokenizerJSON; model?: { context?: number } };
    if (!cfg.tokenizer || !cfg.model?.context) throw new UserError(`${model}: not a language-model checkpoint (no tokenizer or context in its config)`);
    tok = tokenizerFromJSON(cfg.tokenizer, model);
    modelContext = cfg.model.context;
  }
  const context = o.context ?? Math.min(48, modelContext - 1);
  if (context + 1 > modelContext) throw new UserError(`bench serve: windows of ${context} tokens need a model context of at least ${context + 1}, ${model} has ${modelContext}`);
  const ids = tok.encode(CORPUS.repeat(Math.ceil((context * 4) / CORPUS.length) + 1));
  const rng = new Rng(7);
  const x = new Int32Array(windows * context);
  for (let w = 0; w < windows; w++) {
    const at = rng.int(ids.length - context);
    x.set(ids.subarray(at, at + context), w * context);
  }

  const children: ChildProcess[] = [];
  try {
    const started = await Promise.all([spawnServe(model, "bench"), spawnServe(model, "bench")]);
    children.push(...started.map((s) => s.child));
    const teachers = await Promise.all(
      [1, 2].map((n) =>
        openServerTeacher({ url: started.slice(0, n).map((s) => s.url), model: "bench", topK, concurrency: perServer * n }, { tokenizer: tok, vocab: tok.vocabSize, context, field: "bench" }),
      ),
    );
    // Warm-up (jit compilation in each server), not timed.
    for (const [j, t] of teachers.entries()) await t.softLabels(x.subarray(0, (j + 1) * perServer * context), [(j + 1) * perServer, context]);
    // One server, two, then both again: the best of two runs each, so a burst of other load on
    // the machine during one run does not decide the comparison.
    const best: (ServeBenchRow | null)[] = [null, null];
    const labels: unknown[] = [];
    for (let round = 0; round < (o.rounds ?? 3); round++) {
      for (const [j, teacher] of teachers.entries()) {
        const before = teacher.stats.retries;
        const t0 = performance.now();
        const l = await teacher.softLabels(x, [windows, context]);
        const seconds = (performance.now() - t0) / 1000;
        if (round === 0) labels.push(l);
        const row = { servers: j + 1, windows, tokens: windows * context, seconds, tokensPerSecond: (windows * context) / seconds, retries: teacher.stats.retries - before };
        if (!best[j] || row.seconds < best[j]!.seconds) best[j] = row;
      }
    }
    for (const t of teachers) await t.close();
    const rows = best as ServeBenchRow[];
    const [a, b] = labels as { ids: Int32Array; logprobs: Float32Array }[];
    const same = a.ids.every((v, i) => v === b.ids[i]) && a.logprobs.every((v, i) => v === b.logprobs[i]);
    return { model: o.model ?? `random Llama ${DEFAULT_SPEC.layers}×${DEFAULT_SPEC.width}`, context, topK, concurrencyPerServer: perServer, rounds: o.rounds ?? 3, rows, same, addresses: started.map((s) => s.url) };
  } finally {
    await Promise.all(children.map(stop));
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

export function formatServeBench(r: ServeBenchResult): string {
  const lines = r.rows.map(
    (row) =>
      `serve ${String(row.servers).padStart(2)} server${row.servers > 1 ? "s" : " "}  ${Math.round(row.tokensPerSecond).toLocaleString("en-US").padStart(9)} tokens/s  (${row.windows} windows × ${r.context} tokens in ${row.seconds.toFixed(2)} s, best of ${r.rounds}; ${row.retries} retries)`,
  );
  const [one, two] = r.rows;
  lines.push(`serve: ${r.model}, top ${r.topK}, ${r.concurrencyPerServer} requests in flight per server; two servers ${(two.tokensPerSecond / one.tokensPerSecond).toFixed(2)}× one; same soft labels: ${r.same ? "yes" : "NO"}`);
  return lines.join("\n");
}
