// GGUF out and in: distill's exporter against llama.cpp itself (node-llama-cpp 3.21.1 on the
// CPU, through the teacher adapter's child process), on held-out text long enough that rotary
// embeddings matter, with several heads, so a missing or wrong Q/K permutation shows.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { getLlama, LlamaLogLevel, readGgufFileInfo, type ControlledEvaluateInputItem, type Llama, type Token } from "node-llama-cpp";
import { initDevice, np } from "../src/engine/index.js";
import { llama, type LlamaSpec } from "../src/nn/llama.js";
import { paramsFromHost } from "../src/checkpoint/params.js";
import type { HostTensor } from "../src/checkpoint/safetensors.js";
import { byteTokenizer, charTokenizer, type Tokenizer } from "../src/text/tokenizer.js";
import { exportGguf, f32ToF16Bits, permuteQK } from "../src/export/gguf.js";
import type { LMExportable, Params32 } from "../src/export/exportable.js";
import { openGgufTeacher, readGgufHeader } from "../src/teachers/gguf.js";
import { UserError } from "../src/util/errors.js";
import { Rng } from "../src/util/rng.js";
import { tempDir } from "./helpers/tmp.js";

const CORPUS = "the quick brown fox jumps over the lazy dog.\npack my box with five dozen liquor jugs!\nhow vexingly quick daft zebras jump, said the sphinx.\n";
// Held out: not a line of the corpus, only its characters.
const HELD_OUT = "a lazy sphinx jumps over the quick zebras; the dog said how daft my five jugs of liquor were, and the fox packed a box.";
const CONTEXT = 32;

let dir: string;
let llamaCpp: Llama;

before(async () => {
  await initDevice("wasm");
  dir = tempDir("distill-gguf-");
  // The test process's own llama.cpp (tokenisation, the F16 file, the negative control): only
  // ever given files that are valid. One thread: its threads spin while waiting.
  llamaCpp = await getLlama({ gpu: false, build: "never", skipDownload: true, progressLogs: false, logLevel: LlamaLogLevel.error, maxThreads: 1 });
});

after(async () => {
  await llamaCpp?.dispose();
});

/** A tiny Llama with random weights large enough that its distributions are peaked. */
function tinyLM(tok: Tokenizer, opts: { tied?: boolean; heads?: number; seed?: number } = {}): LMExportable {
  const spec: LlamaSpec = { type: "llama", layers: 2, width: 32, heads: opts.heads ?? 4, context: CONTEXT, tied: opts.tied ?? false, ropeTheta: 10000, normEps: 1e-5 };
  const model = llama(spec, tok.vocabSize);
  const rng = new Rng(opts.seed ?? 1);
  const u = () => rng.nextU32() / 2 ** 32 - 0.5;
  const params: Params32 = {};
  for (const [name, shape] of model.shapes) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = name.endsWith("norm.weight") ? 1 + 0.4 * u() : name.includes("embed") ? 2 * u() : u();
    params[name] = { shape, data };
  }
  return { family: "lm", model, params, tokenizer: tok.toJSON(), source: "tiny/student.safetensors" };
}

/** distill's own forward: log-softmax (float64) of the logits, [B·T, V]. */
async function distillLogprobs(m: LMExportable, tokens: Int32Array, B: number, T: number): Promise<Float64Array> {
  const host: Record<string, HostTensor> = {};
  for (const [k, v] of Object.entries(m.params)) host[k] = { dtype: "F32", shape: v.shape, data: v.data };
  const params = paramsFromHost(host, m.model.shapes, "test");
  const logits = (await m.model.apply(params, np.array(tokens, { dtype: np.int32 }).reshape([B, T])).data()) as Float32Array;
  const V = m.model.vocab;
  const out = new Float64Array(logits.length);
  for (let r = 0; r < B * T; r++) {
    let mx = -Infinity;
    for (let v = 0; v < V; v++) mx = Math.max(mx, logits[r * V + v]);
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(logits[r * V + v] - mx);
    const lse = mx + Math.log(s);
    for (let v = 0; v < V; v++) out[r * V + v] = logits[r * V + v] - lse;
  }
  return out;
}

/** Held-out rows [B, CONTEXT]: consecutive windows of the held-out text. */
function heldOutRows(tok: Tokenizer): { tokens: Int32Array; B: number; T: number } {
  const ids = tok.encode(HELD_OUT);
  const B = Math.floor(ids.length / CONTEXT);
  return { tokens: ids.slice(0, B * CONTEXT), B, T: CONTEXT };
}

