// What the cache pipeline tests share: a small text corpus, tiny teacher and student specs, an
// LM recipe writer, and the CLI's success and one-line-refusal checks.
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { runCli } from "./fixtures.js";

export const FOX = "the quick brown fox jumps over the lazy dog. pack my box with five dozen liquor jugs! ";
export const K = 4;
export const opt = { name: "adamw", lr: 0.01 };
export const student = { type: "llama", layers: 1, width: 8, heads: 2, context: 16 };
export const tinyTeacher = { model: { type: "llama", layers: 1, width: 16, heads: 2, context: 16 }, train: { steps: 30, batchSize: 8, optimizer: opt, loss: { name: "ce" } } };

/** A corpus folder in `dir` holding `text` repeated `times` times. */
export function textCorpus(dir: string, text = FOX, times = 60): string {
  const corpus = join(dir, "corpus");
  mkdirSync(corpus, { recursive: true });
  writeFileSync(join(corpus, "a.txt"), text.repeat(times));
  return corpus;
}

export interface RecipeShape {
  /** A fixed recipe name (runs then share one teacher folder), else the file's name. */
  name?: string;
  /** The student's training steps. */
  steps: number;
  evalWindows?: number;
  /** The loss names the cache's k. */
  lossTopK?: boolean;
  /** A `cache:` block (exact, k = K) into this folder, unless the teacher is a cache. */
  cacheDir?: string;
}

/** Writes DIR/NAME.yaml: one distilled student of `student` learning from `teacher`; returns its path. */
export function writeLMRecipe(dir: string, corpus: string, name: string, teacher: unknown, shape: RecipeShape, edit?: (r: Record<string, any>) => void): string {
  const r: Record<string, any> = {
    kind: "lm",
    name: shape.name ?? name,
    data: { corpus, tokenizer: "char", evalWindows: shape.evalWindows ?? 8 },
    teacher,
    ...(shape.cacheDir && !(teacher as { cache?: string }).cache ? { cache: { dir: shape.cacheDir, topK: K, precision: "exact" } } : {}),
    students: [{ name: "fkl", role: "distilled", model: student, train: { steps: shape.steps, batchSize: 4, optimizer: opt, loss: { name: "hinton", lambda: 1, ...(shape.lossTopK ? { topK: K } : {}) } } }],
    samples: { prompts: 0, promptLength: 4, tokens: 6, scoredPrompts: 0 },
  };
  edit?.(r);
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringify(r));
  return path;
}

/** Runs the CLI and expects exit 0. */
export function ok(args: string[]): { stdout: string; stderr: string } {
  const r = runCli(args);
  assert.equal(r.code, 0, `${args.join(" ")}\n${r.stderr}`);
  return r;
}

/** Exit 2 with exactly one line on stderr, matching `pattern`. */
export function refused(args: string[], pattern: RegExp): void {
  const r = runCli([...args, "-q"]);
  assert.equal(r.code, 2, `${args.join(" ")}: exit ${r.code}\n${r.stderr}`);
  assert.match(r.stderr, /^distill: error: [^\n]+\n$/, `not one line: ${r.stderr}`);
  assert.match(r.stderr, pattern);
}
