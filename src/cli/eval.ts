import { loadCheckpoint } from "../checkpoint/checkpoint.js";
import { disposeParams, paramsFromHost } from "../checkpoint/params.js";
import { loadDataset } from "../data/datasets.js";
import { predictLogits } from "../eval/predict.js";
import { argmaxRows, classificationMetrics, type ClassMetrics } from "../eval/metrics.js";
import { buildModel, paramCount, type InputShape, type ModelSpec } from "../nn/models.js";
import { UserError } from "../util/errors.js";
import { validateStoredModel } from "../recipe/recipe.js";

interface StoredConfig {
  model: ModelSpec;
  input: InputShape;
  data: { dataset: string };
}

function readModel(path: string) {
  const ck = loadCheckpoint(path);
  const cfg = ck.config as Partial<StoredConfig> | null;
  if (!cfg?.model || !cfg.input || !cfg.data) throw new UserError(`${path}: checkpoint config has no model, input or data (not a distill checkpoint?)`);
  // A text classifier's test split is a function of its recipe (source, split, tokenizer).
  if ((cfg.model as { type?: unknown }).type === "bert") throw new UserError(`${path}: a text classifier; distill eval reads image test sets, so rerun its recipe (finished runs are reused, not retrained)`);
  const spec = validateStoredModel(cfg.model, "classifier", path) as ModelSpec;
  const input = cfg.input as unknown as Record<string, unknown>;
  for (const k of ["height", "width", "channels", "classes"]) {
    const v = input[k];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) throw new UserError(`${path}: not a distill classifier checkpoint: config input.${k} is ${JSON.stringify(v)}`);
  }
  if (typeof cfg.data.dataset !== "string") throw new UserError(`${path}: not a distill classifier checkpoint: config data.dataset is not a name`);
  const model = buildModel(spec, cfg.input);
  return { model, params: paramsFromHost(ck.tensors, model.shapes, path), dataset: cfg.data.dataset };
}

/** Test-set metrics of a checkpoint; agreement against `teacherPath` when given. */
export async function evalCheckpoint(
  path: string,
  teacherPath?: string,
  dataDir?: string,
): Promise<{ model: string; params: number; metrics: ClassMetrics }> {
  const m = readModel(path);
  const data = loadDataset(m.dataset, dataDir);
  let teacherTop: Int32Array | null = null;
  if (teacherPath) {
    const t = readModel(teacherPath);
    teacherTop = argmaxRows(await predictLogits(t.model, t.params, data.test.x, data.test.dim), data.input.classes);
    disposeParams(t.params);
  }
  const logits = await predictLogits(m.model, m.params, data.test.x, data.test.dim);
  disposeParams(m.params);
  return { model: m.model.name, params: paramCount(m.model), metrics: classificationMetrics(logits, data.test.labels, data.input.classes, teacherTop) };
}