interface Agreement {
  positions: number;
  top1: number;
  maxDiff: number;
}

/** llama.cpp's top-k (ids, log-probs) against distill's log-softmax at the same ids. */
function compare(ids: Int32Array, lps: Float32Array, k: number, want: Float64Array, V: number): Agreement {
  const rows = want.length / V;
  let top1 = 0;
  let maxDiff = 0;
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let v = 1; v < V; v++) if (want[r * V + v] > want[r * V + best]) best = v;
    if (ids[r * k] === best) top1++;
    for (let j = 0; j < k; j++) maxDiff = Math.max(maxDiff, Math.abs(lps[r * k + j] - want[r * V + ids[r * k + j]]));
  }
  return { positions: rows, top1: top1 / rows, maxDiff };
}

async function throughAdapter(m: LMExportable, dtype: "f32" | "f16", name: string, k = 5, sequences?: number): Promise<Agreement> {
  const path = join(dir, name);
  writeFileSync(path, exportGguf(m, dtype));
  const tok = charTokenizer(CORPUS);
  const { tokens, B, T } = heldOutRows(tok);
  const teacher = await openGgufTeacher(path, { topK: k, vocab: m.model.vocab, context: CONTEXT, sequences });
  try {
    assert.equal(teacher.output, "topk");
    assert.equal(teacher.classes, m.model.vocab);
    const n = m.model.shapes.reduce((a, [, s]) => a + s.reduce((x, y) => x * y, 1), 0);
    assert.equal(teacher.parameters, n, "parameters: the sum of the file's tensor sizes");
    assert.equal(ggufChildren().length, 1, "llama.cpp runs in one child process");
    const s = await teacher.softLabels(tokens, [B, T]);
    assert.equal(s.kind, "topk");
    if (s.kind !== "topk") throw new Error("unreachable");
    assert.equal(s.rows, B * T);
    assert.equal(s.k, k);
    for (let r = 0; r < s.rows; r++) {
      for (let j = 1; j < k; j++) assert.ok(s.logprobs[r * k + j] <= s.logprobs[r * k + j - 1], "sorted by descending probability");
    }
    const want = await distillLogprobs(m, tokens, B, T);
    // The tail the adapter reports: the log of the mass outside the k, against distill's.
    const V = m.model.vocab;
    assert.ok(s.logTail, "the adapter reports the tail");
    for (let r = 0; r < s.rows; r++) {
      const kept = new Set(s.ids.subarray(r * k, (r + 1) * k));
      let tail = 0;
      for (let v = 0; v < V; v++) if (!kept.has(v)) tail += Math.exp(want[r * V + v]);
      assert.ok(Math.abs(s.logTail[r] - Math.log(tail)) < 1e-3, `row ${r}: log tail ${s.logTail[r]} vs ${Math.log(tail)}`);
    }
    return compare(s.ids, s.logprobs, k, want, V);
  } finally {
    await teacher.close();
    assert.deepEqual(ggufChildren(), [], "close() ends the child process");
    await assert.rejects(teacher.softLabels(tokens, [B, T]), /closed/);
  }
}

/** Running child processes of this test process that are a GGUF teacher's (Linux /proc). */
function ggufChildren(): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === process.pid && readFileSync(`/proc/${d}/cmdline`, "utf8").includes("gguf-child")) out.push(Number(d));
    } catch {
      // gone while we looked
    }
  }
  return out;
}

