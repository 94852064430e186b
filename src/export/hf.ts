// STUB (base commit): replaced by the Hugging Face folder exporter (signature as on i10-hf).
import type { Exportable } from "./exportable.js";

/** Writes DIR/{config.json, model.safetensors, tokenizer.json, generation_config.json, onnx/model.onnx}. */
export async function writeHfFolder(m: Exportable, dir: string, opts: { replace?: boolean } = {}): Promise<unknown> {
  throw new Error(`writeHfFolder: not implemented yet (${m.source} → ${dir}${opts.replace ? ", replace" : ""})`);
}
