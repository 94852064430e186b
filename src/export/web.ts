// STUB (base commit): replaced by the browser folder exporter.
import type { Exportable } from "./exportable.js";

/**
 * Writes a static folder that runs the model with onnxruntime-web (index.html, its script,
 * model.onnx, the runtime's files, a few bundled inputs): a classifier on test images, an LM
 * generating text.
 */
export async function writeWebFolder(m: Exportable, dir: string): Promise<void> {
  throw new Error(`writeWebFolder: not implemented yet (${m.source} → ${dir})`);
}
