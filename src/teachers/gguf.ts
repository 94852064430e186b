// STUB (base commit): replaced by the GGUF teacher adapter (node-llama-cpp in a child process).
import type { ExternalTeacher } from "./types.js";

export async function openGgufTeacher(path: string, opts: { topK: number; vocab: number; context: number }): Promise<ExternalTeacher> {
  throw new Error(`openGgufTeacher: not implemented yet (${path}, k=${opts.topK})`);
}
