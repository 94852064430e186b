// Teachers from files in recipes: the recipe fields (one line naming the field when wrong),
// the teacher's identity in the students' hashes (the file's bytes, not its path), and the
// round trip: a teacher trained by distill, exported, and distilled from as a file gives the
// student the native teacher gives.
import { test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { validateLMRecipe, validateRecipe } from "../src/recipe/recipe.js";
import { fileTeacherId } from "../src/teachers/files.js";
import { UserError } from "../src/util/errors.js";
import { tinyRecipe } from "./helpers/fixtures.js";
import { tempDir } from "./helpers/tmp.js";

function lmRecipe(teacher: unknown, student: Record<string, unknown> = {}): Record<string, unknown> {
  const opt = { name: "adamw", lr: 0.01 };
  return {
    kind: "lm",
    name: "byo",
    data: { tokenizer: "char" },
    teacher,
    students: [{ name: "s", role: "distilled", model: { type: "llama", layers: 1, width: 8, heads: 2, context: 16 }, train: { steps: 4, batchSize: 4, optimizer: opt, loss: { name: "hinton", lambda: 1 }, ...student } }],
  };
}

/** The error's message, which must be one line starting with `source: field`. */
function userError(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof UserError, `not a UserError: ${(e as Error).message}`);
    assert.ok(!e.message.includes("\n"), `more than one line: ${e.message}`);
    return e.message;
  }
  assert.fail("no error");
}

test("recipes take teachers from files: classification { onnx }, LM { onnx | hf | gguf + topK }", () => {
  const c = validateRecipe({ ...tinyRecipe(), teacher: { onnx: "t.onnx" } }, "r.yaml");
  assert.deepEqual(c.teacher, { onnx: "t.onnx" });
  for (const t of [{ onnx: "t.onnx" }, { hf: "dir" }, { gguf: "t.gguf", topK: 8 }, { checkpoint: "t.safetensors" }]) {
    assert.deepEqual(validateLMRecipe(lmRecipe(t), "r.yaml").teacher, t);
  }
});

test("a wrong teacher field is one line naming it, not 'Invalid input'", () => {
  assert.match(userError(() => validateRecipe({ ...tinyRecipe(), teacher: { onnx: 3 } }, "r.yaml")), /^r\.yaml: teacher\.onnx: .*expected string/);
  assert.match(userError(() => validateRecipe({ ...tinyRecipe(), teacher: { onxx: "t.onnx" } }, "r.yaml")), /^r\.yaml: teacher: unknown field "onxx"/);
  // A Hugging Face folder is a language model: not a classification teacher.
  assert.match(userError(() => validateRecipe({ ...tinyRecipe(), teacher: { hf: "dir" } }, "r.yaml")), /^r\.yaml: teacher: unknown field "hf"/);
  assert.match(userError(() => validateLMRecipe(lmRecipe({ gguf: "t.gguf" }), "r.yaml")), /^r\.yaml: teacher\.topK: /);
  assert.match(userError(() => validateLMRecipe(lmRecipe({ gguf: "t.gguf", topK: 0 }), "r.yaml")), /^r\.yaml: teacher\.topK: /);
  assert.match(userError(() => validateLMRecipe(lmRecipe({ hf: "" }), "r.yaml")), /^r\.yaml: teacher\.hf: /);
  // The existing variants still report their own fields.
  assert.match(userError(() => validateRecipe({ ...tinyRecipe(), teacher: { model: { type: "mlp", hidden: [8] }, train: { epochs: 0 } } }, "r.yaml")), /^r\.yaml: teacher\.train\./);
});

test("a file teacher's identity is the SHA-256 of its bytes (of model.safetensors for a folder), not its path", () => {
  const dir = tempDir("distill-byo-id-");
  const a = join(dir, "a.onnx");
  writeFileSync(a, "weights one");
  copyFileSync(a, join(dir, "b.onnx"));
  assert.equal(fileTeacherId({ onnx: a }), fileTeacherId({ onnx: join(dir, "b.onnx") }));
  // sha256("weights one"), as sha256sum prints it.
  assert.equal(fileTeacherId({ onnx: a }), "onnx:0b58304e84fd78c3ce0421116fbde92ed848ccea3aee4f2ff04489e1a49157eb");
  writeFileSync(join(dir, "b.onnx"), "weights two");
  assert.notEqual(fileTeacherId({ onnx: a }), fileTeacherId({ onnx: join(dir, "b.onnx") }));
  // The k of a GGUF teacher changes what the students learn from: part of its identity.
  assert.notEqual(fileTeacherId({ gguf: a, topK: 4 }), fileTeacherId({ gguf: a, topK: 8 }));
  const hf = join(dir, "hf");
  mkdirSync(hf);
  copyFileSync(a, join(hf, "model.safetensors"));
  writeFileSync(join(hf, "config.json"), "{}");
  assert.equal(fileTeacherId({ hf }).slice(3), fileTeacherId({ onnx: a }).slice(5));
  assert.match(userError(() => fileTeacherId({ onnx: join(dir, "missing.onnx") })), /^teacher\.onnx: cannot read .*missing\.onnx \(ENOENT\)/);
  assert.match(userError(() => fileTeacherId({ hf: join(dir, "nope") })), /^teacher\.hf: cannot read .*model\.safetensors/);
});
