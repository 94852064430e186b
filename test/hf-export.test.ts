// The Hugging Face folder, out and in. Independent readers: @huggingface/tokenizers and
// transformers.js for the tokenizer, transformers.js (with onnxruntime-node) for generation, and
// Python's struct module for F16 bit patterns; distill's own forward for the loaded weights.
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AutoModelForCausalLM, AutoTokenizer, env } from "@huggingface/transformers";
import { initDevice, np, random, tree } from "../src/engine/index.js";
import { saveCheckpoint } from "../src/checkpoint/checkpoint.js";
import { paramsToHost } from "../src/checkpoint/params.js";
import { decodeSafetensors, encodeSafetensors, toFloat32, type HostTensor } from "../src/checkpoint/safetensors.js";
import { loadExportable, type LMExportable } from "../src/export/exportable.js";
import { hfSafetensors, llamaConfig, writeHfFolder } from "../src/export/hf.js";
import { hfTokenizerFiles } from "../src/export/hf-tokenizer.js";
import { loadHfTeacher } from "../src/teachers/hf.js";
import { bytesOnDisk, exportAndMeasure } from "../src/export/deploy.js";
import { generate } from "../src/nn/generate.js";
import { llama, type LanguageModel, type LlamaSpec } from "../src/nn/llama.js";
import type { Params } from "../src/nn/models.js";
import { byteTokenizer, charTokenizer, hfTokenizer, type Tokenizer, type TokenizerJSON } from "../src/text/tokenizer.js";
import { UserError } from "../src/util/errors.js";
import { writeDirAtomic } from "../src/util/fs.js";
import { tempDir } from "./helpers/tmp.js";
import { tinyWhitespaceBpe } from "./helpers/tokenizers.js";

before(async () => {
  await initDevice("wasm");
});

const CORPUS = "the cat sat on the mat.\nthe dog ate the hat!\n  a tab\there, é and 😀.\n";
// Unknown characters (Z, ö, ✓), an astral character, runs of spaces and newlines, and "<unk>"
// spelled out (which must stay five characters, not become the unknown token).
const SAMPLE = "the Zöö cat ✓ 😀😀  \n\n\tsat <unk> on\uFFFDthe mat";

/** A small whitespace BPE with an unknown token, standing in for a real Hugging Face tokenizer. */
function tinyHfTokenizer(): Tokenizer {
  return hfTokenizer(
    tinyWhitespaceBpe({ withThe: true }),
    { clean_up_tokenization_spaces: false },
  );
}

function writeJson(path: string, x: unknown): void {
  writeFileSync(path, JSON.stringify(x, null, 2));
}

describe("tokenizer.json reproduces distill's ids", () => {
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  const cases: [string, Tokenizer, string][] = [
    ["char", charTokenizer(CORPUS), SAMPLE],
    // A corpus that holds U+FFFD itself: the unknown token must then be spelled differently.
    ["char-fffd", charTokenizer(CORPUS + "\uFFFD"), SAMPLE],
    ["byte", byteTokenizer(), SAMPLE],
    ["hf", tinyHfTokenizer(), "hug the hugs! thus"],
  ];
  for (const [name, tok, sample] of cases) {
    test(`${name}: @huggingface/tokenizers and transformers.js' AutoTokenizer encode and decode as distill does`, async () => {
      const root = tempDir("distill-hftok-");
      const files = hfTokenizerFiles(tok.toJSON());
      mkdirSync(join(root, name));
      writeJson(join(root, name, "tokenizer.json"), files.tokenizer);
      writeJson(join(root, name, "tokenizer_config.json"), files.config);
      const ids = Array.from(tok.encode(sample));
      assert.ok(ids.length > 5);
      if (name.startsWith("char")) assert.ok(ids.includes(0), "the sample has unknown characters");
      // Through the written files' JSON (not the objects in memory).
      const lib = hfTokenizer(JSON.parse(readFileSync(join(root, name, "tokenizer.json"), "utf8")), files.config);
      assert.deepEqual(Array.from(lib.encode(sample)), ids);
      assert.equal(lib.vocabSize, tok.vocabSize);
      env.localModelPath = root + "/";
      const tjs = await AutoTokenizer.from_pretrained(name);
      assert.deepEqual(tjs.encode(sample), ids, "transformers.js adds no special tokens and splits as distill");
      const decoded = tok.decode(ids);
      assert.equal(lib.decode(ids), decoded);
      assert.equal(tjs.decode(ids), decoded);
    });
  }
});

