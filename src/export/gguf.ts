// STUB (base commit): replaced by the GGUF exporter.
import type { LMExportable } from "./exportable.js";

/** A GGUF v3 file (llama architecture) with the weights in F32 or F16. */
export function exportGguf(m: LMExportable, dtype: "f32" | "f16"): Uint8Array {
  throw new Error(`exportGguf: not implemented yet (${m.source}, ${dtype})`);
}
