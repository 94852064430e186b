// GGUF export of a language-model student, as llama.cpp's `convert_hf_to_gguf.py` writes a
// `LlamaForCausalLM` (llama architecture, GGUF v3, alignment 32), so llama.cpp and everything
// built on it (node-llama-cpp, llama-cli, Ollama) runs the student.
//
// Written by hand: no maintained npm package writes a whole GGUF file. @huggingface/gguf (0.4.6)
// parses GGUF and can re-serialise the metadata header of an existing file (serializeGgufMetadata,
// buildGgufHeader, for its metadata editor) but writes no tensor infos or tensor data;
// node-llama-cpp only reads. The format is small: a header, typed key/values, tensor infos, and
// the raw tensors at aligned offsets.
import { basename } from "node:path";
import type { LMExportable } from "./exportable.js";
import { UserError } from "../util/errors.js";

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32
export const GGUF_VERSION = 3;
export const GGUF_ALIGNMENT = 32;

/** GGUF metadata value types (gguf-py `GGUFValueType`). */
const T = { UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9 } as const;
/** ggml tensor types used here (gguf-py `GGMLQuantizationType`). */
const GGML_F32 = 0;
const GGML_F16 = 1;
/** llama.cpp token types (gguf-py `TokenType`). */
const TOKEN_NORMAL = 1;
const TOKEN_UNKNOWN = 2;
/** general.file_type (gguf-py `LlamaFileType`). */
const FILE_TYPE = { f32: 0, f16: 1 } as const;

type Value =
  | { t: "u32"; v: number }
  | { t: "f32"; v: number }
  | { t: "bool"; v: boolean }
  | { t: "str"; v: string }
  | { t: "strs"; v: string[] }
  | { t: "f32s"; v: ArrayLike<number> }
  | { t: "i32s"; v: ArrayLike<number> };

interface TensorOut {
  name: string;
  /** PyTorch order ([out, in]); GGUF stores the reverse (ne[0] is the fastest axis). */
  shape: number[];
  type: typeof GGML_F32 | typeof GGML_F16;
  data: Float32Array;
}