/** The same top-k read in this process's own llama.cpp (for files known to be valid). */
async function llamaTopK(path: string, tokens: Int32Array, B: number, T: number, k: number): Promise<{ ids: Int32Array; lps: Float32Array }> {
  const model = await llamaCpp.loadModel({ modelPath: path, gpuLayers: 0 });
  // One slot more than the row, as the adapter does (a full context makes node-llama-cpp shift it).
  const ctx = await model.createContext({ contextSize: T + 1, batchSize: T + 1, threads: 1, flashAttention: false, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" });
  const seq = ctx.getSequence();
  const ids = new Int32Array(B * T * k);
  const lps = new Float32Array(B * T * k);
  for (let b = 0; b < B; b++) {
    await seq.clearHistory();
    const out = await seq.controlledEvaluate(Array.from(tokens.subarray(b * T, (b + 1) * T), (t): ControlledEvaluateInputItem => [t as Token, { generateNext: { probabilities: true } }]));
    for (let t = 0; t < T; t++) {
      const top = [...out[t]!.next.probabilities!].slice(0, k);
      top.forEach(([id, pr], j) => {
        ids[(b * T + t) * k + j] = id;
        lps[(b * T + t) * k + j] = Math.log(pr);
      });
    }
  }
  await ctx.dispose();
  await model.dispose();
  return { ids, lps };
}

test("F32 GGUF, untied head: llama.cpp through the adapter agrees with distill's forward on held-out text", async (t) => {
  const m = tinyLM(charTokenizer(CORPUS));
  const a = await throughAdapter(m, "f32", "untied-f32.gguf");
  t.diagnostic(`${a.positions} positions, top-1 agreement ${a.top1}, max |Δ log p| ${a.maxDiff.toExponential(2)}`);
  assert.ok(a.positions >= 96, `${a.positions} positions`);
  assert.ok(a.top1 >= 0.999, `top-1 agreement ${a.top1}`);
  assert.ok(a.maxDiff <= 1e-3, `max |log-prob difference| ${a.maxDiff}`);
});

test("F32 GGUF, tied head (no output tensor): agrees the same way, with rows spread over two llama.cpp sequences", async (t) => {
  const m = tinyLM(charTokenizer(CORPUS), { tied: true, seed: 2 });
  const a = await throughAdapter(m, "f32", "tied-f32.gguf", 5, 2);
  t.diagnostic(`${a.positions} positions, top-1 agreement ${a.top1}, max |Δ log p| ${a.maxDiff.toExponential(2)}`);
  assert.ok(a.top1 >= 0.999, `top-1 agreement ${a.top1}`);
  assert.ok(a.maxDiff <= 1e-3, `max |log-prob difference| ${a.maxDiff}`);
});

test("F16 GGUF: loads and agrees within F16's rounding (max |Δ log p| ≤ 0.05, top-1 ≥ 97 %)", async (t) => {
  const m = tinyLM(charTokenizer(CORPUS), { seed: 3 });
  // In this process's llama.cpp rather than through the adapter (the F32 tests cover that path).
  const path = join(dir, "untied-f16.gguf");
  writeFileSync(path, exportGguf(m, "f16"));
  const { tokens, B, T } = heldOutRows(charTokenizer(CORPUS));
  const { ids, lps } = await llamaTopK(path, tokens, B, T, 5);
  const a = compare(ids, lps, 5, await distillLogprobs(m, tokens, B, T), m.model.vocab);
  t.diagnostic(`${a.positions} positions, top-1 agreement ${a.top1}, max |Δ log p| ${a.maxDiff.toExponential(2)}`);
  // Weights rounded to 11 significant bits, and llama.cpp's CPU matmul rounds the activations
  // to F16 too: measured max |Δ log p| = 0.0126 with every top-1 equal on this model (whose
  // random weights give larger logits than a trained student's); the bounds leave room for a
  // near-tie between the top two tokens.
  assert.ok(a.top1 >= 0.97, `top-1 agreement ${a.top1}`);
  assert.ok(a.maxDiff <= 0.05, `max |log-prob difference| ${a.maxDiff}`);
  assert.ok(a.maxDiff > 1e-6, "F16 weights must differ from F32 somewhere (else the file is not F16)");
});

/** The inverse of the export's permutation: what a file without it would hold. */
function unpermute(w: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const hd = rows / heads;
  const half = hd / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < half; j++) {
      for (let s = 0; s < 2; s++) out.set(w.subarray((h * hd + 2 * j + s) * cols, (h * hd + 2 * j + s + 1) * cols), (h * hd + s * half + j) * cols);
    }
  }
  return out;
}

