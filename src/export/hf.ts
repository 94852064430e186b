// STUB (base commit): replaced by the Hugging Face folder exporter.
import type { LMExportable } from "./exportable.js";

/** Writes DIR/{config.json, model.safetensors, tokenizer.json, generation_config.json, onnx/model.onnx}. */
export function writeHfFolder(m: LMExportable, dir: string): void {
  throw new Error(`writeHfFolder: not implemented yet (${m.source} → ${dir})`);
}