/** Growable little-endian byte writer. */
class Bytes {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;
  private readonly enc = new TextEncoder();

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u32(v: number): void {
    this.room(4);
    this.view.setUint32(this.length, v, true);
    this.length += 4;
  }
  i32(v: number): void {
    this.room(4);
    this.view.setInt32(this.length, v, true);
    this.length += 4;
  }
  u64(v: number): void {
    this.room(8);
    this.view.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }
  f32(v: number): void {
    this.room(4);
    this.view.setFloat32(this.length, v, true);
    this.length += 4;
  }
  u8(v: number): void {
    this.room(1);
    this.buf[this.length++] = v;
  }
  str(s: string): void {
    const b = this.enc.encode(s);
    this.u64(b.length);
    this.raw(b);
  }
  raw(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  pad(align: number): void {
    const n = (align - (this.length % align)) % align;
    this.room(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }
  bytes(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

function writeValue(w: Bytes, value: Value): void {
  switch (value.t) {
    case "u32":
      w.u32(T.UINT32);
      w.u32(value.v);
      return;
    case "f32":
      w.u32(T.FLOAT32);
      w.f32(value.v);
      return;
    case "bool":
      w.u32(T.BOOL);
      w.u8(value.v ? 1 : 0);
      return;
    case "str":
      w.u32(T.STRING);
      w.str(value.v);
      return;
    case "strs":
      w.u32(T.ARRAY);
      w.u32(T.STRING);
      w.u64(value.v.length);
      for (const s of value.v) w.str(s);
      return;
    case "f32s":
      w.u32(T.ARRAY);
      w.u32(T.FLOAT32);
      w.u64(value.v.length);
      for (let i = 0; i < value.v.length; i++) w.f32(value.v[i]);
      return;
    case "i32s":
      w.u32(T.ARRAY);
      w.u32(T.INT32);
      w.u64(value.v.length);
      for (let i = 0; i < value.v.length; i++) w.i32(value.v[i]);
      return;
  }
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE half from a float, rounding to nearest even (what numpy's astype(float16) does). */
export function f32ToF16Bits(x: number): number {
  f32Scratch[0] = x;
  const u = u32Scratch[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0); // inf, nan
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow → inf
  if (e <= 0) {
    if (e < -10) return sign; // underflows to ±0
    mant |= 0x800000; // subnormal half: shift the implicit bit in
    const shift = 14 - e;
    const half = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (half + (rest > mid || (rest === mid && (half & 1) === 1) ? 1 : 0));
  }
  const half = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (and reaches inf at the top).
  return sign | (half + (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1) ? 1 : 0));
}

function tensorBytes(t: TensorOut): Uint8Array {
  if (t.type === GGML_F32) return new Uint8Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
  const out = new Uint16Array(t.data.length);
  for (let i = 0; i < t.data.length; i++) out[i] = f32ToF16Bits(t.data[i]);
  return new Uint8Array(out.buffer);
}

/** A whole GGUF v3 file: header, key/values, tensor infos, aligned tensor data. */
function writeGguf(kv: [string, Value][], tensors: TensorOut[]): Uint8Array {
  const w = new Bytes();
  w.u32(GGUF_MAGIC);
  w.u32(GGUF_VERSION);
  w.u64(tensors.length);
  w.u64(kv.length);
  for (const [key, value] of kv) {
    w.str(key);
    writeValue(w, value);
  }
  const blobs = tensors.map(tensorBytes);
  let offset = 0;
  tensors.forEach((t, i) => {
    w.str(t.name);
    w.u32(t.shape.length);
    for (let d = t.shape.length - 1; d >= 0; d--) w.u64(t.shape[d]);
    w.u32(t.type);
    w.u64(offset);
    offset += blobs[i].length;
    offset += (GGUF_ALIGNMENT - (offset % GGUF_ALIGNMENT)) % GGUF_ALIGNMENT;
  });
  w.pad(GGUF_ALIGNMENT);
  for (const b of blobs) {
    w.raw(b);
    w.pad(GGUF_ALIGNMENT);
  }
  return w.bytes();
}

/**
 * llama.cpp's `llama` architecture rotates adjacent pairs (x[2i], x[2i+1]) where Hugging Face's
 * layout, and distill's, rotates split halves (x[i], x[i + d/2]). convert_hf_to_gguf.py's
 * `permute` reorders each head's rows so both give the same attention scores:
 * w.reshape(heads, 2, hd/2, in).swapaxes(1, 2) — new row 2j + s of a head is old row s·hd/2 + j.
 */
export function permuteQK(w: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const hd = rows / heads;
  const half = hd / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < half; j++) {
      for (let s = 0; s < 2; s++) {
        const from = (h * hd + s * half + j) * cols;
        const to = (h * hd + 2 * j + s) * cols;
        out.set(w.subarray(from, from + cols), to);
      }
    }
  }
  return out;
}

/** Python's repr of a byte inside b'...', which is how the converter writes RWKV token bytes. */
function rwkvEscape(byte: number): string {
  if (byte === 0x5c) return "\\\\";
  if (byte === 0x09) return "\\t";
  if (byte === 0x0a) return "\\n";
  if (byte === 0x0d) return "\\r";
  if (byte === 0x27) return "\\'";
  if (byte >= 0x20 && byte < 0x7f) return String.fromCharCode(byte);
  return `\\x${byte.toString(16).padStart(2, "0")}`; // llama.cpp's unescape reads lowercase hex only
}

const ESCAPED_SPACE = "\u2581";

/**
 * The vocabulary, in the llama.cpp tokenizer whose own tokenisation of text gives distill's ids:
 * - byte: "rwkv" (greedy longest match over raw bytes; no space escaping, no BOS/EOS added),
 *   one token per byte. SentencePiece ("llama") would turn every space into U+2581's three
 *   bytes, and BPE ("gpt2") comes with default BOS/EOS ids that are ordinary bytes here.
 * - char: "t5" (SentencePiece unigram): one token per character, spaces written as U+2581 as
 *   SentencePiece does, id 0 the unknown token, and an unknown character becomes id 0 as in
 *   distill (a run of unknown characters becomes one id 0: llama.cpp merges them). "llama"
 *   (SentencePiece BPE) would throw on an unknown character, since it falls back to <0xXX>
 *   byte tokens this vocabulary does not have.
 * Token texts must be unique: llama.cpp asserts it while loading (and aborts the process).
 */
function vocabulary(m: LMExportable): [string, Value][] {
  const tok = m.tokenizer;
  const V = m.model.vocab;
  if (tok.kind === "byte") {
    if (V !== 256) throw new UserError(`${m.source}: a byte tokenizer with a ${V}-token output layer; expected 256`);
    const tokens = Array.from({ length: 256 }, (_, b) => rwkvEscape(b));
    return [
      ["tokenizer.ggml.model", { t: "str", v: "rwkv" }],
      ["tokenizer.ggml.tokens", { t: "strs", v: tokens }],
      ["tokenizer.ggml.scores", { t: "f32s", v: new Float32Array(256) }],
      ["tokenizer.ggml.token_type", { t: "i32s", v: new Int32Array(256).fill(TOKEN_NORMAL) }],
      ["tokenizer.ggml.add_bos_token", { t: "bool", v: false }],
      ["tokenizer.ggml.add_eos_token", { t: "bool", v: false }],
    ];
  }
  if (tok.kind === "char") {
    if (V !== tok.chars.length + 1) {
      throw new UserError(`${m.source}: the tokenizer has ${tok.chars.length + 1} tokens but the output layer ${V}`);
    }
    // A corpus holding U+2581 itself keeps the space as " " so that the texts stay unique (llama.cpp
    // then reads a typed space as that character; generation from ids is unaffected).
    const space = tok.chars.includes(ESCAPED_SPACE) ? " " : ESCAPED_SPACE;
    const tokens = ["<unk>", ...tok.chars.map((c) => (c === " " ? space : c))];
    const types = new Int32Array(V).fill(TOKEN_NORMAL);
    types[0] = TOKEN_UNKNOWN;
    return [
      ["tokenizer.ggml.model", { t: "str", v: "t5" }],
      ["tokenizer.ggml.tokens", { t: "strs", v: tokens }],
      ["tokenizer.ggml.scores", { t: "f32s", v: new Float32Array(V) }],
      ["tokenizer.ggml.token_type", { t: "i32s", v: types }],
      ["tokenizer.ggml.unknown_token_id", { t: "u32", v: 0 }],
      // llama.cpp's unigram defaults put EOS at 1 and padding at 0; here id 0 is the only
      // non-character, so it is EOS too (generation stops rather than emitting "unknown").
      ["tokenizer.ggml.eos_token_id", { t: "u32", v: 0 }],
      ["tokenizer.ggml.padding_token_id", { t: "u32", v: 0 }],
      ["tokenizer.ggml.add_bos_token", { t: "bool", v: false }],
      ["tokenizer.ggml.add_eos_token", { t: "bool", v: false }],
      ["tokenizer.ggml.add_space_prefix", { t: "bool", v: false }],
      ["tokenizer.ggml.remove_extra_whitespaces", { t: "bool", v: false }],
    ];
  }
  throw new UserError(`${m.source}: GGUF export supports distill's char and byte tokenizers, not a Hugging Face tokenizer.json`);
}

/** A GGUF v3 file (llama architecture) with the weights in F32 or F16. */
export function exportGguf(m: LMExportable, dtype: "f32" | "f16"): Uint8Array {
  if (dtype !== "f32" && dtype !== "f16") throw new UserError(`GGUF dtype must be "f32" or "f16", got ${JSON.stringify(dtype)}`);
  const spec = m.model.spec;
  const { layers: L, width: D, heads: H, context: C } = spec;
  const F = spec.hidden ?? 4 * D;
  const p = (name: string) => {
    if (!Object.hasOwn(m.params, name)) throw new UserError(`${m.source}: tensor "${name}" is missing`);
    return m.params[name];
  };
  // The converter's F16 rule: 1-D tensors and norms stay F32, matrices become F16.
  const matrix = dtype === "f16" ? GGML_F16 : GGML_F32;
  const tensors: TensorOut[] = [];
  const add = (name: string, from: string, type: TensorOut["type"], permute = false) => {
    const t = p(from);
    const data = permute ? permuteQK(t.data, t.shape[0], t.shape[1], H) : t.data;
    tensors.push({ name, shape: t.shape, type: t.shape.length <= 1 ? GGML_F32 : type, data });
  };
  add("token_embd.weight", "model.embed_tokens.weight", matrix);
  for (let i = 0; i < L; i++) {
    const hf = `model.layers.${i}`;
    const b = `blk.${i}`;
    add(`${b}.attn_norm.weight`, `${hf}.input_layernorm.weight`, GGML_F32);
    add(`${b}.attn_q.weight`, `${hf}.self_attn.q_proj.weight`, matrix, true);
    add(`${b}.attn_k.weight`, `${hf}.self_attn.k_proj.weight`, matrix, true);
    add(`${b}.attn_v.weight`, `${hf}.self_attn.v_proj.weight`, matrix);
    add(`${b}.attn_output.weight`, `${hf}.self_attn.o_proj.weight`, matrix);
    add(`${b}.ffn_norm.weight`, `${hf}.post_attention_layernorm.weight`, GGML_F32);
    add(`${b}.ffn_gate.weight`, `${hf}.mlp.gate_proj.weight`, matrix);
    add(`${b}.ffn_up.weight`, `${hf}.mlp.up_proj.weight`, matrix);
    add(`${b}.ffn_down.weight`, `${hf}.mlp.down_proj.weight`, matrix);
  }
  add("output_norm.weight", "model.norm.weight", GGML_F32);
  // Tied: no output tensor; llama.cpp then reads the head from token_embd, as the converter leaves it.
  if (!spec.tied) add("output.weight", "lm_head.weight", matrix);

  const name = basename(m.source).replace(/\.safetensors$/, "") || "distill student";
  const kv: [string, Value][] = [
    ["general.architecture", { t: "str", v: "llama" }],
    ["general.type", { t: "str", v: "model" }],
    ["general.name", { t: "str", v: name }],
    ["general.alignment", { t: "u32", v: GGUF_ALIGNMENT }],
    ["llama.block_count", { t: "u32", v: L }],
    ["llama.context_length", { t: "u32", v: C }],
    ["llama.embedding_length", { t: "u32", v: D }],
    ["llama.feed_forward_length", { t: "u32", v: F }],
    ["llama.attention.head_count", { t: "u32", v: H }],
    ["llama.attention.head_count_kv", { t: "u32", v: H }],
    ["llama.rope.freq_base", { t: "f32", v: spec.ropeTheta ?? 10000 }],
    ["llama.attention.layer_norm_rms_epsilon", { t: "f32", v: spec.normEps ?? 1e-5 }],
    ["general.file_type", { t: "u32", v: FILE_TYPE[dtype] }],
    ["llama.vocab_size", { t: "u32", v: m.model.vocab }],
    ["llama.rope.dimension_count", { t: "u32", v: D / H }],
    ...vocabulary(m),
    ["general.quantization_version", { t: "u32", v: 2 }],
  ];
  return writeGguf(kv, tensors);
}
