// The BERT encoder against an independent float64 PyTorch forward written from Hugging Face's
// modeling_bert (test/reference/bert_ref.py), fed the same random parameters and padded ids:
// logits, every hidden state, attention and value at unpadded positions, and the gradient of a
// weighted sum of the logits with respect to every parameter. Also: padding is honoured, the
// head reads [CLS], dropout acts only in training, DistilBERT's initialisation from the teacher.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { initDevice, jit, liveBuffers, np, random, tree, valueAndGrad, type Arr } from "../src/engine/index.js";
import { bert, everyOtherLayer, initFromTeacher, type BertSpec } from "../src/nn/bert.js";
import { buildModel, paramCount, type InputShape, type Params } from "../src/nn/models.js";
import type { HostTensor } from "../src/checkpoint/safetensors.js";
import { paramsToHost } from "../src/checkpoint/params.js";
import { UserError } from "../src/util/errors.js";
import { Rng } from "../src/util/rng.js";
import { tempDir } from "./helpers/tmp.js";

const PYTHON = "/usr/bin/python3";
const SCRIPT = fileURLToPath(new URL("./reference/bert_ref.py", import.meta.url));
const torchCheck = spawnSync(PYTHON, ["-c", "import torch"], { encoding: "utf8" });
const SKIP = torchCheck.status === 0 ? false : `PyTorch cannot be imported by ${PYTHON} (Debian's python3-torch): BERT cross-check skipped`;

before(async () => {
  await initDevice("wasm");
});

const PAD = 0;
const INPUT: InputShape = { height: 1, width: 8, channels: 1, classes: 3, text: { vocab: 13, length: 8, padId: PAD } };
const SPEC: BertSpec = { type: "bert", layers: 2, hidden: 8, heads: 2, intermediate: 16, dropout: 0.1 };
// Rows of different lengths ([CLS] = 2 … [SEP] = 3, then padding); one row without padding.
const IDS = [
  [2, 5, 7, 9, 3, 0, 0, 0],
  [2, 11, 3, 0, 0, 0, 0, 0],
  [2, 4, 6, 8, 10, 12, 1, 3],
];
const LENS = [5, 3, 8];
const B = IDS.length;
const L = INPUT.text!.length;

/** Random parameters drawn on the host, large enough that every nonlinearity matters. */
function randomParams(shapes: [string, number[]][], seed: number): Record<string, Float32Array> {
  const rng = new Rng(seed);
  const out: Record<string, Float32Array> = {};
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const u = () => 2 * (rng.nextU32() / 4294967296) - 1;
    out[name] = Float32Array.from({ length: n }, () => (name.endsWith("LayerNorm.weight") ? 1 + 0.3 * u() : 0.5 * u()));
  }
  return out;
}

const toDevice = (host: Record<string, Float32Array>, shapes: [string, number[]][]): Params =>
  Object.fromEntries(shapes.map(([n, s]) => [n, np.array(host[n]).reshape(s)]));
const idsArr = (rows: number[][]) => np.array(Float32Array.from(rows.flat())).reshape([rows.length, rows[0].length]);
const vals = async (a: Arr) => Float32Array.from((await a.data()) as Float32Array);

test("HF BertForSequenceClassification names, shapes and parameter count", () => {
  const m = bert(SPEC, INPUT);
  const s = Object.fromEntries(m.shapes);
  assert.deepEqual(s["bert.embeddings.word_embeddings.weight"], [13, 8]);
  assert.deepEqual(s["bert.embeddings.position_embeddings.weight"], [8, 8]);
  assert.deepEqual(s["bert.embeddings.token_type_embeddings.weight"], [2, 8]);
  assert.deepEqual(s["bert.encoder.layer.1.intermediate.dense.weight"], [16, 8]);
  assert.deepEqual(s["bert.encoder.layer.1.output.dense.weight"], [8, 16]);
  assert.deepEqual(s["bert.encoder.layer.0.attention.output.LayerNorm.bias"], [8]);
  assert.deepEqual(s["classifier.weight"], [3, 8]);
  // HF's count for these sizes: embeddings (V + L + 2)·D + 2D; per layer 4(D² + D) + 2·2D + 2·D·F + F + D; pooler D² + D; classifier C·D + C.
  const D = 8, F = 16, V = 13, C = 3;
  const perLayer = 4 * (D * D + D) + 4 * D + 2 * D * F + F + D;
  assert.equal(paramCount(m), (V + L + 2) * D + 2 * D + 2 * perLayer + D * D + D + C * D + C);
  assert.equal(buildModel(SPEC, INPUT).name, m.name);
  // The trainer gives dropout keys only when spec.dropout > 0: BERT's default must show there.
  assert.equal(bert({ type: "bert", layers: 1, hidden: 8, heads: 2, intermediate: 16 }, INPUT).spec.dropout, 0.1);
  assert.throws(() => bert({ ...SPEC, heads: 3 }, INPUT), UserError);
  assert.throws(() => bert(SPEC, { ...INPUT, text: undefined }), UserError);
});