test("the agreement check catches a missing Q/K permutation (negative control) and the permutation is the converter's", async () => {
  const m = tinyLM(charTokenizer(CORPUS));
  // permuteQK against the converter's reshape(heads, 2, hd/2, in).swapaxes(1, 2), by index.
  const rows = 8, cols = 3, heads = 2;
  const w = Float32Array.from({ length: rows * cols }, (_, i) => i);
  const p = permuteQK(w, rows, cols, heads);
  for (let h = 0; h < heads; h++) for (let s = 0; s < 2; s++) for (let j = 0; j < 2; j++) for (let c = 0; c < cols; c++) {
    assert.equal(p[(h * 4 + j * 2 + s) * cols + c], w[(h * 4 + s * 2 + j) * cols + c]);
  }
  assert.deepEqual(unpermute(p, rows, cols, heads), w);
  // Un-permute Q and K before export, so the file holds them as a converter without `permute` would.
  const broken: LMExportable = { ...m, params: { ...m.params } };
  for (const [name, t] of Object.entries(m.params)) {
    if (/(q|k)_proj\.weight$/.test(name)) broken.params[name] = { shape: t.shape, data: unpermute(t.data, t.shape[0], t.shape[1], m.model.spec.heads) };
  }
  const path = join(dir, "unpermuted.gguf");
  writeFileSync(path, exportGguf(broken, "f32"));
  const tok = charTokenizer(CORPUS);
  const { tokens, B, T } = heldOutRows(tok);
  const k = 5;
  const { ids, lps } = await llamaTopK(path, tokens, B, T, k);
  const a = compare(ids, lps, k, await distillLogprobs(m, tokens, B, T), m.model.vocab);
  assert.ok(a.top1 < 0.9 && a.maxDiff > 0.1, `without the permutation llama.cpp should disagree (top-1 ${a.top1}, max diff ${a.maxDiff})`);
});

test("the file as llama.cpp's own reader sees it: metadata, tensor names, F16 matrices with F32 norms, no output when tied", async () => {
  const tok = charTokenizer(CORPUS);
  const m = tinyLM(tok, { tied: true });
  const path = join(dir, "meta-f16.gguf");
  writeFileSync(path, exportGguf(m, "f16"));
  const info = await readGgufFileInfo(path, { sourceType: "filesystem", logWarnings: false });
  assert.equal(info.version, 3);
  const md = info.metadata as unknown as Record<string, Record<string, unknown>>;
  assert.equal(md.general.architecture, "llama");
  assert.equal(md.general.file_type, 1);
  assert.equal(md.general.alignment, 32);
  const L = md.llama as Record<string, unknown>;
  assert.equal(L.context_length, CONTEXT);
  assert.equal(L.embedding_length, 32);
  assert.equal(L.block_count, 2);
  assert.equal(L.feed_forward_length, 128);
  assert.deepEqual(L.attention, { head_count: 4, head_count_kv: 4, layer_norm_rms_epsilon: (L.attention as { layer_norm_rms_epsilon: number }).layer_norm_rms_epsilon });
  assert.ok(Math.abs((L.attention as { layer_norm_rms_epsilon: number }).layer_norm_rms_epsilon - 1e-5) < 1e-9);
  assert.deepEqual(L.rope, { freq_base: 10000, dimension_count: 8 });
  const tk = (md.tokenizer as { ggml: Record<string, unknown> }).ggml;
  assert.equal(tk.model, "t5");
  assert.equal((tk.tokens as string[]).length, tok.vocabSize);
  assert.equal((tk.tokens as string[])[tok.encode(" ")[0]], "\u2581");
  assert.equal((tk.token_type as number[])[0], 2);
  const types = Object.fromEntries(info.tensorInfo!.map((t) => [t.name, t.ggmlType]));
  assert.equal(types["token_embd.weight"], 1);
  assert.equal(types["blk.1.attn_q.weight"], 1);
  assert.equal(types["blk.0.ffn_down.weight"], 1);
  assert.equal(types["blk.0.attn_norm.weight"], 0);
  assert.equal(types["blk.1.ffn_norm.weight"], 0);
  assert.equal(types["output_norm.weight"], 0);
  assert.ok(!Object.hasOwn(types, "output.weight"), "a tied head has no output tensor");
  assert.equal(info.tensorInfo!.length, 1 + 2 * 9 + 1);
  const down = info.tensorInfo!.find((t) => t.name === "blk.0.ffn_down.weight")!;
  assert.deepEqual(down.dimensions.map(Number), [128, 32], "GGUF dims are PyTorch's reversed");
  for (const t of info.tensorInfo!) assert.equal(Number(t.offset) % 32, 0, `${t.name} aligned to 32`);
  // The F16 bytes of one matrix are the rounded F32 weights, in PyTorch's row order.
  const bytes = readFileSync(path);
  const emb = info.tensorInfo!.find((t) => t.name === "token_embd.weight")!;
  const half = new Uint16Array(bytes.buffer.slice(bytes.byteOffset + Number(emb.fileOffset), bytes.byteOffset + Number(emb.fileOffset) + 2 * 10));
  const src = m.params["model.embed_tokens.weight"].data;
  for (let i = 0; i < 10; i++) assert.equal(half[i], f32ToF16Bits(src[i]));
  const untied = join(dir, "meta-untied-f32.gguf");
  writeFileSync(untied, exportGguf(tinyLM(tok), "f32"));
  const info2 = await readGgufFileInfo(untied, { sourceType: "filesystem", logWarnings: false });
  assert.ok(info2.tensorInfo!.every((t) => t.ggmlType === 0), "F32: every tensor F32");
  assert.ok(info2.tensorInfo!.some((t) => t.name === "output.weight"));
});

