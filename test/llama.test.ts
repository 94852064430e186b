import { before, test } from "node:test";
import assert from "node:assert/strict";
import { initDevice, np, random, tree } from "../src/engine/index.js";
import { llama } from "../src/nn/llama.js";
import { generate, generateFullRecompute, sampleToken } from "../src/nn/generate.js";
import { paramCount, type Params } from "../src/nn/models.js";
import { Rng } from "../src/util/rng.js";
import { UserError } from "../src/util/errors.js";

before(async () => {
  await initDevice("wasm");
});

const tiny = () => llama({ type: "llama", layers: 2, width: 16, heads: 2, context: 12 }, 11);

test("Llama layout: Hugging Face parameter names and shapes; the recipe's sizes", () => {
  const m = tiny();
  const names = m.shapes.map(([n]) => n);
  assert.ok(names.includes("model.embed_tokens.weight"));
  assert.ok(names.includes("model.layers.1.self_attn.q_proj.weight"));
  assert.ok(names.includes("model.layers.0.mlp.gate_proj.weight"));
  assert.ok(names.includes("model.norm.weight"));
  assert.ok(names.includes("lm_head.weight"));
  assert.deepEqual(Object.fromEntries(m.shapes)["model.layers.0.mlp.down_proj.weight"], [16, 64]);
  const tied = llama({ type: "llama", layers: 2, width: 16, heads: 2, context: 12, tied: true }, 11);
  assert.ok(!tied.shapes.some(([n]) => n === "lm_head.weight"));
  // charlm-fortunes: teacher 4×128, student 2×64, SwiGLU 4×, untied; per-layer 4D² + 3·4D² + 2D.
  const V = 100;
  const perLayer = (D: number) => 4 * D * D + 12 * D * D + 2 * D;
  assert.equal(paramCount(llama({ type: "llama", layers: 4, width: 128, heads: 4, context: 64 }, V) as never), 2 * V * 128 + 4 * perLayer(128) + 128);
  assert.equal(paramCount(llama({ type: "llama", layers: 2, width: 64, heads: 2, context: 64 }, V) as never), 2 * V * 64 + 2 * perLayer(64) + 64);
});

test("width not divisible by heads is a clear error", () => {
  assert.throws(() => llama({ type: "llama", layers: 1, width: 10, heads: 3, context: 8 }, 5), UserError);
});

test("causal: changing a later token leaves earlier logits unchanged", async () => {
  const m = tiny();
  const p = m.init(random.key(0));
  const a = Int32Array.from([1, 2, 3, 4, 5, 6]);
  const b = Int32Array.from([1, 2, 3, 9, 9, 9]);
  const run = async (t: Int32Array) => (await m.apply(tree.ref(p), np.array(t, { dtype: np.int32 }).reshape([1, 6])).data()) as Float32Array;
  const la = await run(a);
  const lb = await run(b);
  for (let i = 0; i < 3 * 11; i++) assert.ok(Math.abs(la[i] - lb[i]) < 1e-6);
  assert.ok(Array.from(la.subarray(3 * 11)).some((v, i) => Math.abs(v - lb[3 * 11 + i]) > 1e-4));
  tree.dispose(p);
});

async function pair(p: Params, opts: Parameters<typeof generate>[4]) {
  const m = tiny();
  const prompts = [Int32Array.from([1, 2, 3]), Int32Array.from([4, 5, 6])];
  const kv = await generate(m, p, prompts, 8, opts);
  const full = await generateFullRecompute(m, p, prompts, 8, opts);
  return { kv, full, m };
}

test("KV-cache generation equals full recompute token for token (greedy and sampled)", async () => {
  const m = tiny();
  // Larger weights so the distribution is peaked enough to make greedy meaningful.
  const p = tree.map((x: ReturnType<typeof np.ones>) => x.mul(20), m.init(random.key(1))) as Params;
  for (const opts of [{ temperature: 0, seed: 0 }, { temperature: 1, seed: 3 }, { temperature: 0.8, topK: 5, topP: 0.9, seed: 4 }]) {
    const { kv, full } = await pair(p, opts);
    assert.deepEqual(kv.map((s) => Array.from(s)), full.map((s) => Array.from(s)), JSON.stringify(opts));
    assert.deepEqual(Array.from(kv[0].subarray(0, 3)), [1, 2, 3]);
  }
  tree.dispose(p);
});

test("same checkpoint and seed, same text; another seed, other text", async () => {
  const m = tiny();
  const p = m.init(random.key(2));
  const prompts = [Int32Array.from([1, 2])];
  const a = await generate(m, p, prompts, 9, { temperature: 1, seed: 7 });
  const b = await generate(m, p, prompts, 9, { temperature: 1, seed: 7 });
  const c = await generate(m, p, prompts, 9, { temperature: 1, seed: 8 });
  assert.deepEqual(Array.from(a[0]), Array.from(b[0]));
  assert.notDeepEqual(Array.from(a[0]), Array.from(c[0]));
  await assert.rejects(generate(m, p, prompts, 20, { seed: 0 }), /longer than the model's context of 12/);
  tree.dispose(p);
});

test("sampleToken: greedy, top-k and top-p restrict the choices", () => {
  const logits = [0, 5, 1, 4, 2];
  const rng = new Rng(1);
  assert.equal(sampleToken(logits, { temperature: 0, seed: 0 }, rng), 1);
  const seen = new Set<number>();
  for (let i = 0; i < 300; i++) seen.add(sampleToken(logits, { temperature: 1, topK: 2, seed: 0 }, rng));
  assert.deepEqual([...seen].sort(), [1, 3]);
  const seenP = new Set<number>();
  // p(1) ≈ 0.70 < 0.8 ≤ p(1) + p(3) ≈ 0.96: top-p 0.8 keeps exactly tokens 1 and 3.
  for (let i = 0; i < 300; i++) seenP.add(sampleToken(logits, { temperature: 1, topP: 0.8, seed: 0 }, rng));
  assert.deepEqual([...seenP].sort(), [1, 3]);
});
