// Recipes: YAML or JSON files validated with zod. Unknown fields are errors (a misspelt field
// must not be silently ignored), and every error names the file and the field path.
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { UserError } from "../util/errors.js";
import { modeWeights } from "../data/modes.js";
import { readFileBounded } from "../util/fs.js";
import { DIVERGENCES, LOSSES, findLoss } from "../losses/index.js";

/** `export: [...]`: formats each run's model is exported to after it trains (see export/deploy.ts). */
export const EXPORT_FORMATS = ["onnx", "hf", "gguf", "web"] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];
// GGUF files are llama.cpp language models: a classifier exports to ONNX, a Hugging Face folder
// (its spec in config.json, onnx/model.onnx to run) and the browser.
const ClassifierExport = z.array(z.enum(["onnx", "hf", "web"])).optional();
const LMExport = z.array(z.enum(EXPORT_FORMATS)).optional();

const Model = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("mlp"),
    hidden: z.array(z.number().int().positive()),
    dropout: z.number().min(0).lt(1).optional(),
  }),
  z.strictObject({
    type: z.literal("cnn"),
    channels: z.array(z.number().int().positive()).min(1),
    dense: z.number().int().positive(),
    kernel: z.number().int().positive().optional(),
    dropout: z.number().min(0).lt(1).optional(),
  }),
]);

export const Optimizer = z.strictObject({
  name: z.enum(["adam", "adamw"]),
  lr: z.number().positive(),
  weightDecay: z.number().min(0).optional(),
  beta1: z.number().min(0).lt(1).optional(),
  beta2: z.number().min(0).lt(1).optional(),
  eps: z.number().positive().optional(),
  schedule: z.enum(["constant", "cosine"]).optional(),
  warmupSteps: z.number().int().min(0).optional(),
});

/**
 * Save a checkpoint every N training steps, besides each epoch's end (default: whenever five
 * minutes of training have passed since the last one). Not part of a run's config hash: a
 * resumed run replays the uninterrupted one bit for bit, so it does not change the numbers.
 */
const CheckpointEvery = z.number().int().positive().optional();

export const Loss = z.strictObject({
  name: z.string().refine((n) => findLoss(n) !== undefined, { message: `unknown loss (known: ${Object.keys(LOSSES).join(", ")})` }),
  temperature: z.number().positive().optional(),
  lambda: z.number().min(0).max(1).optional(),
  /** The KD term's divergence (default forward-kl). */
  divergence: z.enum(DIVERGENCES).optional(),
  /** Generalised JSD weight β (default 0.5). */
  beta: z.number().min(0).max(1).optional(),
  /** Skew α of skew-kl / skew-reverse-kl (default 0.1). */
  alpha: z.number().min(0).max(1).optional(),
  /** Sparse teacher: its k largest probabilities plus one tail bucket. */
  topK: z.number().int().positive().optional(),
});

const Train = z.strictObject({
  epochs: z.number().int().positive(),
  batchSize: z.number().int().positive(),
  optimizer: Optimizer,
  loss: Loss,
  /** Random-shift augmentation in pixels (0 = off). */
  shift: z.number().int().min(0).optional(),
  /** Only the first `labels` training images keep their labels; the rest are unlabelled. */
  labels: z.number().int().positive().optional(),
  checkpointEvery: CheckpointEvery,
  /** The parameters the run finishes with: the last epoch's, or the lowest validation loss's. */
  keep: z.enum(["last", "best-validation"]).optional(),
});

const Data = z.strictObject({
  dataset: z.literal("fashion-mnist"),
  /** Directory with the IDX files; else --data, DISTILL_DATA, or the Debian package path. */
  dir: z.string().optional(),
  /** The last `validation` training images are held out, evaluated after every epoch. */
  validation: z.number().int().positive().optional(),
});

/** A run's name: it becomes part of checkpoint file names. */
const RunName = z.string().regex(/^[A-Za-z0-9_.-]+$/, "use letters, digits, '.', '_' or '-'");

/** Run names are unique and none is "teacher" (results and files are keyed by name). */
function checkRunNames(students: { name: string }[], ctx: z.RefinementCtx): void {
  const seen = new Set<string>();
  students.forEach((s, i) => {
    if (seen.has(s.name) || s.name === "teacher") ctx.addIssue({ code: "custom", path: ["students", i, "name"], message: `duplicate run name "${s.name}"` });
    seen.add(s.name);
  });
}