test("exportGguf refuses what it cannot write with one-line UserErrors", () => {
  const m = tinyLM(charTokenizer(CORPUS));
  assert.throws(() => exportGguf({ ...m, tokenizer: { kind: "hf", json: {} } }, "f32"), (e: unknown) => e instanceof UserError && /char and byte tokenizers/.test(e.message));
  assert.throws(() => exportGguf(m, "q8" as never), (e: unknown) => e instanceof UserError && /"f32" or "f16"/.test(e.message));
  const { ["model.layers.1.mlp.up_proj.weight"]: _dropped, ...rest } = m.params;
  assert.throws(() => exportGguf({ ...m, params: rest }, "f32"), (e: unknown) => e instanceof UserError && /model\.layers\.1\.mlp\.up_proj\.weight/.test(e.message));
  assert.throws(() => exportGguf({ ...m, tokenizer: { kind: "char", chars: ["a", "b"] } }, "f32"), (e: unknown) => e instanceof UserError && /3 tokens but the output layer/.test(e.message));
});

test("f32ToF16Bits rounds like IEEE half (nearest even, subnormals, overflow)", () => {
  assert.equal(f32ToF16Bits(1), 0x3c00);
  assert.equal(f32ToF16Bits(-2), 0xc000);
  assert.equal(f32ToF16Bits(65504), 0x7bff);
  assert.equal(f32ToF16Bits(70000), 0x7c00);
  assert.equal(f32ToF16Bits(2 ** -24), 0x0001);
  assert.equal(f32ToF16Bits(2 ** -26), 0x0000);
  assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00, "a tie rounds to even");
  assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02, "a tie rounds to even (up)");
  assert.equal(f32ToF16Bits(0.1), 0x2e66);
  assert.ok((f32ToF16Bits(NaN) & 0x7c00) === 0x7c00 && (f32ToF16Bits(NaN) & 0x3ff) !== 0);
});

test("llama.cpp tokenises text to distill's ids and back (char vocabulary as t5, bytes as rwkv)", async () => {
  const cases: [Tokenizer, string][] = [
    [charTokenizer(CORPUS), "the sphinx said: quick!\nhow daft  two spaces"],
    [byteTokenizer(), "héllo wörld \\ 'q' \t tab\n€ 🙂 \u0001"],
  ];
  for (const [tok, text] of cases) {
    const path = join(dir, `vocab-${tok.kind}.gguf`);
    writeFileSync(path, exportGguf(tinyLM(tok), "f32"));
    const model = await llamaCpp.loadModel({ modelPath: path, vocabOnly: true });
    try {
      // The char text has ':' and '2'-free words only from the corpus, plus a ':' that is unknown.
      assert.deepEqual(Array.from(model.tokenize(text)), Array.from(tok.encode(text)), `${tok.kind}: llama.cpp's ids`);
      const known = tok.kind === "char" ? text.replace(":", "") : text;
      assert.equal(model.detokenize(Array.from(tok.encode(known)) as never), known, `${tok.kind}: llama.cpp's text`);
    } finally {
      await model.dispose();
    }
  }
});

