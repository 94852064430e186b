// A distill LM checkpoint of random weights, for tests that serve or score a model: `spec` over
// the tokenizer `tok`, initialised with `seed`, each tensor then optionally reshaped (scaled
// projections give peaked distributions, with clear top k and greedy choices).
import { random, tree } from "../../src/engine/index.js";
import { saveCheckpoint } from "../../src/checkpoint/checkpoint.js";
import { paramsToHost } from "../../src/checkpoint/params.js";
import type { HostTensor } from "../../src/checkpoint/safetensors.js";
import { llama, type LanguageModel, type LlamaSpec } from "../../src/nn/llama.js";
import type { Tokenizer, TokenizerJSON } from "../../src/text/tokenizer.js";

/** Writes the checkpoint to `path` (the engine must be started); returns the model and its host tensors. */
export async function saveRandomLM(
  path: string,
  spec: LlamaSpec,
  tok: Tokenizer,
  seed: number,
  reshape?: (name: string, data: Float32Array) => void,
): Promise<{ model: LanguageModel; host: Record<string, HostTensor> }> {
  const model = llama(spec, tok.vocabSize);
  const params = model.init(random.key(seed));
  const host = await paramsToHost(params);
  tree.dispose(params);
  if (reshape) for (const [name, t] of Object.entries(host)) reshape(name, t.data as Float32Array);
  saveCheckpoint(path, { tensors: host, config: { role: "scratch", model: spec, tokenizer: tok.toJSON() as TokenizerJSON }, state: { done: true } });
  return { model, host };
}