test("init as HF: N(0, 0.02) weights, zero biases, LayerNorm 1/0, the padding embedding row zero", async () => {
  const m = bert({ ...SPEC, hidden: 32, heads: 4, intermediate: 64 }, INPUT);
  const host = await paramsToHost(m.init(random.key(1)));
  const q = host["bert.encoder.layer.0.attention.self.query.weight"].data as Float32Array;
  const mean = q.reduce((a, b) => a + b, 0) / q.length;
  const sd = Math.sqrt(q.reduce((a, b) => a + (b - mean) ** 2, 0) / q.length);
  assert.ok(Math.abs(sd - 0.02) < 0.003, `sd ${sd}`);
  assert.ok((host["classifier.bias"].data as Float32Array).every((v) => v === 0));
  assert.ok((host["bert.embeddings.LayerNorm.weight"].data as Float32Array).every((v) => v === 1));
  const word = host["bert.embeddings.word_embeddings.weight"].data as Float32Array;
  assert.ok(word.subarray(PAD * 32, PAD * 32 + 32).every((v) => v === 0));
  assert.ok(word.subarray(32, 64).some((v) => v !== 0));
});

test("forward, attentions, values and gradients equal PyTorch's float64 BERT at unpadded positions", { skip: SKIP }, async () => {
  const m = bert(SPEC, INPUT);
  const host = randomParams(m.shapes, 7);
  const rng = new Rng(11);
  const coeff = Array.from({ length: B }, () => Array.from({ length: 3 }, () => 2 * (rng.nextU32() / 4294967296) - 1));
  const dir = tempDir("bert-ref-");
  const cfg = { layers: SPEC.layers, hidden: SPEC.hidden, heads: SPEC.heads, intermediate: SPEC.intermediate, padId: PAD };
  const params = Object.fromEntries(m.shapes.map(([n, s]) => [n, { shape: s, data: Array.from(host[n]) }]));
  writeFileSync(join(dir, "in.json"), JSON.stringify({ config: cfg, params, ids: IDS, coeff }));
  const py = spawnSync(PYTHON, [SCRIPT, join(dir, "in.json"), join(dir, "out.json")], { encoding: "utf8", env: { ...process.env, OMP_NUM_THREADS: "1" } });
  assert.equal(py.status, 0, `bert_ref.py failed:\n${py.stderr}`);
  const ref = JSON.parse(readFileSync(join(dir, "out.json"), "utf8")) as {
    logits: number[]; hidden: number[][]; attentions: number[][]; values: number[][]; grads: Record<string, number[]>;
  };

  const f = m.features(toDevice(host, m.shapes), idsArr(IDS), { train: false });
  const close = (got: Float32Array, want: number[], at: (i: number) => boolean, what: string) => {
    let worst = 0;
    for (let i = 0; i < want.length; i++) if (at(i)) worst = Math.max(worst, Math.abs(got[i] - want[i]));
    assert.ok(worst < 1e-4, `${what}: max |diff| ${worst}`);
  };
  close(await vals(f.logits), ref.logits, () => true, "logits");
  const D = SPEC.hidden, H = SPEC.heads, hd = D / H;
  assert.equal(f.hidden.length, SPEC.layers + 1);
  for (let i = 0; i <= SPEC.layers; i++) {
    close(await vals(f.hidden[i]), ref.hidden[i], (j) => Math.floor(j / D) % L < LENS[Math.floor(j / (L * D))], `hidden[${i}]`);
  }
  for (let i = 0; i < SPEC.layers; i++) {
    // [B, H, L(query), L(key)]: unpadded queries, every key (padded keys are 0 in both).
    const att = await vals(f.attentions[i]);
    close(att, ref.attentions[i], (j) => Math.floor(j / L) % L < LENS[Math.floor(j / (H * L * L))], `attentions[${i}]`);
    for (let b = 0; b < B; b++) for (let q = LENS[b]; q < L && q < LENS[b] + 1; q++) for (let k = LENS[b]; k < L; k++) assert.equal(att[((b * H) * L + 0) * L + k], 0);
    close(await vals(f.values[i]), ref.values[i], (j) => Math.floor(j / hd) % L < LENS[Math.floor(j / (H * L * hd))], `values[${i}]`);
  }
  assert.deepEqual(Array.from(await vals(f.mask)), IDS.flat().map((t) => (t === PAD ? 0 : 1)));

  // Gradients of sum(logits · coeff), through jit as the trainer takes them.
  const c = np.array(Float32Array.from(coeff.flat())).reshape([B, 3]);
  // train: true is the path a gradient takes (the one-hot embedding; inference gathers), here
  // without dropout so it is the same function as PyTorch's eval forward.
  const m0 = bert({ ...SPEC, dropout: 0 }, INPUT);
  const lossFn = (p: Params, x: Arr, w: Arr) => m0.apply(p, x, { train: true }).mul(w).sum();
  const [, grads] = jit(valueAndGrad(lossFn))(toDevice(host, m.shapes), idsArr(IDS), c) as [Arr, Params];
  for (const [name] of m.shapes) {
    const g = await vals(grads[name]);
    assert.ok(g.every(Number.isFinite), `${name}: non-finite gradient`);
    const scale = Math.max(1, ...ref.grads[name].map(Math.abs));
    close(g.map((v) => v / scale), ref.grads[name].map((v) => v / scale), () => true, `grad ${name}`);
  }
});

