// Fixtures for CLI tests: a tiny learnable Fashion-MNIST look-alike on disk, a tiny recipe,
// and a helper that runs the real CLI (`src/cli/bin.ts` under tsx) in a child process.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify as toYaml } from "yaml";
import { writeIdxGz } from "../../src/data/idx.js";
import { FASHION_MNIST_FILES, NUM_CLASSES } from "../../src/data/fashion-mnist.js";
import { Rng } from "../../src/util/rng.js";

/** The repository root (this file is test/helpers/fixtures.ts). */
export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

const SIDE = 28;

/**
 * n 28×28 uint8 images whose class decides where a bright 6×6 blob sits (a 5×2 grid of
 * class-specific positions), over low deterministic noise, with the blob jittered by ±1 pixel.
 * Labels cycle through a seeded permutation so every class appears about equally.
 */
function makeSplit(n: number, rng: Rng): { images: Uint8Array; labels: Uint8Array } {
  const images = new Uint8Array(n * SIDE * SIDE);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const c = (i + rng.int(NUM_CLASSES)) % NUM_CLASSES;
    labels[i] = c;
    const base = i * SIDE * SIDE;
    for (let p = 0; p < SIDE * SIDE; p++) images[base + p] = rng.int(48);
    const top = 2 + Math.floor(c / 5) * 14 + rng.int(3) - 1;
    const left = 1 + (c % 5) * 5 + rng.int(3) - 1;
    for (let r = Math.max(0, top); r < Math.min(SIDE, top + 6); r++) {
      for (let q = Math.max(0, left); q < Math.min(SIDE, left + 6); q++) {
        images[base + r * SIDE + q] = 180 + rng.int(76);
      }
    }
  }
  return { images, labels };
}

/**
 * Writes the four gzipped Fashion-MNIST IDX files into `dir` (created if needed): `train` and
 * `test` images of 28×28 with labels 0..9. Deterministic for a given seed.
 */
export function makeFashionFixture(dir: string, opts: { train: number; test: number; seed?: number }): string {
  mkdirSync(dir, { recursive: true });
  const rng = new Rng(opts.seed ?? 12345);
  const tr = makeSplit(opts.train, rng);
  const te = makeSplit(opts.test, rng);
  writeIdxGz(join(dir, `${FASHION_MNIST_FILES.trainImages}.gz`), [opts.train, SIDE, SIDE], tr.images);
  writeIdxGz(join(dir, `${FASHION_MNIST_FILES.trainLabels}.gz`), [opts.train], tr.labels);
  writeIdxGz(join(dir, `${FASHION_MNIST_FILES.testImages}.gz`), [opts.test, SIDE, SIDE], te.images);
  writeIdxGz(join(dir, `${FASHION_MNIST_FILES.testLabels}.gz`), [opts.test], te.labels);
  return dir;
}

/** Deep-merges plain objects; arrays and scalars in `b` replace those in `a`. */
function merge(a: unknown, b: unknown): unknown {
  if (typeof a !== "object" || a === null || Array.isArray(a)) return b;
  if (typeof b !== "object" || b === null || Array.isArray(b)) return b;
  const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
  for (const [k, v] of Object.entries(b as Record<string, unknown>)) out[k] = merge(out[k], v);
  return out;
}

/** The tiny recipe as a plain object: MLP teacher [32], students [8], 2 epochs, batch 32. */
export function tinyRecipe(): Record<string, unknown> {
  const train = (loss: Record<string, unknown>) => ({
    epochs: 2,
    batchSize: 32,
    optimizer: { name: "adam", lr: 0.003 },
    loss,
  });
  return {
    name: "tiny",
    description: "CLI test recipe",
    data: { dataset: "fashion-mnist" },
    teacher: { model: { type: "mlp", hidden: [32] }, train: train({ name: "ce" }) },
    students: [
      { name: "scratch", role: "scratch", model: { type: "mlp", hidden: [8] }, train: train({ name: "ce" }) },
      {
        name: "distilled",
        role: "distilled",
        model: { type: "mlp", hidden: [8] },
        train: train({ name: "hinton", temperature: 2, lambda: 0.5 }),
      },
    ],
  };
}

/**
 * Writes the tiny recipe as YAML to `path`. `overrides` is deep-merged into it (objects merge,
 * arrays replace: pass a whole `students` list to change a student); or pass a function to
 * edit the object in place.
 */
export function writeTinyRecipe(
  path: string,
  overrides?: Record<string, unknown> | ((r: Record<string, unknown>) => void),
): string {
  let recipe = tinyRecipe();
  if (typeof overrides === "function") overrides(recipe);
  else if (overrides) recipe = merge(recipe, overrides) as Record<string, unknown>;
  writeFileSync(path, toYaml(recipe));
  return path;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Wall time of the child process, seconds. */
  seconds: number;
}

/**
 * Runs `node --import tsx src/cli/bin.ts ...args` from the repository root and waits for it.
 * DISTILL_DATA is removed from the child's environment unless given in `opts.env`, so a
 * developer's setting cannot change what a test sees.
 */
export function runCli(
  args: string[],
  opts: { timeoutMs?: number; env?: Record<string, string>; cwd?: string } = {},
): CliResult {
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1" };
  delete env["DISTILL_DATA"];
  // node --test sets this in test processes; the CLI child is not a test.
  delete env["NODE_TEST_CONTEXT"];
  Object.assign(env, opts.env);
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ["--import", "tsx", join(REPO_ROOT, "src/cli/bin.ts"), ...args], {
    cwd: opts.cwd ?? REPO_ROOT,
    env,
    encoding: "utf8",
    timeout: opts.timeoutMs ?? 120_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, seconds: (performance.now() - t0) / 1000 };
}

/** Every file under `dir` (relative path → sha256), to prove a failed command wrote nothing. */
export function snapshot(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else files.set(relative(dir, p), createHash("sha256").update(readFileSync(p)).digest("hex"));
    }
  };
  walk(dir);
  return files;
}

/**
 * Runs the CLI until `until(stderr so far)` says so (checked on every stderr chunk and every
 * 10 ms, so it may also look at files), then sends `signal`; resolves on exit.
 */
export function runUntil(
  args: string[],
  until: (stderr: string) => boolean,
  signal: NodeJS.Signals,
  timeoutMs = 180_000,
): Promise<{ code: number | null; stderr: string; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    const env: Record<string, string | undefined> = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    delete env.DISTILL_DATA;
    const child = spawn(process.execPath, ["--import", "tsx", join(REPO_ROOT, "src/cli/bin.ts"), ...args], { cwd: REPO_ROOT, env });
    let stderr = "";
    let sent = false;
    const check = () => {
      if (!sent && until(stderr)) {
        sent = true;
        child.kill(signal);
      }
    };
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    const poll = setInterval(check, 10);
    child.stderr.on("data", (d) => {
      stderr += d;
      check();
    });
    child.on("error", reject);
    child.on("close", (code, sig) => {
      clearTimeout(timer);
      clearInterval(poll);
      resolve({ code, stderr, signal: sig });
    });
  });
}

/**
 * The pieces of a tiny language-model recipe: a one-file corpus written under `dir`, an optimiser
 * and a 1-layer Llama of width 8 (teachers widen it).
 */
export function tinyLMParts(dir: string) {
  const corpus = join(dir, "corpus");
  mkdirSync(corpus);
  writeFileSync(join(corpus, "a.txt"), "the quick brown fox jumps over the lazy dog. ".repeat(40));
  return { corpus, opt: { name: "adamw", lr: 0.01 }, model: { type: "llama", layers: 1, width: 8, heads: 2, context: 16 } };
}