/** A teacher from a file, run in onnxruntime-node: `pixel_values` → `logits` (classifier) or `input_ids` → `logits` (LM). */
const OnnxTeacher = z.strictObject({ onnx: z.string().min(1) });

const Student = z.strictObject({
  name: RunName,
  role: z.enum(["scratch", "distilled"]),
  model: Model,
  train: Train,
});

export const RecipeSchema = z
  .strictObject({
    kind: z.literal("classification").optional(),
    name: z.string().min(1),
    description: z.string().optional(),
    /** Free-form block for YAML anchors shared by the runs below; not read otherwise. */
    defaults: z.unknown().optional(),
    data: Data,
    /** A teacher trained here (model + train), or an image classifier from an ONNX file. */
    teacher: z.union([z.strictObject({ model: Model, train: Train }), OnnxTeacher]),
    students: z.array(Student).min(1),
    export: ClassifierExport,
  })
  .superRefine((r, ctx) => {
    checkRunNames(r.students, ctx);
    r.students.forEach((s, i) => {
      const info = findLoss(s.train.loss.name);
      if (!info) return;
      if (s.role === "scratch" && info.needsTeacher) {
        ctx.addIssue({ code: "custom", path: ["students", i, "train", "loss", "name"], message: `a scratch student cannot use the teacher loss "${s.train.loss.name}"` });
      }
      if (s.role === "distilled" && !info.needsTeacher) {
        ctx.addIssue({ code: "custom", path: ["students", i, "train", "loss", "name"], message: `a distilled student needs a teacher loss, not "${s.train.loss.name}"` });
      }
    });
    if ("train" in r.teacher && findLoss(r.teacher.train.loss.name)?.needsTeacher) {
      ctx.addIssue({ code: "custom", path: ["teacher", "train", "loss", "name"], message: "the teacher cannot be trained with a distillation loss" });
    }
    if (r.data.validation === undefined) {
      const runs: [(string | number)[], { keep?: string }][] = [...("train" in r.teacher ? [[["teacher"], r.teacher.train] as [(string | number)[], { keep?: string }]] : []), ...r.students.map((s, i): [(string | number)[], { keep?: string }] => [["students", i], s.train])];
      for (const [where, t] of runs) {
        if (t.keep === "best-validation") ctx.addIssue({ code: "custom", path: [...where, "train", "keep"], message: "best-validation needs a validation set (data.validation)" });
      }
    }
  });

export type Recipe = z.infer<typeof RecipeSchema>;
export type StudentSpec = Recipe["students"][number];
export type TrainConfig = z.infer<typeof Train>;

function formatPath(path: PropertyKey[]): string {
  return path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("").replace(/^\./, "") || "(top level)";
}

/** Validates a parsed recipe object; `source` names it in errors. */
export function validateRecipe(raw: unknown, source: string): Recipe {
  return validateWith(RecipeSchema, raw, source);
}

export function validateLMRecipe(raw: unknown, source: string): LMRecipe {
  return validateWith(LMRecipeSchema, raw, source);
}

/**
 * A union's issues as those of the variant the user most likely meant: one whose fields they
 * used (no unknown key at its top), with the fewest issues; so `teacher: { onnx: 3 }` reports
 * `teacher.onnx`, not "Invalid input".
 */
function resolveUnions(issues: z.core.$ZodIssue[]): z.core.$ZodIssue[] {
  return issues.flatMap((i) => {
    if (i.code !== "invalid_union" || i.errors.length === 0) return [i];
    const score = (b: z.core.$ZodIssue[]) => (b.some((e) => e.code === "unrecognized_keys" && e.path.length === 0) ? 1000 : 0) + b.length;
    const best = i.errors.reduce((a, b) => (score(b) < score(a) ? b : a));
    return resolveUnions(best.map((e) => ({ ...e, path: [...i.path, ...e.path] })));
  });
}