test("padding is honoured: the padding embedding and padded positions change no logit; the head reads [CLS]", async () => {
  const m = bert({ ...SPEC, dropout: 0 }, INPUT);
  const host = randomParams(m.shapes, 3);
  const run = async (h: Record<string, Float32Array>, rows: number[][], model = m) => vals(model.apply(toDevice(h, model.shapes), idsArr(rows), { train: false }));
  const base = await run(host, IDS);
  // A different padding embedding row reaches nothing but padded positions.
  const word = host["bert.embeddings.word_embeddings.weight"].slice();
  for (let j = 0; j < SPEC.hidden; j++) word[PAD * SPEC.hidden + j] += 5;
  const moved = await run({ ...host, "bert.embeddings.word_embeddings.weight": word }, IDS);
  for (let i = 0; i < base.length; i++) assert.ok(Math.abs(base[i] - moved[i]) < 1e-5, `logit ${i}: ${base[i]} vs ${moved[i]}`);
  // The image layout [B, 1, L, 1] reads the same rows.
  const image = await vals(m.apply(toDevice(host, m.shapes), idsArr(IDS).reshape([B, 1, L, 1]), { train: false }));
  assert.deepEqual(image, base);
  // Shorter inputs (the first 5 positions only) give row 0 the same logits as its padded form.
  const short = await run(host, IDS.map((r) => r.slice(0, 5)));
  for (let k = 0; k < 3; k++) assert.ok(Math.abs(short[k] - base[k]) < 1e-5);
  // Changing the last real token of row 1 changes its logits (the check above can fail).
  const other = await run(host, [IDS[0], [2, 12, 3, 0, 0, 0, 0, 0], IDS[2]]);
  assert.ok([0, 1, 2].some((k) => Math.abs(other[3 + k] - base[3 + k]) > 1e-4));

  // The head is classifier(tanh(pooler(h_last[:, 0]))), recomputed on the host from features.
  const f = m.features(toDevice(host, m.shapes), idsArr(IDS), { train: false });
  const last = await vals(f.hidden[SPEC.layers]);
  const logits = await vals(f.logits);
  for (const a of [...f.hidden.slice(0, -1), ...f.attentions, ...f.values, f.mask]) a.dispose();
  const D = SPEC.hidden;
  const pw = host["bert.pooler.dense.weight"], pb = host["bert.pooler.dense.bias"];
  const cw = host["classifier.weight"], cb = host["classifier.bias"];
  for (let b = 0; b < B; b++) {
    const cls = last.subarray(b * L * D, b * L * D + D);
    const pooled = Array.from({ length: D }, (_, o) => Math.tanh(pb[o] + cls.reduce((s, v, i) => s + v * pw[o * D + i], 0)));
    for (let k = 0; k < 3; k++) {
      const want = cb[k] + pooled.reduce((s, v, i) => s + v * cw[k * D + i], 0);
      assert.ok(Math.abs(logits[b * 3 + k] - want) < 1e-5);
    }
  }
});

