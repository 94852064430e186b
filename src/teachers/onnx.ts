// STUB (base commit): replaced by the ONNX teacher adapter.
import type { ExternalTeacher } from "./types.js";

/** What the recipe expects of an ONNX teacher; checked against the file before any training. */
export type OnnxExpectation =
  | { family: "classifier"; height: number; width: number; channels: number; classes: number }
  | { family: "lm"; vocab: number; context: number };

export async function openOnnxTeacher(path: string, expect: OnnxExpectation): Promise<ExternalTeacher> {
  throw new Error(`openOnnxTeacher: not implemented yet (${path}, ${expect.family})`);
}