describe("safetensors F16 and BF16", () => {
  test("every F16 bit pattern widens to the float Python's struct gives", (t) => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const py = spawnSync("python3", ["-c", "import sys,struct; v=struct.unpack('<65536e', sys.stdin.buffer.read()); sys.stdout.buffer.write(struct.pack('<65536f', *v))"], {
      input: Buffer.from(all.buffer),
      maxBuffer: 1 << 20,
    });
    if (py.status !== 0) return t.skip("python3 not available");
    const want = new Float32Array(new Uint8Array(py.stdout).buffer);
    const got = toFloat32({ dtype: "F16", shape: [65536], data: all })!;
    for (let i = 0; i < 65536; i++) {
      if (Number.isNaN(want[i])) assert.ok(Number.isNaN(got[i]), `pattern ${i}`);
      else assert.equal(got[i], want[i], `pattern 0x${i.toString(16)}`);
    }
  });

  test("BF16 is the top half of the float32 bits; both round trip through the file format", () => {
    const f = Float32Array.from([1, -2.5, 3.140625, 1e-3, -65504, 0]);
    const hi = new Uint16Array(new Uint32Array(f.buffer).map((b) => b >>> 16));
    const bytes = encodeSafetensors({ w: { dtype: "BF16", shape: [2, 3], data: hi } });
    const back = decodeSafetensors(bytes, "bf16.safetensors").tensors.w;
    assert.equal(back.dtype, "BF16");
    const wide = toFloat32(back)!;
    // Exactly the float32 with the low 16 bits cleared.
    const expect = new Float32Array(new Uint32Array(f.buffer).map((b) => b & 0xffff0000).buffer);
    assert.deepEqual(Array.from(wide), Array.from(expect));
    assert.equal(wide[0], 1);
    assert.equal(wide[2], 3.140625);
    assert.equal(toFloat32({ dtype: "I32", shape: [1], data: new Int32Array(1) }), null);
  });
});

// ---------------------------------------------------------------------------------------------
// A tiny distill LM: random weights scaled up so its distributions are peaked (greedy decoding
// then has clear winners, and a wrong layout changes the argmax).

const SPEC: LlamaSpec = { type: "llama", layers: 2, width: 16, heads: 2, context: 48, normEps: 1e-5, ropeTheta: 10000 };

async function tinyLM(dir: string, opts: { tied?: boolean; tok?: Tokenizer; seed?: number } = {}): Promise<{ path: string; m: LMExportable; tok: Tokenizer }> {
  const tok = opts.tok ?? charTokenizer(CORPUS);
  const spec = { ...SPEC, tied: opts.tied ?? false };
  const model = llama(spec, tok.vocabSize);
  const params = model.init(random.key(opts.seed ?? 1));
  const host = await paramsToHost(params);
  tree.dispose(params);
  for (const [name, t] of Object.entries(host)) {
    const d = t.data as Float32Array;
    // Norm weights away from 1, projections 15× HF's init: every part of the layout matters.
    for (let i = 0; i < d.length; i++) d[i] = name.endsWith("norm.weight") ? 1 + 0.3 * Math.sin(i + name.length) : d[i] * 15;
  }
  const path = join(dir, `lm-${opts.tied ? "tied" : "untied"}-${tok.kind}.safetensors`);
  saveCheckpoint(path, { tensors: host, config: { role: "scratch", model: spec, tokenizer: tok.toJSON() as TokenizerJSON }, state: { done: true } });
  const m = loadExportable(path);
  assert.equal(m.family, "lm");
  return { path, m: m as LMExportable, tok };
}

function paramsOf(m: LMExportable): Params {
  return Object.fromEntries(m.model.shapes.map(([name, shape]) => [name, np.array(m.params[name].data).reshape(shape)]));
}

async function logits(model: LanguageModel, params: Params, ids: Int32Array): Promise<Float32Array> {
  return (await model.apply(tree.ref(params), np.array(ids, { dtype: np.int32 }).reshape([1, ids.length])).data()) as Float32Array;
}

