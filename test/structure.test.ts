// The module boundaries of issue 10's structure: the data path imports no model, evaluation does
// not reach into the trainer (both use the worker pool), and the trainer knows teachers only
// through the soft labels they give.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { REPO_ROOT } from "./helpers/fixtures.js";

const SRC = join(REPO_ROOT, "src");

/** Every import (static, dynamic, type-only) of each .ts file under src/dir, as paths relative to src. */
function importsOf(dir: string): { file: string; target: string }[] {
  const out: { file: string; target: string }[] = [];
  for (const name of readdirSync(join(SRC, dir), { recursive: true }) as string[]) {
    if (!name.endsWith(".ts")) continue;
    const file = join(SRC, dir, name);
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*"(\.[^"]+)"/g)) {
      out.push({ file: relative(SRC, file), target: relative(SRC, resolve(dirname(file), m[1])) });
    }
  }
  return out;
}

function assertNone(dir: string, forbidden: string[]): void {
  const bad = importsOf(dir).filter((i) => forbidden.some((f) => i.target.startsWith(f + "/")));
  assert.deepEqual(bad, [], `${dir}/ must not import ${forbidden.join(", ")}`);
}

test("src/data/ imports no model (src/nn/), not even a type", () => assertNone("data", ["nn", "teachers"]));

test("evaluation does not import the trainer: both use the worker pool (src/parallel/)", () => {
  assertNone("eval", ["train"]);
  assert.ok(importsOf("eval").some((i) => i.target === "parallel/pool.js"), "eval/ no longer uses the pool");
  assert.ok(importsOf("train").some((i) => i.target === "parallel/pool.js"), "train/ no longer uses the pool");
});

test("the trainer and the losses know no teacher adapter (ONNX, GGUF, HF)", () => {
  const adapters = ["teachers/onnx.js", "teachers/gguf.js", "teachers/hf.js", "teachers/gguf-child.js"];
  for (const dir of ["train", "losses", "data", "eval"]) {
    const bad = importsOf(dir).filter((i) => adapters.includes(i.target));
    assert.deepEqual(bad, [], `${dir}/ imports a teacher adapter`);
  }
});
