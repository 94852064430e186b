// Peak memory of a student reading a soft-label cache, at 1× and 10× the cache's size, with the
// same training (steps × batch: one pass over the largest cache, several over the smaller): the
// reader streams (two chunks decoded at a time), so the peak should not grow with the cache.
// Each size is built in one child process and read in another (a fresh process: its peak RSS is
// the reading run's alone). The teacher is synthetic (a fixed top-k per window, no model): what
// is measured is the store and the students' reading, not a teacher.
//   node --import tsx bench/cache-student-memory.ts [--chars 200000] [--scales 1,10]
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { initDevice } from "../src/engine/index.js";
import { validateLMRecipe, type LMRecipe } from "../src/recipe/recipe.js";
import { loadLMCorpus, runLMRecipe } from "../src/pipeline-lm.js";
import { configHash } from "../src/pipeline.js";
import { buildCache } from "../src/cache/index.js";
import { cacheWindows } from "../src/teachers/cache.js";
import { Rng } from "../src/util/rng.js";

const K = 16;
const CONTEXT = 64;
const BATCH = 32;
const quiet = { start() {}, update() {}, stop() {}, info() {} };

function recipeFor(dir: string, steps: number): LMRecipe {
  return validateLMRecipe(
    {
      kind: "lm",
      name: "cache-memory",
      data: { corpus: join(dir, "corpus"), tokenizer: "char", evalWindows: 16 },
      teacher: { cache: join(dir, "cache") },
      students: [
        {
          name: "fkl",
          role: "distilled",
          model: { type: "llama", layers: 1, width: 16, heads: 2, context: CONTEXT },
          train: { steps, batchSize: BATCH, optimizer: { name: "adamw", lr: 0.003 }, loss: { name: "hinton", lambda: 1 } },
        },
      ],
      samples: { prompts: 0, promptLength: 8, tokens: 8, scoredPrompts: 0 },
    },
    "cache-memory",
  );
}

async function child(phase: string, dir: string, steps: number): Promise<void> {
  await initDevice("wasm");
  const probe = recipeFor(dir, steps);
  const c = loadLMCorpus(probe, { progress: quiet });
  const w = cacheWindows(c.trainIds, c.heldIds, CONTEXT, 16);
  const V = c.tokenizer.vocabSize;
  if (phase === "build") {
    const t0 = performance.now();
    await buildCache({
      dir: join(dir, "cache"),
      identity: { teacher: "synthetic", tokenizer: configHash(c.tokJSON), corpus: w.corpus },
      k: K,
      vocab: V,
      context: CONTEXT,
      precision: "quantized",
      train: w.train.x,
      heldout: w.heldout.x,
      batchWindows: 64,
      // A fixed, window-dependent top k: K distinct ids after the input token, halving probabilities.
      async score(x, [B, T]) {
        const rows = B * T;
        const ids = new Int32Array(rows * K);
        const logprobs = new Float32Array(rows * K);
        for (let r = 0; r < rows; r++) for (let j = 0; j < K; j++) {
          ids[r * K + j] = (x[r] + 1 + j) % V;
          logprobs[r * K + j] = -(j + 1) * Math.LN2;
        }
        return { kind: "topk", rows, classes: V, k: K, ids, logprobs };
      },
    });
    process.stdout.write(JSON.stringify({ buildSeconds: (performance.now() - t0) / 1000 }) + "\n");
    return;
  }
  const recipe = recipeFor(dir, steps);
  const t0 = performance.now();
  await runLMRecipe(recipe, { out: join(dir, "out"), seeds: [0], device: "wasm", progress: quiet, stop: { requested: false }, workers: 1 });
  const seconds = (performance.now() - t0) / 1000;
  process.stdout.write(JSON.stringify({ windows: w.train.windows, steps, seconds, tokensPerSecond: (steps * BATCH * CONTEXT) / seconds, peakRssMB: peakRssMB() }) + "\n");
}

/**
 * This process's peak RSS from /proc (VmHWM): getrusage's maxRSS would also count the parent's
 * resident pages at the fork that started it.
 */
function peakRssMB(): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync("/proc/self/status", "utf8"));
  if (!m) throw new Error("no VmHWM in /proc/self/status (Linux only)");
  return Number(m[1]) / 1024;
}

function words(n: number, seed: number): string {
  const rng = new Rng(seed);
  const vocab = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "pack", "my", "box", "with", "five", "dozen", "liquor", "jugs", "and", "a", "of", "to"];
  let s = "";
  while (s.length < n) s += vocab[rng.int(vocab.length)] + (rng.int(9) === 0 ? ".\n" : " ");
  return s.slice(0, n);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === "--child") return child(args[1], args[2], Number(args[3]));
  const opt = (name: string, d: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : d);
  const chars = Number(opt("--chars", "200000"));
  const scales = opt("--scales", "1,10").split(",").map(Number);
  const self = fileURLToPath(import.meta.url);
  // One pass over the largest cache's training windows (90 % of the text, one token a character).
  const steps = Math.floor((chars * Math.max(...scales) * 0.9) / CONTEXT / BATCH);
  for (const scale of scales) {
    const dir = mkdtempSync(join(tmpdir(), "distill-cache-memory-"));
    try {
      mkdirSync(join(dir, "corpus"));
      writeFileSync(join(dir, "corpus", "a.txt"), words(chars * scale, 1));
      const run = (phase: string) => {
        const r = spawnSync(process.execPath, ["--import", "tsx", self, "--child", phase, dir, String(steps)], { encoding: "utf8", maxBuffer: 1 << 26 });
        if (r.status !== 0) throw new Error(`${phase} at ${scale}×: ${r.stderr}`);
        return JSON.parse(r.stdout.trim().split("\n").pop()!);
      };
      const built = run("build");
      const bytes = readdirSync(join(dir, "cache")).reduce((a, f) => a + statSync(join(dir, "cache", f)).size, 0);
      const read = run("read");
      console.log(
        `${scale}×: ${read.windows} windows (${read.windows * CONTEXT} positions, k ${K}), cache ${(bytes / 2 ** 20).toFixed(1)} MiB (built in ${built.buildSeconds.toFixed(1)} s); ` +
          `student read it in ${read.steps} steps, ${read.seconds.toFixed(1)} s (${Math.round(read.tokensPerSecond)} tokens/s), peak RSS ${read.peakRssMB.toFixed(0)} MB`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

await main();
