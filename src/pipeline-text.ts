// `kind: text-classification`: labelled texts → hash split → tokenizer (trained on the training
// split, or a tokenizer.json) → fixed-length token rows → the classifier seed loop of
// pipeline.ts (teacher, students, results, report), with what encoders add: intermediate-layer
// terms (the teacher runs live inside the step, projections train with the student) and
// students initialised from the teacher's layers (DistilBERT).
import { createHash } from "node:crypto";
import { basename, dirname, join } from "node:path";
import type { Examples } from "./data/batches.js";
import type { InputShape } from "./data/datasets.js";
import { classCounts, encodeSplit, formatClassCounts, loadTextSplits, type TextSplits } from "./data/text-classification.js";
import { paramsFromHost, paramsToHost, disposeParams } from "./checkpoint/params.js";
import { everyOtherLayer, initFromTeacher, isEncoder, type BertSpec } from "./nn/bert.js";
import type { Model, Params } from "./nn/models.js";
import { checkIntermediate } from "./losses/intermediate/index.js";
import { splitProjections } from "./losses/intermediate/projections.js";
import { loadEncoderTokenizer, trainEncoderTokenizer, type TextTokenizer } from "./text/encoder-tokenizer.js";
import { openOnnxTeacher } from "./teachers/onnx.js";
import { loadHfBertTeacher } from "./teachers/hf.js";
import { isExternal } from "./teachers/teacher.js";
import { resolveTextRecipePaths, type TextClassificationRecipe } from "./recipe/recipe.js";
import type { Results } from "./report/results.js";
import { UserError } from "./util/errors.js";
import { runClassifiers, withOpened, type ClassifierData, type ClassifierRunSpec, type RunOptions, type StudentPlan } from "./pipeline.js";

function sha(x: string): string {
  return createHash("sha256").update(x).digest("hex").slice(0, 16);
}

/**
 * The recipe's tokenizer: trained on the training split's texts, read from a tokenizer.json, or
 * (no tokenizer block) the Hugging Face teacher folder's own. Paths are already resolved.
 */
function recipeTokenizer(recipe: TextClassificationRecipe, trainTexts: string[]): { tokenizer: TextTokenizer; line: string } {
  const t = recipe.tokenizer;
  if (!t || "file" in t) {
    if (!t && !("hf" in recipe.teacher)) throw new Error("unreachable: the schema requires a tokenizer without an hf teacher");
    const [path, where] = t ? [t.file, "tokenizer.file"] : [join((recipe.teacher as { hf: string }).hf, "tokenizer.json"), "teacher.hf"];
    const tokenizer = loadEncoderTokenizer(path, where);
    return { tokenizer, line: `tokenizer: ${tokenizer.kind} from ${path} (${tokenizer.vocabSize} tokens)` };
  }
  const started = performance.now();
  const tokenizer = trainEncoderTokenizer(trainTexts, t.train);
  return {
    tokenizer,
    line: `tokenizer: ${tokenizer.kind} trained on the ${trainTexts.length} training texts (${tokenizer.vocabSize} tokens, asked ≤ ${t.train.vocabSize}; ${((performance.now() - started) / 1000).toFixed(1)} s)`,
  };
}

