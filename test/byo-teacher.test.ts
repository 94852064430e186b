// Teachers from files in recipes: the recipe fields (one line naming the field when wrong),
// the teacher's identity in the students' hashes (the file's bytes, not its path), and the
// round trip for a classifier: a teacher trained by distill, exported to ONNX, and distilled
// from as a file gives the student the native teacher gives (language models:
// byo-teacher-lm.test.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadExportable } from "../src/export/exportable.js";
import { exportOnnx } from "../src/export/onnx.js";
import { loadAnyRecipe, validateLMRecipe, validateRecipe } from "../src/recipe/recipe.js";
import { fileTeacherId } from "../src/teachers/files.js";
import { UserError } from "../src/util/errors.js";
import { makeFashionFixture, REPO_ROOT, runCli, tinyRecipe, writeTinyRecipe } from "./helpers/fixtures.js";
import { tempDir } from "./helpers/tmp.js";
import { checkpointOf, results, run, sha256 } from "./helpers/byo.js";

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

// --- Round trip through the CLI: train a teacher, export it, distil from the file ------------

const data = makeFashionFixture(join(tempDir("distill-byo-data-"), "data"), { train: 600, test: 200, seed: 7 });

test("classifier: a student distilled from the teacher exported to ONNX equals the one from the native teacher (cached and augmented)", (t) => {
  const dir = tempDir("distill-byo-onnx-");
  const students = (r: Record<string, unknown>) => {
    const s = (r.students as Record<string, any>[])[1];
    r.students = [s, { ...s, name: "shifted", train: { ...s.train, shift: 1 } }];
  };
  const native = join(dir, "native");
  const a = runCli(["run", writeTinyRecipe(join(dir, "native.yaml"), students), "--out", native, "--data", data, "-q"]);
  assert.equal(a.code, 0, a.stderr);
  const onnx = join(dir, "teacher.onnx");
  writeFileSync(onnx, exportOnnx(loadExportable(checkpointOf(native, "teacher"))));

  const recipe = writeTinyRecipe(join(dir, "byo.yaml"), (r) => {
    students(r);
    r.teacher = { onnx };
  });
  const out = join(dir, "byo");
  const b = runCli(["run", recipe, "--out", out, "--data", data, "-q"]);
  assert.equal(b.code, 0, b.stderr);
  const [n, f] = [results(native), results(out)];
  // The file's own row: its test accuracy, from its soft labels, and the parameter count it holds.
  assert.ok(Math.abs(run(f, "teacher").metrics.accuracy - run(n, "teacher").metrics.accuracy) < 1e-9);
  assert.equal(run(f, "teacher").metrics.agreement, 1);
  assert.equal(run(f, "teacher").params, run(n, "teacher").params);
  assert.match(run(f, "teacher").model, /^onnx teacher\.onnx$/);
  for (const s of ["distilled", "shifted"]) {
    const [x, y] = [run(n, s).metrics, run(f, s).metrics];
    t.diagnostic(`${s}: accuracy ${x.accuracy} native, ${y.accuracy} ONNX; test loss ${x.loss} native, ${y.loss} ONNX`);
    assert.ok(Math.abs(x.accuracy - y.accuracy) <= 0.001, `${s}: accuracy ${x.accuracy} (native) vs ${y.accuracy} (ONNX)`);
    assert.ok(Math.abs(x.loss - y.loss) <= 0.005, `${s}: test loss ${x.loss} vs ${y.loss}`);
    assert.equal(run(f, s).teacherParams, run(n, "teacher").params);
  }
  // The student's config names the teacher by the file's bytes; the same file elsewhere reuses it.
  const cfg = JSON.parse(readFileSync(checkpointOf(out, "distilled").replace(/\.safetensors$/, ".json"), "utf8")).config;
  assert.equal(cfg.teacher, `onnx:${sha256(onnx)}`);
  const moved = join(dir, "moved.onnx");
  copyFileSync(onnx, moved);
  const again = runCli(["run", writeTinyRecipe(join(dir, "moved.yaml"), (r) => (students(r), (r.teacher = { onnx: moved }))), "--out", out, "--data", data]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr + again.stdout, /distilled seed 0: reusing finished checkpoint/);
});

test("classifier: an ONNX teacher that does not fit is refused with one line before anything trains", () => {
  const dir = tempDir("distill-byo-bad-");
  const bad = join(dir, "bad.onnx");
  writeFileSync(bad, Buffer.from("not an onnx file at all"));
  const out = join(dir, "out");
  const r = runCli(["run", writeTinyRecipe(join(dir, "r.yaml"), (x) => (x.teacher = { onnx: bad })), "--out", out, "--data", data]);
  assert.equal(r.code, 2, r.stderr);
  // The last line (progress lines such as "data: ..." come before it).
  assert.match(r.stderr, /(^|\n)distill: error: teacher\.onnx .*bad\.onnx: not a readable ONNX model [^\n]*\n$/);
  assert.ok(!existsSync(join(out, "seed-0")) || readdirSync(join(out, "seed-0")).length === 0, "something trained");
});

test("the bundled round-trip recipes are valid and say which commands make their teacher file", () => {
  for (const [file, format, field] of [
    ["byo-onnx-teacher.yaml", "onnx", "onnx"],
    ["byo-charlm-hf.yaml", "hf", "hf"],
    ["byo-charlm-gguf.yaml", "gguf", "gguf"],
  ]) {
    const path = join(REPO_ROOT, "recipes", file);
    const r = loadAnyRecipe(path);
    const teacherPath = (r.teacher as Record<string, string>)[field];
    assert.ok(teacherPath, `${file}: teacher.${field}`);
    // The comment's export command writes exactly the file the recipe reads.
    const text = readFileSync(path, "utf8");
    assert.ok(text.includes(`--format ${format} --out ${teacherPath}\n`), `${file}: no "distill export ... --format ${format} --out ${teacherPath}" comment`);
    assert.match(text, /^# +distill train recipes\/[a-z0-9-]+\.yaml --out /m);
  }
});
