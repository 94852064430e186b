import { loadCheckpoint } from "../checkpoint/checkpoint.js";
import { disposeParams, paramsFromHost } from "../checkpoint/params.js";
import { loadDataset } from "../data/datasets.js";
import { predictLogits } from "../eval/predict.js";
import { argmaxRows, classificationMetrics, type ClassMetrics } from "../eval/metrics.js";
import { buildModel, paramCount, type InputShape, type ModelSpec } from "../nn/models.js";
import { UserError } from "../util/errors.js";

interface StoredConfig {
  model: ModelSpec;
  input: InputShape;
  data: { dataset: string };
}

function readModel(path: string) {
  const ck = loadCheckpoint(path);
  const cfg = ck.config as Partial<StoredConfig> | null;
  if (!cfg?.model || !cfg.input || !cfg.data) throw new UserError(`${path}: checkpoint config has no model, input or data (not a distill checkpoint?)`);
  const model = buildModel(cfg.model, cfg.input);
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
