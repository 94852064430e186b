// STUB (base commit): replaced by the Hugging Face folder loader.
import type { LanguageModel } from "../nn/llama.js";
import type { Params } from "../nn/models.js";
import type { Tokenizer } from "../text/tokenizer.js";

/** A LlamaForCausalLM folder (config.json + model.safetensors + tokenizer.json) as distill's own Llama. */
export function loadHfTeacher(dir: string): { model: LanguageModel; params: Params; tokenizer: Tokenizer } {
  throw new Error(`loadHfTeacher: not implemented yet (${dir})`);
}