function validateWith<S extends z.ZodType>(schema: S, raw: unknown, source: string): z.infer<S> {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const issues = resolveUnions(parsed.error.issues);
  // A misspelt field shows up twice: as an unknown key and as the real field missing. The
  // unknown key is the one that names what the user typed, so it wins whatever zod's order.
  const unknown = issues.find((i) => i.code === "unrecognized_keys");
  if (unknown && unknown.code === "unrecognized_keys") {
    const where = unknown.path.length ? `${formatPath(unknown.path)}: ` : "";
    const base = unknown.path;
    const missing = issues
      .filter((i) => i.code === "invalid_type" && i.path.length === base.length + 1 && base.every((p, k) => p === i.path[k]) && / undefined$/.test(i.message))
      .map((i) => `"${String(i.path[base.length])}"`);
    const hint = missing.length ? `misspelt? missing: ${missing.join(", ")}` : "misspelt?";
    throw new UserError(`${source}: ${where}unknown field ${unknown.keys.map((k) => `"${k}"`).join(", ")} (${hint})`);
  }
  const issue = issues[0];
  throw new UserError(`${source}: ${formatPath(issue.path)}: ${issue.message}`);
}

/** Path segments that would reach an object's prototype instead of a recipe field. */
const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);

/** Sets `a.b[0].c = value` on a plain object; used for `--set a.b.0.c=value` overrides. */
export function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split(".");
  for (const k of keys) {
    if (FORBIDDEN_KEYS.has(k)) throw new UserError(`--set ${path}: "${k}" is not a recipe field`);
    if (k === "") throw new UserError(`--set ${path}: empty field name`);
  }
  let cur: Record<string, unknown> = obj;
  for (const k of keys.slice(0, -1)) {
    // Own fields only: an inherited one (e.g. "toString") is not part of the recipe.
    const next = Object.hasOwn(cur, k) ? cur[k] : undefined;
    if (typeof next !== "object" || next === null) {
      throw new UserError(`--set ${path}: "${k}" is not an object in the recipe`);
    }
    cur = next as Record<string, unknown>;
  }
  cur[keys[keys.length - 1]] = value;
}

/** The value of `--set path=value`, parsed as YAML; a malformed one is a one-line error. */
function parseOverrideValue(o: string, text: string): unknown {
  try {
    return parseYaml(text);
  } catch (e) {
    throw new UserError(`--set ${o}: the value is not valid YAML (${(e as Error).message.split("\n")[0].replace(/:$/, "")})`);
  }
}

/**
 * Reads a recipe (`.yaml`, `.yml` or `.json`), applies `--set path=value` overrides (values
 * parsed as YAML scalars), and validates it as a classification or (`kind: lm`) a language-
 * model recipe.
 */
export function loadAnyRecipe(path: string, overrides: string[] = []): Recipe | LMRecipe {
  const raw = readRecipeFile(path, overrides);
  return (raw as { kind?: unknown }).kind === "lm" ? validateLMRecipe(raw, path) : validateRecipe(raw, path);
}

/** A classification recipe; a language-model recipe here is an error naming the file. */
export function loadRecipe(path: string, overrides: string[] = []): Recipe {
  const r = loadAnyRecipe(path, overrides);
  if (r.kind === "lm") throw new UserError(`${path}: a language-model recipe (kind: lm); this command takes a classification recipe`);
  return r;
}

function readRecipeFile(path: string, overrides: string[]): unknown {
  const bytes = readFileBounded(path, 16 * 2 ** 20, "recipe");
  if (bytes.includes(0)) throw new UserError(`${path}: recipe is binary data, not YAML or JSON`);
  const text = bytes.toString("utf8");
  let raw: unknown;
  try {
    raw = path.endsWith(".json") ? JSON.parse(text) : parseYaml(text, { merge: true });
  } catch (e) {
    // JSON.parse's message quotes the file's first bytes; YAML's first line gives only where.
    const where = path.endsWith(".json") ? "" : `: ${(e as Error).message.split("\n")[0].replace(/:$/, "")}`;
    throw new UserError(`${path}: not valid ${path.endsWith(".json") ? "JSON" : "YAML"}${where}`);
  }
  if (typeof raw !== "object" || raw === null) throw new UserError(`${path}: a recipe must be a mapping`);
  for (const o of overrides) {
    const eq = o.indexOf("=");
    if (eq < 1) throw new UserError(`--set ${o}: expected path=value`);
    setPath(raw as Record<string, unknown>, o.slice(0, eq), parseOverrideValue(o, o.slice(eq + 1)));
  }
  return raw;
}

// Language-model recipes (kind: lm).