test("bad files: missing key, truncated, random bytes, wrong vocabulary, too short a context: one-line UserErrors before llama.cpp", async () => {
  const m = tinyLM(charTokenizer(CORPUS));
  const good = exportGguf(m, "f32");
  const V = m.model.vocab;
  const open = (path: string, vocab = V) => openGgufTeacher(path, { topK: 3, vocab, context: CONTEXT });
  const oneLine = async (p: Promise<unknown>, re: RegExp) => {
    await assert.rejects(p, (e: unknown) => {
      assert.ok(e instanceof UserError, `a UserError, got ${String(e)}`);
      assert.ok(!e.message.includes("\n"), `one line: ${e.message}`);
      assert.match(e.message, re);
      return true;
    });
  };
  // A missing required key (the name changed in place, so the file is otherwise intact).
  const missing = Buffer.from(good);
  const at = missing.indexOf("llama.feed_forward_length");
  assert.ok(at > 0);
  missing.write("llama.feed_forward_lengtX", at);
  writeFileSync(join(dir, "missing.gguf"), missing);
  await oneLine(open(join(dir, "missing.gguf")), /missing\.gguf: .*llama\.feed_forward_length/);
  // Truncated in the tensor data, and inside the metadata.
  writeFileSync(join(dir, "trunc-data.gguf"), good.subarray(0, Math.floor(good.length * 0.7)));
  await oneLine(open(join(dir, "trunc-data.gguf")), /trunc-data\.gguf: truncated GGUF file: tensor/);
  writeFileSync(join(dir, "trunc-meta.gguf"), good.subarray(0, 800));
  await oneLine(open(join(dir, "trunc-meta.gguf")), /trunc-meta\.gguf: truncated GGUF file: its header/);
  // Random bytes, with and without the magic.
  const rng = new Rng(9);
  const noise = Uint8Array.from({ length: 4096 }, () => rng.int(256));
  writeFileSync(join(dir, "noise.gguf"), noise);
  await oneLine(open(join(dir, "noise.gguf")), /noise\.gguf: not a GGUF file/);
  const magicNoise = Buffer.from(noise);
  magicNoise.write("GGUF", 0, "latin1");
  magicNoise.writeUInt32LE(3, 4);
  writeFileSync(join(dir, "magic-noise.gguf"), magicNoise);
  await oneLine(open(join(dir, "magic-noise.gguf")), /magic-noise\.gguf: (corrupt GGUF header|truncated or corrupt)/);
  await oneLine(open(join(dir, "absent.gguf")), /absent\.gguf: GGUF file not found/);
  // The vocabulary: both sizes named.
  writeFileSync(join(dir, "good.gguf"), good);
  await oneLine(open(join(dir, "good.gguf"), V + 7), new RegExp(`good\\.gguf: .*${V} tokens.*${V + 7}`));
  // Windows longer than the teacher's training context.
  await oneLine(openGgufTeacher(join(dir, "good.gguf"), { topK: 3, vocab: V, context: CONTEXT + 1 }), new RegExp(`good\\.gguf: .*trained on ${CONTEXT} tokens.*${CONTEXT + 1}`));
  const h = await readGgufHeader(join(dir, "good.gguf"));
  assert.equal(h.vocab, V);
  assert.equal(h.architecture, "llama");
});

/**
 * A copy of a GGUF file with one more string key right after the header. The inserted entry is
 * padded (through the value's length) to a multiple of 32 bytes, so the aligned data offsets
 * stay valid.
 */
function withStringKey(file: Uint8Array, key: string, value: string): Buffer {
  const base = 8 + key.length + 4 + 8;
  const len = value.length + ((32 - ((base + value.length) % 32)) % 32);
  const kv = Buffer.alloc(base + len);
  kv.writeBigUInt64LE(BigInt(key.length), 0);
  kv.write(key, 8, "latin1");
  kv.writeUInt32LE(8, 8 + key.length);
  kv.writeBigUInt64LE(BigInt(len), 12 + key.length);
  kv.write(value.padEnd(len, "x"), base, "latin1");
  const head = Buffer.from(file.subarray(0, 24));
  head.writeBigUInt64LE(head.readBigUInt64LE(16) + 1n, 16);
  return Buffer.concat([head, kv, file.subarray(24)]);
}

test("a file llama.cpp aborts on (unknown rope scaling type) kills only the child: one-line UserError, this process goes on", async () => {
  const m = tinyLM(charTokenizer(CORPUS));
  const path = join(dir, "abort.gguf");
  writeFileSync(path, withStringKey(exportGguf(m, "f32"), "llama.rope.scaling.type", "bogus"));
  await assert.rejects(openGgufTeacher(path, { topK: 3, vocab: m.model.vocab, context: CONTEXT }), (e: unknown) => {
    assert.ok(e instanceof UserError, String(e));
    assert.ok(!e.message.includes("\n"), e.message);
    assert.match(e.message, /abort\.gguf: llama\.cpp /);
    return true;
  });
  // Still alive, and the same file without the bad key still loads (the insertion itself is sound).
  const ok = join(dir, "inserted-ok.gguf");
  writeFileSync(ok, withStringKey(exportGguf(m, "f32"), "general.comment", "fine"));
  const info = await readGgufFileInfo(ok, { sourceType: "filesystem", logWarnings: false });
  assert.equal((info.metadata as unknown as { general: { comment: string } }).general.comment.startsWith("fine"), true);
});