export async function runTextRecipe(recipeAsWritten: TextClassificationRecipe, recipePath: string, opts: RunOptions): Promise<Results> {
  const recipe = resolveTextRecipePaths(recipeAsWritten, recipePath);
  const splits = loadTextSplits(recipe.data);
  const L = recipe.data.maxLength;
  opts.progress.info(`data: ${splits.description}`);
  const counts = classCounts(splits);
  opts.progress.info(`data: ${formatClassCounts(counts)}`);
  const { tokenizer, line } = recipeTokenizer(recipe, splits.train.map((e) => e.text));
  opts.progress.info(line);
  const encoded = {
    train: encodeSplit(splits.train, tokenizer, L, splits.classes),
    validation: encodeSplit(splits.validation, tokenizer, L, splits.classes),
    test: encodeSplit(splits.test, tokenizer, L, splits.classes),
  };
  opts.progress.info(`data: truncated to ${L} tokens: ${Object.entries(encoded).map(([name, e]) => `${name} ${e.truncated} of ${e.examples.n}`).join(", ")}`);
  const input: InputShape = { height: 1, width: L, channels: 1, classes: splits.classes.length, text: { vocab: tokenizer.vocabSize, length: L, padId: tokenizer.padId } };
  const tokJSON = tokenizer.toJSON();
  // Every run's config names the data by what determines its rows: the split's texts (hashed),
  // the tokenizer and the length; the tokenizer and class names also travel in each checkpoint's
  // config, so `distill export` can write a Hugging Face folder from the checkpoint alone.
  const dataset = {
    dataset: recipe.data.source,
    texts: sha(JSON.stringify([splits.train, splits.validation, splits.test].map((s) => s.map((e) => [e.label, e.text])))),
    tokenizer: sha(JSON.stringify(tokJSON)),
    maxLength: L,
  };
  const data: ClassifierData = {
    input,
    train: encoded.train.examples,
    validation: encoded.validation.examples.n > 0 ? encoded.validation.examples : undefined,
    test: encoded.test.examples,
    classes: splits.classes,
    dataset,
    runConfig: { classes: splits.classes, tokenizer: tokJSON },
    // The browser folder (export: [web]) bundles the first test texts with their classes.
    exportExtra: { input, classes: splits.classes, tokenizer: tokJSON, texts: webTexts(splits) },
    summary: {
      description: splits.description,
      classCounts: { train: counts.train, validation: counts.validation, test: counts.test },
      truncated: { train: encoded.train.truncated, validation: encoded.validation.truncated, test: encoded.test.truncated },
      maxLength: L,
    },
  };
  checkLabelsFit(recipe, data.train);
  return withOpened((opened) =>
    runClassifiers(recipe, data, opts, opened, {
      openFileTeacher: async (t) => {
        if ("onnx" in t) {
          const path = t.onnx;
          const ext = await openOnnxTeacher(path, { family: "classifier", ...input });
          return { teacher: ext, label: `${ext.kind} ${path}` };
        }
        const dir = t.hf;
        const hf = loadHfBertTeacher(dir, { length: L });
        // The teacher's class ids must mean the data's classes, in the same order.
        if (hf.classes.join("\u0000") !== splits.classes.join("\u0000")) {
          disposeParams(hf.params);
          throw new UserError(`${dir}: the teacher's classes (config.json id2label: ${hf.classes.join(", ")}) are not the data's (${splits.classes.join(", ")}); list data.classes in the teacher's order`);
        }
        return { teacher: { model: hf.model, params: hf.params }, label: `Hugging Face folder ${dir}`, short: `Hugging Face folder ${basename(dirname(dir))}/${basename(dir)}` };
      },
      prepareStudent: (s, model, teacher) => prepareStudent(s, model, teacher),
    }),
  );
}

/** `labels: k` beyond the training split would silently mean "all labels". */
function checkLabelsFit(recipe: TextClassificationRecipe, train: Examples): void {
  const runs = [...("train" in recipe.teacher ? [{ where: "teacher.train.labels", labels: recipe.teacher.train.labels }] : []), ...recipe.students.map((s, i) => ({ where: `students[${i}].train.labels`, labels: s.train.labels }))];
  for (const r of runs) {
    if (r.labels !== undefined && r.labels > train.n) throw new UserError(`${r.where}: ${r.labels} is larger than the ${train.n} training texts`);
  }
}

/**
 * A student that reads the teacher's layers: its intermediate-layer terms (a wrapper model that
 * adds the projections to what trains) and/or its initialisation from the teacher's blocks.
 */
async function prepareStudent(s: ClassifierRunSpec, model: Model, teacher: { teacher: import("./teachers/teacher.js").Teacher; spec?: import("./nn/models.js").ModelSpec }): Promise<StudentPlan> {
  const tt = teacher.teacher;
  if (isExternal(tt) || !isEncoder(tt.model) || !isEncoder(model)) {
    throw new UserError(`students: ${s.name}: ${s.train.intermediate ? "train.intermediate" : "init"} needs a bert student and distill's own bert teacher (trained here or a Hugging Face folder)`);
  }
  const tSpec = tt.model.spec as BertSpec;
  const sSpec = model.spec as BertSpec;
  let student: Model = model;
  const config: Record<string, unknown> = {};
  if (s.init) {
    const layers = s.init.layers ?? everyOtherLayer(tSpec.layers, sSpec.layers);
    const host = await paramsToHost(tt.params);
    const init = initFromTeacher(host, tSpec, sSpec, layers);
    // Every seed starts from the same teacher blocks: the seed then decides only the data order
    // and dropout (and the projections' initialisation).
    student = { ...model, init: () => paramsFromHost(init, model.shapes, `${s.name}.init`) };
    config.init = { from: "teacher", layers };
  }
  if (!s.train.intermediate) {
    return { trained: student, live: false, studentParams: (p) => p, config };
  }
  // Checked before anything trains (layer ranges, head counts, relation heads).
  checkIntermediate(s.train.intermediate, sSpec, tSpec, `students: ${s.name}: train.intermediate`);
  // The trainer adds the projections to what trains (distill.proj.*) and runs the teacher live
  // in the step; the finished run's parameters are the student's plus those projections.
  return {
    trained: student,
    live: true,
    studentParams: (p: Params) => {
      const { student: sp, projections } = splitProjections(p);
      disposeParams(projections);
      return sp;
    },
    config,
  };
}

/** The first few test texts (train or validation when the test split is empty), for the browser folder. */
function webTexts(splits: TextSplits): { texts: string[]; labels: number[]; source: string } {
  const [name, split] = ([["test", splits.test], ["validation", splits.validation], ["training", splits.train]] as const).find(([, s]) => s.length > 0)!;
  const first = split.slice(0, 8);
  return { texts: first.map((e) => e.text), labels: first.map((e) => splits.classes.indexOf(e.label)), source: `the first ${first.length} ${name} texts` };
}