const LlamaModel = z.strictObject({
  type: z.literal("llama"),
  layers: z.number().int().positive(),
  width: z.number().int().positive(),
  heads: z.number().int().positive(),
  context: z.number().int().min(2),
  hidden: z.number().int().positive().optional(),
  tied: z.boolean().optional(),
  ropeTheta: z.number().positive().optional(),
  normEps: z.number().positive().optional(),
});

const Sampling = z.strictObject({
  temperature: z.number().min(0).optional(),
  topK: z.number().int().positive().optional(),
  topP: z.number().gt(0).max(1).optional(),
});

const LMTrain = z.strictObject({
  steps: z.number().int().positive(),
  batchSize: z.number().int().positive(),
  optimizer: Optimizer,
  loss: Loss,
  /**
   * Where batches come from, as fractions (GKD-style mixing): corpus windows (token-level
   * KD), teacher-generated continuations (sequence-level KD), student-generated continuations
   * scored by the teacher (on-policy). Default: corpus only.
   */
  modes: z
    .strictObject({
      corpus: z.number().min(0).optional(),
      teacher: z.number().min(0).optional(),
      student: z.number().min(0).optional(),
    })
    .optional(),
  /** Prompt length of generated batches (default half the context) and how they are sampled. */
  promptLength: z.number().int().positive().optional(),
  sampling: Sampling.optional(),
  checkpointEvery: CheckpointEvery,
});

/** `teacher: { server: ... }`; the API key is read from `apiKeyEnv`, never written in a recipe. */
const ServerTeacher = z.strictObject({
  url: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
  model: z.string().min(1),
  apiKeyEnv: z.string().min(1).optional(),
  topK: z.number().int().positive(),
  concurrency: z.number().int().positive().optional(),
  timeoutMs: z.number().int().positive().optional(),
  maxAttempts: z.number().int().positive().optional(),
  /** First retry's delay in milliseconds, doubled per attempt, with jitter. */
  backoffMs: z.number().int().min(0).optional(),
});

const LMStudent = z.strictObject({
  name: RunName,
  role: z.enum(["scratch", "distilled"]),
  model: LlamaModel,
  train: LMTrain,
});