/** The folder's parts written by hand (no ONNX), for the loader's tests. */
function writeFolderByHand(dir: string, m: LMExportable): string {
  mkdirSync(dir, { recursive: true });
  const files = hfTokenizerFiles(m.tokenizer);
  writeJson(join(dir, "config.json"), llamaConfig(m));
  writeFileSync(join(dir, "model.safetensors"), hfSafetensors(m));
  writeJson(join(dir, "tokenizer.json"), files.tokenizer);
  writeJson(join(dir, "tokenizer_config.json"), files.config);
  return dir;
}

describe("LM folder: config, weights, loader", () => {
  test("config.json states the Llama layout; model.safetensors has HF's names, format pt, no lm_head when tied", async () => {
    const dir = tempDir("distill-hf-");
    for (const tied of [false, true]) {
      const { m } = await tinyLM(dir, { tied });
      const cfg = llamaConfig(m);
      assert.deepEqual(cfg.architectures, ["LlamaForCausalLM"]);
      assert.equal(cfg.model_type, "llama");
      assert.equal(cfg.hidden_size, 16);
      assert.equal(cfg.intermediate_size, 64);
      assert.equal(cfg.num_attention_heads, 2);
      assert.equal(cfg.num_key_value_heads, 2);
      assert.equal(cfg.head_dim, 8);
      assert.equal(cfg.max_position_embeddings, 48);
      assert.equal(cfg.vocab_size, m.model.vocab);
      assert.equal(cfg.tie_word_embeddings, tied);
      const { tensors, metadata } = decodeSafetensors(hfSafetensors(m), "model.safetensors");
      assert.deepEqual(metadata, { format: "pt" });
      assert.equal(Object.hasOwn(tensors, "lm_head.weight"), !tied);
      assert.deepEqual(Object.keys(tensors).sort(), m.model.shapes.map(([n]) => n).sort());
      assert.deepEqual(tensors["model.layers.1.mlp.down_proj.weight"].shape, [16, 64]);
    }
  });

  for (const [what, tokOf] of [
    ["char", () => charTokenizer(CORPUS)],
    ["byte", () => byteTokenizer()],
    ["hf", () => tinyHfTokenizer()],
  ] as const) {
    for (const tied of [false, true]) {
      test(`export → loadHfTeacher: identical weights and logits, the same tokenizer kind (${what}, ${tied ? "tied" : "untied"})`, async () => {
        const dir = tempDir("distill-hf-");
        const { m, tok } = await tinyLM(dir, { tied, tok: tokOf() });
        const folder = join(dir, "hf");
        await writeHfFolder(m, folder);
        const t = loadHfTeacher(folder);
        assert.deepEqual(t.spec, { ...m.model.spec, hidden: 64, tied });
        assert.equal(t.tokenizer.kind, tok.kind, "a folder distill wrote gives back distill's own tokenizer kind");
        assert.equal(t.tokenizer.vocabSize, tok.vocabSize);
        assert.deepEqual(Array.from(t.tokenizer.encode(SAMPLE)), Array.from(tok.encode(SAMPLE)));
        const ids = tok.encode(CORPUS).slice(0, 40);
        const want = await logits(m.model, paramsOf(m), ids);
        const got = await logits(t.model, t.params, ids);
        assert.deepEqual(got, want);
        tree.dispose(t.params);
      });
    }
  }

  test("a tokenizer.json changed after export is read as an hf tokenizer, not as distill's char tokenizer", async () => {
    const dir = tempDir("distill-hf-");
    const { m } = await tinyLM(dir);
    const folder = writeFolderByHand(join(dir, "hf"), m);
    const tj = JSON.parse(readFileSync(join(folder, "tokenizer.json"), "utf8"));
    tj.normalizer = { type: "Lowercase" };
    writeJson(join(folder, "tokenizer.json"), tj);
    const t = loadHfTeacher(folder);
    assert.equal(t.tokenizer.kind, "hf");
    tree.dispose(t.params);
  });

  test("sharded weights (model.safetensors.index.json), F16 and BF16 tensors load as F32", async (t) => {
    const dir = tempDir("distill-hf-");
    const { m } = await tinyLM(dir);
    // Weights on a grid of 1/256 below 1 in magnitude: exact in F16 and BF16, so the loaded model
    // must equal the F32 one exactly.
    for (const p of Object.values(m.params)) for (let i = 0; i < p.data.length; i++) p.data[i] = Math.max(-255, Math.min(255, Math.round(p.data[i] * 256))) / 256;
    const folder = writeFolderByHand(join(dir, "hf"), m);
    const names = m.model.shapes.map(([n]) => n);
    const half = names.slice(0, 7);
    const f16 = spawnSync("python3", ["-c", "import sys,struct; b=sys.stdin.buffer.read(); n=len(b)//4; sys.stdout.buffer.write(struct.pack('<%de'%n, *struct.unpack('<%df'%n, b)))"], {
      input: Buffer.concat(half.map((n) => Buffer.from(m.params[n].data.buffer, m.params[n].data.byteOffset, m.params[n].data.byteLength))),
      maxBuffer: 1 << 24,
    });
    if (f16.status !== 0) return t.skip("python3 not available");
    const halves = new Uint16Array(new Uint8Array(f16.stdout).buffer);
    const shard1: Record<string, HostTensor> = {};
    let off = 0;
    for (const n of half) {
      const len = m.params[n].data.length;
      shard1[n] = { dtype: "F16", shape: m.params[n].shape, data: halves.slice(off, off + len) };
      off += len;
    }
    const shard2: Record<string, HostTensor> = {};
    for (const n of names.slice(7)) {
      const f = m.params[n].data;
      shard2[n] = { dtype: "BF16", shape: m.params[n].shape, data: new Uint16Array(new Uint32Array(f.buffer, f.byteOffset, f.length).map((b) => b >>> 16)) };
    }
    rmSync(join(folder, "model.safetensors"));
    writeFileSync(join(folder, "model-00001-of-00002.safetensors"), encodeSafetensors(shard1, { format: "pt" }));
    writeFileSync(join(folder, "model-00002-of-00002.safetensors"), encodeSafetensors(shard2, { format: "pt" }));
    const weight_map = Object.fromEntries([...half.map((n) => [n, "model-00001-of-00002.safetensors"]), ...names.slice(7).map((n) => [n, "model-00002-of-00002.safetensors"])]);
    writeJson(join(folder, "model.safetensors.index.json"), { metadata: {}, weight_map });
    const loaded = loadHfTeacher(folder);
    const ids = charTokenizer(CORPUS).encode(CORPUS).slice(0, 30);
    assert.deepEqual(await logits(loaded.model, loaded.params, ids), await logits(m.model, paramsOf(m), ids));
    tree.dispose(loaded.params);
  });
});

