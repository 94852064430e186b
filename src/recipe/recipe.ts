// Recipes: YAML or JSON files validated with zod. Unknown fields are errors (a misspelt field
// must not be silently ignored), and every error names the file and the field path.
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { UserError } from "../util/errors.js";
import { modeWeights } from "../data/modes.js";
import { readFileBounded } from "../util/fs.js";
import { DIVERGENCES, LOSSES, findLoss } from "../losses/index.js";
import { IntermediateSchema } from "../losses/intermediate/schema.js";
import { everyOtherLayer } from "../nn/bert.js";
import { MAIL_HEADERS, SOTU_TASKS, SPAM_TASKS, TEXT_SOURCES } from "../data/text-classification.js";
import { dirname, isAbsolute, resolve } from "node:path";

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
export function loadAnyRecipe(path: string, overrides: string[] = []): Recipe | LMRecipe | TextClassificationRecipe {
  const raw = readRecipeFile(path, overrides);
  const kind = (raw as { kind?: unknown }).kind;
  if (kind === "lm") return validateLMRecipe(raw, path);
  if (kind === "text-classification") return validateTextRecipe(raw, path);
  return validateRecipe(raw, path);
}

/** A classification recipe; a language-model or text recipe here is an error naming the file. */
export function loadRecipe(path: string, overrides: string[] = []): Recipe {
  const r = loadAnyRecipe(path, overrides);
  if (r.kind === "lm") throw new UserError(`${path}: a language-model recipe (kind: lm); this command takes a classification recipe`);
  if (r.kind === "text-classification") throw new UserError(`${path}: a text-classification recipe; this command takes an image classification recipe`);
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

// Text-classification recipes (kind: text-classification): an encoder (BERT layout) teacher and
// students on labelled texts (src/data/text-classification.ts).

const BertModel = z.strictObject({
  type: z.literal("bert"),
  layers: z.number().int().positive(),
  hidden: z.number().int().positive(),
  heads: z.number().int().positive(),
  intermediate: z.number().int().positive(),
  dropout: z.number().min(0).lt(1).optional(),
});
type BertModelSpec = z.infer<typeof BertModel>;

/** The classification Train fields without `shift` (no image to shift), plus `intermediate`. */
const TextTrain = Train.omit({ shift: true }).extend({ intermediate: IntermediateSchema.optional() });

const TextData = z.strictObject({
  source: z.enum(TEXT_SOURCES),
  /** spam-assassin: spam-ham | spam-3way; sotu: party (the only one). */
  task: z.string().optional(),
  /** csv | jsonl: a file; folder: dir/<label>/*.txt. Relative to the recipe's folder. */
  path: z.string().min(1).optional(),
  textField: z.string().min(1).optional(),
  labelField: z.string().min(1).optional(),
  /** Class names in id order (default: the labels sorted). */
  classes: z.array(z.string().min(1)).min(2).optional(),
  /** spam-assassin: which mail headers are kept (default subject). */
  headers: z.enum(MAIL_HEADERS).optional(),
  /** Token rows' length, [CLS] and [SEP] included; longer texts are cut (and counted). */
  maxLength: z.number().int().min(3),
  split: z.strictObject({ validation: z.number().min(0).lt(1), test: z.number().gt(0).lt(1) }),
  /** Only the first N examples in hash order (small runs). */
  limit: z.number().int().positive().optional(),
  maxBytes: z.number().int().positive().optional(),
});

const TextTokenizerSpec = z.union([
  z.strictObject({
    train: z.strictObject({
      type: z.enum(["wordpiece", "bpe"]),
      vocabSize: z.number().int().min(16),
      lowercase: z.boolean().optional(),
    }),
  }),
  /** A Hugging Face tokenizer.json (relative to the recipe's folder). */
  z.strictObject({ file: z.string().min(1) }),
]);

const TextStudent = z.strictObject({
  name: RunName,
  role: z.enum(["scratch", "distilled"]),
  model: BertModel,
  /** DistilBERT: start from the teacher's embeddings, pooler, classifier and these blocks (0-based; default every other one). */
  init: z.strictObject({ from: z.literal("teacher"), layers: z.array(z.number().int().min(0)).min(1).optional() }).optional(),
  train: TextTrain,
});

function checkBertShape(m: BertModelSpec, path: (string | number)[], ctx: z.RefinementCtx): void {
  if (m.hidden % m.heads !== 0) ctx.addIssue({ code: "custom", path: [...path, "heads"], message: `${m.heads} heads do not divide hidden ${m.hidden}` });
}

export const TextClassificationRecipeSchema = z
  .strictObject({
    kind: z.literal("text-classification"),
    name: z.string().min(1),
    description: z.string().optional(),
    defaults: z.unknown().optional(),
    data: TextData,
    /** Trained on the training split only; optional with an hf teacher (its folder's tokenizer.json). */
    tokenizer: TextTokenizerSpec.optional(),
    /** A BERT trained here, a BERT-style ONNX file (input_ids, attention_mask, token_type_ids → logits), or a Hugging Face BertForSequenceClassification folder. */
    teacher: z.union([
      z.strictObject({
        model: BertModel,
        train: TextTrain,
        /** Train the teacher once, with this seed, for every student seed (default: one teacher per seed). */
        seed: z.number().int().min(0).optional(),
      }),
      OnnxTeacher,
      z.strictObject({ hf: z.string().min(1) }),
    ]),
    students: z.array(TextStudent).min(1),
    export: z.array(z.enum(["onnx", "hf", "web"])).optional(),
  })
  .superRefine((r, ctx) => {
    checkRunNames(r.students, ctx);
    const d = r.data;
    const corpus = d.source === "spam-assassin" || d.source === "sotu";
    if (corpus && d.path !== undefined) ctx.addIssue({ code: "custom", path: ["data", "path"], message: `not used by source ${d.source} (an npm corpus)` });
    if (!corpus && d.path === undefined) ctx.addIssue({ code: "custom", path: ["data", "path"], message: `required for source ${d.source}` });
    const tasks: readonly string[] | undefined = d.source === "spam-assassin" ? SPAM_TASKS : d.source === "sotu" ? SOTU_TASKS : undefined;
    if (d.source === "spam-assassin" && d.task === undefined) ctx.addIssue({ code: "custom", path: ["data", "task"], message: `required for spam-assassin (${SPAM_TASKS.join(" or ")})` });
    if (d.task !== undefined && !tasks?.includes(d.task)) {
      ctx.addIssue({ code: "custom", path: ["data", "task"], message: tasks ? `"${d.task}" is not a ${d.source} task (${tasks.join(", ")})` : `not used by source ${d.source}` });
    }
    if (d.headers !== undefined && d.source !== "spam-assassin") ctx.addIssue({ code: "custom", path: ["data", "headers"], message: "only for source spam-assassin (mail headers)" });
    for (const f of ["textField", "labelField"] as const) {
      if (d[f] !== undefined && d.source !== "csv" && d.source !== "jsonl") ctx.addIssue({ code: "custom", path: ["data", f], message: `only for sources csv and jsonl, not ${d.source}` });
    }
    if (d.classes && new Set(d.classes).size !== d.classes.length) ctx.addIssue({ code: "custom", path: ["data", "classes"], message: "a class is listed twice" });
    if (d.split.validation + d.split.test >= 1) ctx.addIssue({ code: "custom", path: ["data", "split"], message: `validation ${d.split.validation} + test ${d.split.test} leave nothing to train on` });

    const teacherModel = "model" in r.teacher ? r.teacher.model : undefined;
    if (r.tokenizer === undefined && !("hf" in r.teacher)) ctx.addIssue({ code: "custom", path: ["tokenizer"], message: "required (train: {...} or file: tokenizer.json) unless the teacher is a Hugging Face folder" });
    // A teacher from a file reads ids of its own vocabulary: a tokenizer trained here would give others.
    if (r.tokenizer && "train" in r.tokenizer && !teacherModel) {
      ctx.addIssue({ code: "custom", path: ["tokenizer", "train"], message: "a teacher from a file reads its own vocabulary; give its tokenizer.json as tokenizer.file" });
    }
    if (teacherModel) checkBertShape(teacherModel, ["teacher", "model"], ctx);
    if ("train" in r.teacher) {
      if (findLoss(r.teacher.train.loss.name)?.needsTeacher) ctx.addIssue({ code: "custom", path: ["teacher", "train", "loss", "name"], message: "the teacher cannot be trained with a distillation loss" });
      if (r.teacher.train.intermediate) ctx.addIssue({ code: "custom", path: ["teacher", "train", "intermediate"], message: "intermediate-layer terms are for distilled students" });
    }
    const runs: [(string | number)[], { keep?: string }][] = [];
    if ("train" in r.teacher) runs.push([["teacher"], r.teacher.train]);
    r.students.forEach((s, i) => {
      const at = ["students", i];
      runs.push([at, s.train]);
      checkBertShape(s.model, [...at, "model"], ctx);
      const info = findLoss(s.train.loss.name);
      if (info && s.role === "scratch" && info.needsTeacher) ctx.addIssue({ code: "custom", path: [...at, "train", "loss", "name"], message: `a scratch student cannot use the teacher loss "${s.train.loss.name}"` });
      if (info && s.role === "distilled" && !info.needsTeacher) ctx.addIssue({ code: "custom", path: [...at, "train", "loss", "name"], message: `a distilled student needs a teacher loss, not "${s.train.loss.name}"` });
      const inter = s.train.intermediate;
      if (inter) {
        if (s.role !== "distilled") ctx.addIssue({ code: "custom", path: [...at, "train", "intermediate"], message: "intermediate-layer terms need a distilled student (they read the teacher)" });
        else if ("onnx" in r.teacher) ctx.addIssue({ code: "custom", path: [...at, "train", "intermediate"], message: "an ONNX teacher gives only logits; intermediate-layer terms need a teacher trained here or a Hugging Face folder (teacher.hf)" });
        inter.layerMap?.forEach(([sl, tl], k) => {
          if (sl > s.model.layers) ctx.addIssue({ code: "custom", path: [...at, "train", "intermediate", "layerMap", k, 0], message: `student layer ${sl} > the student's ${s.model.layers} layers` });
          if (teacherModel && tl > teacherModel.layers) ctx.addIssue({ code: "custom", path: [...at, "train", "intermediate", "layerMap", k, 1], message: `teacher layer ${tl} > the teacher's ${teacherModel.layers} layers` });
        });
      }
      if (s.init) {
        const where = [...at, "init"];
        if (!teacherModel) ctx.addIssue({ code: "custom", path: [...where, "from"], message: "init from the teacher needs a BERT teacher trained here (teacher.model)" });
        else {
          for (const f of ["hidden", "heads", "intermediate"] as const) {
            if (s.model[f] !== teacherModel[f]) ctx.addIssue({ code: "custom", path: [...at, "model", f], message: `${s.model[f]} differs from the teacher's ${teacherModel[f]}; init from the teacher copies its blocks, so only layers may differ` });
          }
          if (!s.init.layers && s.model.layers > Math.ceil(teacherModel.layers / 2)) {
            ctx.addIssue({ code: "custom", path: [...where, "layers"], message: `every other teacher layer needs a teacher of at least ${2 * s.model.layers - 1} layers (the teacher has ${teacherModel.layers}); list init.layers` });
          } else {
            // Default: every other teacher block, as DistilBERT.
            const layers = s.init.layers ?? everyOtherLayer(teacherModel.layers, s.model.layers);
            if (layers.length !== s.model.layers) ctx.addIssue({ code: "custom", path: [...where, "layers"], message: `${layers.length} teacher layers for a student of ${s.model.layers}` });
            const bad = layers.find((l) => l >= teacherModel.layers);
            if (bad !== undefined) ctx.addIssue({ code: "custom", path: [...where, "layers"], message: `teacher layer ${bad} does not exist (0-based; the teacher has ${teacherModel.layers})` });
          }
        }
      }
    });
    if (d.split.validation === 0) {
      for (const [where, t] of runs) {
        if (t.keep === "best-validation") ctx.addIssue({ code: "custom", path: [...where, "train", "keep"], message: "best-validation needs a validation set (data.split.validation > 0)" });
      }
    }
  });

export type TextClassificationRecipe = z.infer<typeof TextClassificationRecipeSchema>;
export type TextStudentSpec = TextClassificationRecipe["students"][number];
export type TextTrainConfig = z.infer<typeof TextTrain>;

export function validateTextRecipe(raw: unknown, source: string): TextClassificationRecipe {
  return validateWith(TextClassificationRecipeSchema, raw, source);
}

/**
 * The recipe with its file paths (data.path, tokenizer.file, teacher.onnx, teacher.hf) resolved
 * against the folder of the recipe file, as the recipe's author wrote them.
 */
export function resolveTextRecipePaths(r: TextClassificationRecipe, recipeFile: string): TextClassificationRecipe {
  const dir = dirname(resolve(recipeFile));
  const at = (p: string) => (isAbsolute(p) ? p : resolve(dir, p));
  const teacher = "onnx" in r.teacher ? { onnx: at(r.teacher.onnx) } : "hf" in r.teacher ? { hf: at(r.teacher.hf) } : r.teacher;
  const tokenizer = r.tokenizer && "file" in r.tokenizer ? { file: at(r.tokenizer.file) } : r.tokenizer;
  return { ...r, data: { ...r.data, ...(r.data.path !== undefined ? { path: at(r.data.path) } : {}) }, tokenizer, teacher };
}