export const LMRecipeSchema = z
  .strictObject({
    kind: z.literal("lm"),
    name: z.string().min(1),
    description: z.string().optional(),
    defaults: z.unknown().optional(),
    data: z.strictObject({
      /** A text file, a folder of them, or JSONL; default Debian's fortunes. */
      corpus: z.string().optional(),
      /** char | byte | a path to a Hugging Face tokenizer.json. */
      tokenizer: z.string(),
      heldOut: z.number().gt(0).lt(1).optional(),
      /** At most this many held-out windows are evaluated (spread over the held-out text). */
      evalWindows: z.number().int().positive().optional(),
      /** The corpus is refused beyond this many bytes (default 1 GiB), rather than read until memory runs out. */
      maxBytes: z.number().int().positive().optional(),
      /**
       * Students' corpus windows: "random" offsets (default) or "aligned", the consecutive windows
       * a soft-label cache scores, in chunked seeded order (implied by `teacher: { cache }`).
       */
      windows: z.enum(["random", "aligned"]).optional(),
    }),
    /**
     * A teacher trained here (model + train), a finished distill LM checkpoint, or one from a
     * file: an ONNX causal LM, a Hugging Face LlamaForCausalLM folder (loaded into distill's
     * own Llama), or a GGUF file served by llama.cpp (top-k probabilities only).
     */
    teacher: z.union([
      z.strictObject({ model: LlamaModel, train: LMTrain }),
      z.strictObject({ checkpoint: z.string().min(1) }),
      OnnxTeacher,
      z.strictObject({ hf: z.string().min(1) }),
      z.strictObject({ gguf: z.string().min(1), topK: z.number().int().positive() }),
      /** An OpenAI-compatible server (vLLM, SGLang, distill serve): top-k log-probabilities per position. */
      z.strictObject({ server: ServerTeacher }),
      /** A soft-label cache written by `distill cache` (a folder with manifest.json). */
      z.strictObject({ cache: z.string().min(1) }),
    ]),
    /** Where and how `distill cache` stores this recipe's teacher's outputs. */
    cache: z
      .strictObject({
        dir: z.string().min(1),
        topK: z.number().int().positive(),
        /** quantized (default: small) or exact (float32: students equal the live top-k teacher's). */
        precision: z.enum(["quantized", "exact"]).optional(),
      })
      .optional(),
    students: z.array(LMStudent).min(1),
    export: LMExport,
    samples: z
      .strictObject({
        prompts: z.number().int().min(0),
        promptLength: z.number().int().positive(),
        tokens: z.number().int().positive(),
        sampling: Sampling.optional(),
        /** Held-out prompts whose continuations the teacher scores (generation quality); default 32, 0 = off. */
        scoredPrompts: z.number().int().min(0).optional(),
      })
      .optional(),
  })
  .superRefine((r, ctx) => {
    checkRunNames(r.students, ctx);
    r.students.forEach((s, i) => {
      const info = findLoss(s.train.loss.name);
      if (!info) return;
      const modes = s.train.modes ?? {};
      if (s.role === "scratch" && (info.needsTeacher || (modes.teacher ?? 0) > 0 || (modes.student ?? 0) > 0)) {
        ctx.addIssue({ code: "custom", path: ["students", i, "train"], message: "a scratch student uses neither the teacher's loss nor its generations" });
      }
      if (s.role === "distilled" && !info.needsTeacher && !((modes.teacher ?? 0) > 0)) {
        ctx.addIssue({ code: "custom", path: ["students", i, "train", "loss", "name"], message: `a distilled student needs a teacher loss or teacher-generated data, not "${s.train.loss.name}" on the corpus alone` });
      }
      const w = modeWeights(modes);
      if (w.corpus + w.teacher + w.student <= 0) {
        ctx.addIssue({ code: "custom", path: ["students", i, "train", "modes"], message: "the mode fractions add up to 0" });
      }
      // A generated batch is a prompt plus at least one generated token within the context.
      if (s.train.promptLength !== undefined && s.train.promptLength >= s.model.context) {
        ctx.addIssue({ code: "custom", path: ["students", i, "train", "promptLength"], message: `${s.train.promptLength} leaves no room to generate in the context of ${s.model.context} (must be below it)` });
      }
      if ("model" in r.teacher && s.model.context > r.teacher.model.context) {
        ctx.addIssue({ code: "custom", path: ["students", i, "model", "context"], message: `${s.model.context} is longer than the teacher's context of ${r.teacher.model.context}` });
      }
    });
    if ("train" in r.teacher && findLoss(r.teacher.train.loss.name)?.needsTeacher) {
      ctx.addIssue({ code: "custom", path: ["teacher", "train", "loss", "name"], message: "the teacher cannot be trained with a distillation loss" });
    }
    if ("cache" in r.teacher && r.data.windows === "random") {
      ctx.addIssue({ code: "custom", path: ["data", "windows"], message: "random windows with teacher.cache, which holds soft labels only for the aligned windows (use aligned or leave it out)" });
    }
    // The cache keeps k of what the teacher gives; a top-k teacher gives its own k.
    const teacherK = "gguf" in r.teacher ? r.teacher.topK : "server" in r.teacher ? r.teacher.server.topK : undefined;
    if (r.cache && teacherK !== undefined && r.cache.topK > teacherK) {
      ctx.addIssue({ code: "custom", path: ["cache", "topK"], message: `${r.cache.topK} is more than the teacher's topK of ${teacherK}` });
    }
    if (r.cache && "cache" in r.teacher) {
      ctx.addIssue({ code: "custom", path: ["cache"], message: "the teacher is already a cache (teacher.cache); a cache is filled from a model, a file or a server" });
    }
  });

export type LMRecipe = z.infer<typeof LMRecipeSchema>;
export type LMStudentSpec = LMRecipe["students"][number];
export type LMTrainConfig = z.infer<typeof LMTrain>;

/**
 * A model spec read back from a checkpoint's config, checked as a recipe's would be: a file
 * from elsewhere (or an older version) must fail with one line naming it, not crash mid-run.
 */
export function validateStoredModel(raw: unknown, kind: "classifier" | "llama", source: string): z.infer<typeof Model> | z.infer<typeof LlamaModel> {
  const parsed = (kind === "llama" ? LlamaModel : Model).safeParse(raw);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const where = formatPath(["model", ...issue.path]);
  throw new UserError(`${source}: not a distill ${kind === "llama" ? "language-model" : "classifier"} checkpoint: config ${where}: ${issue.message}`);
}