describe("loadHfTeacher: bad folders are one line naming the file, field and value", () => {
  let good = "";
  let m: LMExportable;
  before(async () => {
    const dir = tempDir("distill-hf-bad-");
    m = (await tinyLM(dir)).m;
    good = writeFolderByHand(join(dir, "good"), m);
  });
  let n = 0;
  /** A copy of the good folder with `edit` applied. */
  function variant(edit: (dir: string) => void): string {
    const dir = join(good, "..", `v${n++}`);
    writeFolderByHand(dir, m);
    edit(dir);
    return dir;
  }
  const editConfig = (fields: Record<string, unknown>) => (dir: string) => {
    const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    writeJson(join(dir, "config.json"), { ...cfg, ...fields });
  };
  function refuses(dir: string, ...parts: (string | RegExp)[]): void {
    assert.throws(
      () => loadHfTeacher(dir),
      (e: unknown) => {
        assert.ok(e instanceof UserError, String(e));
        assert.ok(!e.message.includes("\n"), `one line: ${e.message}`);
        for (const p of parts) assert.ok(typeof p === "string" ? e.message.includes(p) : p.test(e.message), `${JSON.stringify(e.message)} should mention ${p}`);
        return true;
      },
    );
  }

  test("the good folder loads, also without architectures when model_type is llama", () => {
    tree.dispose(loadHfTeacher(good).params);
    tree.dispose(loadHfTeacher(variant(editConfig({ architectures: undefined }))).params);
  });
  test("unsupported configurations name the field and its value", () => {
    refuses(variant(editConfig({ num_key_value_heads: 1 })), "config.json", "num_key_value_heads 1", "grouped-query");
    refuses(variant(editConfig({ rope_scaling: { rope_type: "linear", factor: 2 } })), "config.json", "rope_scaling", "linear");
    refuses(variant(editConfig({ hidden_act: "gelu" })), "config.json", 'hidden_act "gelu"');
    refuses(variant(editConfig({ attention_bias: true })), "config.json", "attention_bias true");
    refuses(variant(editConfig({ mlp_bias: true })), "config.json", "mlp_bias true");
    refuses(variant(editConfig({ architectures: ["MistralForCausalLM"] })), "config.json", "architectures", "MistralForCausalLM");
    refuses(variant(editConfig({ architectures: null, model_type: "mistral" })), "config.json", 'model_type "mistral"');
    refuses(variant(editConfig({ head_dim: 4 })), "config.json", "head_dim 4");
    refuses(variant(editConfig({ rope_parameters: { rope_type: "yarn", factor: 4 } })), "config.json", "rope_type", "yarn");
    refuses(variant(editConfig({ hidden_size: "16" })), "config.json", 'hidden_size "16"');
    refuses(variant(editConfig({ vocab_size: m.model.vocab + 3 })), "config.json", `vocab_size ${m.model.vocab + 3}`, `${m.model.vocab} tokens`);
  });
  test("truncated or corrupt files name the file", () => {
    const cut = (file: string, keep: (n: number) => number) => (dir: string) => {
      const b = readFileSync(join(dir, file));
      writeFileSync(join(dir, file), b.subarray(0, keep(b.length)));
    };
    refuses(variant(cut("model.safetensors", (n) => n - 100)), "model.safetensors", /truncated/);
    refuses(variant(cut("model.safetensors", () => 5)), "model.safetensors");
    refuses(variant(cut("config.json", (n) => n >> 1)), "config.json", "not valid JSON");
    refuses(variant(cut("tokenizer.json", (n) => n >> 1)), "tokenizer.json", "not valid JSON");
    refuses(variant((d) => writeFileSync(join(d, "config.json"), "[1, 2]")), "config.json", "not a JSON object");
  });
  test("missing pieces name what is missing", async () => {
    refuses(variant((d) => rmSync(join(d, "model.safetensors"))), "no model.safetensors");
    refuses(variant((d) => rmSync(join(d, "tokenizer.json"))), "no tokenizer.json");
    refuses(variant((d) => rmSync(join(d, "config.json"))), "no config.json");
    refuses(join(good, "nope"), "no such folder");
    refuses(join(good, "config.json"), "not a folder");
    // A weight the config implies but the file lacks.
    refuses(
      variant((d) => {
        const { tensors } = decodeSafetensors(readFileSync(join(d, "model.safetensors")), "x");
        delete tensors["model.layers.1.mlp.up_proj.weight"];
        writeFileSync(join(d, "model.safetensors"), encodeSafetensors(tensors, { format: "pt" }));
      }),
      '"model.layers.1.mlp.up_proj.weight"',
    );
    // A shard outside the folder is not followed.
    refuses(
      variant((d) => {
        rmSync(join(d, "model.safetensors"));
        writeJson(join(d, "model.safetensors.index.json"), { weight_map: { "model.norm.weight": "../good/model.safetensors" } });
      }),
      "model.safetensors.index.json",
      "not a .safetensors file in this folder",
    );
  });
});

