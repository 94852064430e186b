// Moving parameter records between the device and host tensors (for checkpoints and export).
import { np, type Arr } from "../engine/index.js";
import type { Params } from "../nn/models.js";
import type { HostTensor } from "./safetensors.js";
import { UserError } from "../util/errors.js";

/** Copies every array to the host; does not consume `params`. */
export async function paramsToHost(params: Params, prefix = ""): Promise<Record<string, HostTensor>> {
  const out: Record<string, HostTensor> = {};
  for (const [name, a] of Object.entries(params)) {
    const data = Float32Array.from((await a.ref.data()) as Float32Array);
    out[prefix + name] = { dtype: "F32", shape: [...a.shape], data };
  }
  return out;
}

/**
 * Device arrays for the tensors under `prefix`, checked against the model's expected names
 * and shapes so a checkpoint of another architecture is a clear error, not a crash mid-run.
 */
export function paramsFromHost(
  tensors: Record<string, HostTensor>,
  shapes: [string, number[]][],
  source: string,
  prefix = "",
): Params {
  const params: Params = {};
  for (const [name, shape] of shapes) {
    const t = tensors[prefix + name];
    if (!t) throw new UserError(`${source}: missing tensor "${prefix + name}" (checkpoint is for another model?)`);
    if (t.dtype !== "F32") throw new UserError(`${source}: tensor "${prefix + name}" is ${t.dtype}, expected F32`);
    if (t.shape.join("x") !== shape.join("x")) {
      throw new UserError(`${source}: tensor "${prefix + name}" has shape [${t.shape}], the model expects [${shape}]`);
    }
    const data = t.data as Float32Array;
    // NaN or ±Inf weights (a diverged run saved by an older version, a damaged file) would
    // train or evaluate to NaN silently: refuse them here, naming the tensor.
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i])) {
        throw new UserError(`${source}: tensor "${prefix + name}" holds ${data[i]} at index ${i}; the checkpoint is not usable (retrain it)`);
      }
    }
    params[name] = np.array(data).reshape(shape);
  }
  return params;
}

export function disposeParams(params: Params | undefined): void {
  if (!params) return;
  for (const a of Object.values(params)) (a as Arr).dispose();
}
