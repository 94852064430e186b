// A language-model checkpoint through its Hugging Face folder, measured: the folder's size,
// loadHfTeacher's time and whether it gives back the same logits, and greedy decoding in distill
// and in transformers.js (onnxruntime-node on onnx/model.onnx): ms per token and whether the
// tokens agree. Not a test: the numbers are for docs/HUGGING-FACE.md.
//
//   node --import tsx bench/hf-roundtrip.ts CHECKPOINT.safetensors [--tokens 40] [--prompts 8]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AutoModelForCausalLM, AutoTokenizer, env } from "@huggingface/transformers";
import { initDevice, np, tree } from "../src/engine/index.js";
import { bytesOnDisk } from "../src/export/deploy.js";
import { loadExportable } from "../src/export/exportable.js";
import { writeHfFolder } from "../src/export/hf.js";
import { generate } from "../src/nn/generate.js";
import { loadHfTeacher } from "../src/teachers/hf.js";
import { tokenizerFromJSON } from "../src/text/tokenizer.js";

const args = process.argv.slice(2);
const flag = (name: string, dflt: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const ckpt = args.find((a) => a.endsWith(".safetensors"));
if (!ckpt) throw new Error("usage: bench/hf-roundtrip.ts CHECKPOINT.safetensors [--tokens N] [--prompts N]");
const n = flag("--tokens", 40);
const prompts = flag("--prompts", 8);

await initDevice("wasm");
const m = loadExportable(ckpt);
if (m.family !== "lm") throw new Error(`${ckpt}: a classifier; this measures language models`);
const root = mkdtempSync(join(tmpdir(), "distill-hf-bench-"));
try {
  const folder = join(root, "model");
  await writeHfFolder(m, folder);
  const t0 = performance.now();
  const t = loadHfTeacher(folder);
  const loadMs = performance.now() - t0;

  const tok = tokenizerFromJSON(m.tokenizer, ckpt);
  const own = Object.fromEntries(m.model.shapes.map(([name, shape]) => [name, np.array(m.params[name].data).reshape(shape)]));
  const probe = Int32Array.from({ length: m.model.spec.context }, (_, i) => (i * 7 + 1) % m.model.vocab);
  const run = async (p: typeof own) => (await m.model.apply(tree.ref(p), np.array(probe, { dtype: np.int32 }).reshape([1, probe.length])).data()) as Float32Array;
  const a = await run(own);
  const b = await run(t.params);
  const sameLogits = a.every((v, i) => v === b[i]);

  // Prompts: windows of a fixed text, as many tokens as fit with n new ones.
  const text = "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness. ";
  const ids = tok.encode(text.repeat(4));
  const P = Math.min(16, m.model.spec.context - n);
  const ps = Array.from({ length: prompts }, (_, i) => ids.slice(i * 5, i * 5 + P));

  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = root + "/";
  const tjsTok = await AutoTokenizer.from_pretrained("model");
  const tjs = await AutoModelForCausalLM.from_pretrained("model", { dtype: "fp32", device: "cpu" });

  await generate(t.model, t.params, [ps[0]], 2, { temperature: 0, seed: 0 }); // compile
  await tjs.generate({ ...tjsTok(tok.decode(ps[0])), max_new_tokens: 2, do_sample: false }); // warm
  let ourMs = 0;
  let theirMs = 0;
  let sameTok = 0;
  let sameSeq = 0;
  for (const p of ps) {
    const g0 = performance.now();
    const [ours] = await generate(t.model, t.params, [p], n, { temperature: 0, seed: 0 });
    ourMs += performance.now() - g0;
    const inputs = tjsTok(tok.decode(p));
    const j0 = performance.now();
    const out = (await tjs.generate({ ...inputs, max_new_tokens: n, do_sample: false })) as { data: BigInt64Array };
    theirMs += performance.now() - j0;
    const theirs = Array.from(out.data, Number);
    let k = 0;
    while (k < ours.length && ours[k] === theirs[k]) k++;
    sameTok += Math.max(0, k - p.length);
    if (k === ours.length && theirs.length === ours.length) sameSeq++;
  }
  await tjs.dispose();
  tree.dispose(t.params);
  tree.dispose(own);
  console.log(`${ckpt}: ${m.model.name}, vocabulary ${m.model.vocab} (${m.tokenizer.kind})`);
  console.log(`HF folder ${bytesOnDisk(folder)} bytes (model.safetensors ${bytesOnDisk(join(folder, "model.safetensors"))}, onnx/model.onnx ${bytesOnDisk(join(folder, "onnx", "model.onnx"))})`);
  console.log(`loadHfTeacher ${loadMs.toFixed(0)} ms; logits over a full window identical to the checkpoint's: ${sameLogits}`);
  console.log(`greedy, ${prompts} prompts of ${P} tokens + ${n} new: distill ${(ourMs / (prompts * n)).toFixed(2)} ms/token, transformers.js ${(theirMs / (prompts * n)).toFixed(2)} ms/token; identical continuations ${sameSeq}/${prompts}, tokens agreeing before the first difference ${sameTok}/${prompts * n}`);
} finally {
  rmSync(root, { recursive: true, force: true });
}