test("a run's export: [hf] writes the folder whole and replaces its own on a rerun", async () => {
  const dir = tempDir("distill-hf-deploy-");
  const { m } = await tinyLM(dir, { tied: true });
  const timing = { warmup: 0, minReps: 1, minMs: 0, maxReps: 1 };
  const a = await exportAndMeasure(m, ["hf"], join(dir, "run"), () => {}, timing);
  assert.equal(a.bytes.hf, bytesOnDisk(join(dir, "run", "hf")));
  assert.ok(existsSync(join(dir, "run", "hf", "onnx", "model.onnx")));
  const b = await exportAndMeasure(m, ["hf"], join(dir, "run"), () => {}, timing);
  assert.equal(b.bytes.hf, a.bytes.hf);
  assert.deepEqual(readdirSync(join(dir, "run")).filter((f) => f.startsWith(".")), []);
});

describe("writeDirAtomic", () => {
  test("an existing folder is refused without replace; a failed fill leaves it and no temporary folder", async () => {
    const root = tempDir("distill-dir-");
    const dir = join(root, "out");
    mkdirSync(dir);
    writeFileSync(join(dir, "mine.txt"), "the user's");
    await assert.rejects(writeDirAtomic(dir, () => {}), (e: unknown) => e instanceof UserError && /already exists/.test(e.message));
    await assert.rejects(
      writeDirAtomic(
        dir,
        (tmp) => {
          writeFileSync(join(tmp, "half.bin"), "x");
          throw new Error("boom");
        },
        { replace: true },
      ),
      /boom/,
    );
    assert.deepEqual(readdirSync(root), ["out"]);
    assert.deepEqual(readdirSync(dir), ["mine.txt"]);
    await writeDirAtomic(dir, (tmp) => writeFileSync(join(tmp, "new.txt"), "new"), { replace: true });
    assert.deepEqual(readdirSync(root), ["out"]);
    assert.deepEqual(readdirSync(dir), ["new.txt"]);
    // An empty folder (made beforehand by the user) holds nothing to lose.
    const empty = join(root, "empty");
    mkdirSync(empty);
    await writeDirAtomic(empty, (tmp) => writeFileSync(join(tmp, "a.txt"), "a"));
    assert.deepEqual(readdirSync(empty), ["a.txt"]);
  });
});

