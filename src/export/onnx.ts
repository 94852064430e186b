// STUB (base commit): replaced by the ONNX exporter.
import type { Exportable } from "./exportable.js";

/** The model as ONNX bytes (opset 17; optimum's input and output names; symbolic batch/sequence). */
export function exportOnnx(m: Exportable): Uint8Array {
  throw new Error(`exportOnnx: not implemented yet (${m.source})`);
}