test("dropout only in training: eval ignores the key; training with different keys differs", async () => {
  const m = bert({ ...SPEC, dropout: 0.3 }, INPUT);
  const p = m.init(random.key(0));
  const run = (ctx: { train: boolean; key?: Arr }) => vals(m.apply(tree.ref(p), idsArr(IDS), ctx));
  const evalA = await run({ train: false });
  const evalB = await run({ train: false, key: random.key(5) });
  assert.deepEqual(evalA, evalB);
  const trainA = await run({ train: true, key: random.key(5) });
  const trainA2 = await run({ train: true, key: random.key(5) });
  const trainB = await run({ train: true, key: random.key(6) });
  assert.deepEqual(trainA, trainA2);
  assert.ok(trainA.some((v, i) => Math.abs(v - evalA[i]) > 1e-6));
  assert.ok(trainA.some((v, i) => Math.abs(v - trainB[i]) > 1e-6));
  tree.dispose(p);
});

test("training gradients (dropout on) are finite and reach the embeddings", async () => {
  const m = bert(SPEC, INPUT);
  const loss = (p: Params, x: Arr, key: Arr) => m.apply(p, x, { train: true, key }).mul(0.5).sum();
  const [v, g] = jit(valueAndGrad(loss))(m.init(random.key(2)), idsArr(IDS), random.key(9)) as [Arr, Params];
  assert.ok(Number.isFinite((await vals(v))[0]));
  for (const [name, a] of Object.entries(g)) assert.ok((await vals(a)).every(Number.isFinite), name);
});

test("DistilBERT initialisation: every other teacher block, embeddings and head copied; widths checked", () => {
  assert.deepEqual(everyOtherLayer(6, 3), [0, 2, 4]);
  assert.deepEqual(everyOtherLayer(4, 2), [0, 2]);
  assert.throws(() => everyOtherLayer(4, 3), UserError);
  const teacher: BertSpec = { ...SPEC, layers: 4 };
  const student: BertSpec = { ...SPEC, layers: 2 };
  const tm = bert(teacher, INPUT);
  const sm = bert(student, INPUT);
  const raw = randomParams(tm.shapes, 5);
  const t: Record<string, HostTensor> = Object.fromEntries(tm.shapes.map(([n, s]) => [n, { dtype: "F32", shape: s, data: raw[n] }]));
  const s = initFromTeacher(t, teacher, student, everyOtherLayer(4, 2));
  assert.deepEqual(Object.keys(s).sort(), sm.shapes.map(([n]) => n).sort());
  for (const [n, shape] of sm.shapes) assert.deepEqual(s[n].shape, shape);
  assert.deepEqual(s["bert.encoder.layer.1.attention.self.key.weight"].data, raw["bert.encoder.layer.2.attention.self.key.weight"]);
  assert.deepEqual(s["bert.encoder.layer.0.output.LayerNorm.bias"].data, raw["bert.encoder.layer.0.output.LayerNorm.bias"]);
  assert.deepEqual(s["classifier.weight"].data, raw["classifier.weight"]);
  assert.deepEqual(s["bert.embeddings.word_embeddings.weight"].data, raw["bert.embeddings.word_embeddings.weight"]);
  // A copy, not a view of the teacher's arrays.
  (s["classifier.weight"].data as Float32Array)[0] += 1;
  assert.notEqual((s["classifier.weight"].data as Float32Array)[0], raw["classifier.weight"][0]);
  assert.throws(() => initFromTeacher(t, teacher, { ...student, hidden: 16 }, [0, 2]), /model\.hidden/);
  assert.throws(() => initFromTeacher(t, teacher, student, [0, 4]), UserError);
});

test("apply and features leak no device buffers (eval and training, outside jit)", async () => {
  const m = bert(SPEC, INPUT);
  const p = m.init(random.key(3));
  await vals(m.apply(tree.ref(p), idsArr(IDS), { train: true, key: random.key(1) })); // warm-up
  const before = liveBuffers();
  await vals(m.apply(tree.ref(p), idsArr(IDS), { train: true, key: random.key(1) }));
  await vals(m.apply(tree.ref(p), idsArr(IDS), { train: false, key: random.key(2) }));
  const f = m.features(tree.ref(p), idsArr(IDS), { train: true, key: random.key(4) });
  for (const a of [f.logits, ...f.hidden, ...f.attentions, ...f.values, f.mask]) a.dispose();
  assert.equal(liveBuffers(), before);
  tree.dispose(p);
});