describe("transformers.js runs the exported LM student", () => {
  for (const [what, tokOf, tied, prompt] of [
    ["char, untied", () => charTokenizer(CORPUS), false, "the cat sat"],
    ["byte, tied", () => byteTokenizer(), true, "the cat sat"],
    ["hf, untied", () => tinyHfTokenizer(), false, "hug the hugs! thus"],
  ] as const) {
    test(`AutoModelForCausalLM (onnx/model.onnx, fp32) greedy-continues a prompt as distill does, ≥ 20 tokens (${what})`, async () => {
      const root = tempDir("distill-hf-tjs-");
      const { m, tok } = await tinyLM(root, { tied, tok: tokOf(), seed: 3 });
      const folder = join(root, "student-hf");
      const written = await writeHfFolder(m, folder);
      assert.deepEqual(
        written.files.map((f) => f.name),
        ["config.json", "generation_config.json", "model.safetensors", "onnx/model.onnx", "tokenizer.json", "tokenizer_config.json"],
      );
      assert.ok(existsSync(join(folder, "onnx", "model.onnx")));
      assert.deepEqual(readdirSync(root).filter((f) => f.startsWith(".")), [], "no temporary folder left");

      const promptIds = tok.encode(prompt);
      const n = 24;
      const params = paramsOf(m);
      const [ours] = await generate(m.model, params, [promptIds], n, { temperature: 0, seed: 0 });
      // Every greedy step must have a clear winner, or the comparison would rest on rounding.
      const full = await logits(m.model, params, ours.slice(0, -1));
      const V = m.model.vocab;
      for (let pos = promptIds.length - 1; pos < ours.length - 1; pos++) {
        const row = Array.from(full.subarray(pos * V, (pos + 1) * V)).sort((a, b) => b - a);
        assert.ok(row[0] - row[1] > 1e-3, `position ${pos}: top-2 margin ${row[0] - row[1]}`);
      }
      tree.dispose(params);

      env.allowRemoteModels = false;
      env.allowLocalModels = true;
      env.localModelPath = root + "/";
      const tjsTok = await AutoTokenizer.from_pretrained("student-hf");
      const model = await AutoModelForCausalLM.from_pretrained("student-hf", { dtype: "fp32", device: "cpu" });
      const inputs = tjsTok(prompt);
      assert.deepEqual(Array.from(inputs.input_ids.data as BigInt64Array, Number), Array.from(promptIds));
      const out = (await model.generate({ ...inputs, max_new_tokens: n, do_sample: false })) as { data: BigInt64Array; dims: number[] };
      const theirs = Array.from(out.data, Number);
      assert.equal(theirs.length, promptIds.length + n);
      assert.deepEqual(theirs, Array.from(ours), `transformers.js ${JSON.stringify(tok.decode(theirs))} vs distill ${JSON.stringify(tok.decode(ours))}`);
      await model.dispose();
    });
  }
});
