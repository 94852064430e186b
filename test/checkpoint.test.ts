import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UserError } from "../src/util/errors.js";
import { decodeSafetensors, encodeSafetensors, type HostTensor } from "../src/checkpoint/safetensors.js";
import { checkpointExists, loadCheckpoint, saveCheckpoint, type Checkpoint } from "../src/checkpoint/checkpoint.js";

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "distill-ckpt-"));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function sample(): Record<string, HostTensor> {
  return {
    "layer.w": { dtype: "F32", shape: [2, 3], data: new Float32Array([1, -2.5, 3, 4, 5e-8, -0]) },
    "layer.b": { dtype: "F32", shape: [3], data: new Float32Array([0.1, 0.2, 0.3]) },
    step: { dtype: "I32", shape: [], data: new Int32Array([42]) },
    ids: { dtype: "I32", shape: [4], data: new Int32Array([-1, 0, 2147483647, -2147483648]) },
    mask: { dtype: "U8", shape: [3], data: new Uint8Array([0, 1, 255]) },
    stats: { dtype: "F64", shape: [2], data: new Float64Array([Math.PI, -1e300]) },
    empty: { dtype: "F32", shape: [0, 5], data: new Float32Array(0) },
  };
}

/** Expects a UserError whose message contains every one of `parts`. */
function throwsUser(fn: () => unknown, ...parts: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected UserError, got ${String(e)}`);
    assert.ok(!e.message.includes("\n"), `message should be one line: ${e.message}`);
    for (const p of parts) assert.ok(e.message.includes(p), `"${e.message}" should contain "${p}"`);
    return true;
  });
}

function headerLen(bytes: Uint8Array): number {
  return Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
}

test("round trip of F32/I32/U8/F64 tensors and metadata", () => {
  const tensors = sample();
  const bytes = encodeSafetensors(tensors, { format: "pt", note: "héllo" });
  const out = decodeSafetensors(bytes, "mem.safetensors");
  assert.deepEqual(out.metadata, { format: "pt", note: "héllo" });
  assert.deepEqual(Object.keys(out.tensors).sort(), Object.keys(tensors).sort());
  for (const [name, t] of Object.entries(tensors)) {
    const got = out.tensors[name]!;
    assert.equal(got.dtype, t.dtype, name);
    assert.deepEqual(got.shape, t.shape, name);
    assert.equal(got.data.constructor, t.data.constructor, name);
    assert.deepEqual(got.data, t.data, name);
    assert.equal(got.data.byteOffset, 0, `${name} should be a fresh array`);
    assert.notEqual(got.data.buffer, bytes.buffer, `${name} should not alias the input`);
  }
  assert.ok(Object.is(out.tensors["layer.w"]!.data[5], -0));
  assert.deepEqual(decodeSafetensors(encodeSafetensors({}), "e").tensors, {});
  assert.deepEqual(decodeSafetensors(encodeSafetensors({}), "e").metadata, {});
});

test("decode copies from an unaligned view", () => {
  const bytes = encodeSafetensors({ x: { dtype: "F64", shape: [2], data: new Float64Array([1.5, -2]) } });
  const shifted = new Uint8Array(bytes.length + 3);
  shifted.set(bytes, 3);
  const out = decodeSafetensors(shifted.subarray(3), "shifted");
  assert.deepEqual(out.tensors.x!.data, new Float64Array([1.5, -2]));
});

test("encode is byte-for-byte deterministic, independent of key order", () => {
  const a = encodeSafetensors(sample(), { b: "2", a: "1" });
  const b = encodeSafetensors(sample(), { b: "2", a: "1" });
  assert.deepEqual(a, b);
  const reversed = Object.fromEntries(Object.entries(sample()).reverse());
  assert.deepEqual(encodeSafetensors(reversed, { a: "1", b: "2" }), a);
});

test("header is padded with spaces to a multiple of 8 and tensors are tightly packed", () => {
  for (const name of ["a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg", "abcdefgh"]) {
    const bytes = encodeSafetensors({ [name]: { dtype: "U8", shape: [3], data: new Uint8Array([1, 2, 3]) } });
    const n = headerLen(bytes);
    assert.equal(n % 8, 0, name);
    assert.equal(bytes.length, 8 + n + 3);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    assert.match(text, /^\{.*\} *$/);
  }
  const bytes = encodeSafetensors(sample());
  const n = headerLen(bytes);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const spans = Object.values(header as Record<string, { data_offsets: [number, number] }>)
    .map((e) => e.data_offsets)
    .sort((x, y) => x[0] - y[0]);
  let pos = 0;
  for (const [b, e] of spans) {
    assert.equal(b, pos);
    pos = e;
  }
  assert.equal(bytes.length, 8 + n + pos);
});

test("decodes a file hand-built per the reference format", () => {
  // One F32 tensor "a" of shape [2] = [1, 2]. The header below is 54 bytes, unpadded (the
  // reference reader does not require padding), then a padded variant.
  for (const header of [
    '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
    '{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}    ',
  ]) {
    const h = Buffer.from(header, "utf8");
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    // 1.0f = 0x3f800000, 2.0f = 0x40000000, little-endian
    const data = Buffer.from([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40]);
    const file = new Uint8Array(Buffer.concat([len, h, data]));
    const out = decodeSafetensors(file, "ref.safetensors");
    assert.deepEqual(Object.keys(out.tensors), ["a"]);
    assert.equal(out.tensors.a!.dtype, "F32");
    assert.deepEqual(out.tensors.a!.shape, [2]);
    assert.deepEqual(out.tensors.a!.data, new Float32Array([1, 2]));
  }
  // And our encoder produces exactly those bytes for that tensor (plus padding to 56).
  const ours = encodeSafetensors({ a: { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) } });
  const expected = Buffer.concat([
    Buffer.from([56, 0, 0, 0, 0, 0, 0, 0]),
    Buffer.from('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}  ', "utf8"),
    Buffer.from([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40]),
  ]);
  assert.deepEqual(Buffer.from(ours), expected);
});

test("encode rejects data that does not match shape or dtype", () => {
  assert.throws(() => encodeSafetensors({ x: { dtype: "F32", shape: [3], data: new Float32Array(2) } }), /x.*3 elements/);
  assert.throws(() => encodeSafetensors({ x: { dtype: "I32", shape: [2], data: new Float32Array(2) } }), /Int32Array/);
  assert.throws(() => encodeSafetensors({ x: { dtype: "F32", shape: [-1], data: new Float32Array(0) } }), /shape/);
  assert.throws(() => encodeSafetensors({ __metadata__: { dtype: "U8", shape: [0], data: new Uint8Array(0) } }));
});

/** Builds a file from a raw header object and data bytes. */
function rawFile(header: unknown, data: Uint8Array | number[] = []): Uint8Array {
  const h = Buffer.from(JSON.stringify(header), "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return new Uint8Array(Buffer.concat([len, h, Buffer.from(data)]));
}

test("decode rejects short, corrupt and inconsistent files with a UserError naming the source", () => {
  const src = "/some/dir/model.safetensors";
  throwsUser(() => decodeSafetensors(new Uint8Array(5), src), src, "8");
  const big = new Uint8Array(16);
  new DataView(big.buffer).setBigUint64(0, 2n ** 62n, true);
  throwsUser(() => decodeSafetensors(big, src), src, "header length");
  new DataView(big.buffer).setBigUint64(0, 200_000_000n, true);
  throwsUser(() => decodeSafetensors(big, src), src, "absurd");
  throwsUser(() => decodeSafetensors(rawFile([1, 2]), src), src, "header");
  throwsUser(() => decodeSafetensors(rawFile(null), src), src, "header");
  const f32 = (extra: object) => ({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8], ...extra } });
  throwsUser(() => decodeSafetensors(rawFile({ a: { dtype: "F32", shape: [2] } }, new Uint8Array(8)), src), src, '"a"', "data_offsets");
  throwsUser(() => decodeSafetensors(rawFile(f32({ dtype: "BF16" }), new Uint8Array(8)), src), src, "BF16");
  throwsUser(() => decodeSafetensors(rawFile(f32({ shape: [2.5] }), new Uint8Array(8)), src), src, "shape");
  throwsUser(() => decodeSafetensors(rawFile(f32({ data_offsets: [8, 0] }), new Uint8Array(8)), src), src, "data_offsets");
  throwsUser(() => decodeSafetensors(rawFile(f32({ data_offsets: [0, 16] }), new Uint8Array(8)), src), src, "past the end");
  throwsUser(() => decodeSafetensors(rawFile(f32({ data_offsets: [0, 4] }), new Uint8Array(8)), src), src, "needs 8");
  throwsUser(
    () =>
      decodeSafetensors(
        rawFile(
          {
            a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
            b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
          },
          new Uint8Array(12),
        ),
        src,
      ),
    src,
    "overlapping",
  );
  throwsUser(() => decodeSafetensors(rawFile({ __metadata__: { a: 1 } }), src), src, "__metadata__");
});

test("a tensor named __proto__ stays an ordinary entry", () => {
  // A computed "__proto__" key is an own property, which JSON.stringify writes as a real key.
  const file = rawFile({ ["__proto__"]: { dtype: "U8", shape: [1], data_offsets: [0, 1] } }, [7]);
  const out = decodeSafetensors(file, "p");
  assert.equal(Object.getPrototypeOf(out.tensors), Object.prototype);
  assert.deepEqual(Object.keys(out.tensors), ["__proto__"]);
  assert.deepEqual(Object.getOwnPropertyDescriptor(out.tensors, "__proto__")!.value.data, new Uint8Array([7]));
});

test("corrupted bytes in a saved file give a UserError naming the file and the header", () => {
  const path = join(dir, "corrupt.safetensors");
  saveCheckpoint(path, { tensors: sample(), config: {} });
  const bytes = readFileSync(path);
  bytes.fill(0xff, 10, 14);
  writeFileSync(path, bytes);
  throwsUser(() => decodeSafetensors(new Uint8Array(readFileSync(path)), path), path, "header");
  throwsUser(() => loadCheckpoint(path), path, "header");
});

test("header length beyond the file size gives a UserError", () => {
  const path = join(dir, "hlen.safetensors");
  const bytes = encodeSafetensors(sample());
  new DataView(bytes.buffer).setBigUint64(0, BigInt(bytes.length), true);
  writeFileSync(path, bytes);
  throwsUser(() => decodeSafetensors(new Uint8Array(readFileSync(path)), path), path, "header length");
});

test("truncated data gives a UserError", () => {
  const path = join(dir, "trunc.safetensors");
  saveCheckpoint(path, { tensors: sample(), config: {} });
  const bytes = readFileSync(path);
  writeFileSync(path, bytes.subarray(0, bytes.length - 3));
  throwsUser(() => loadCheckpoint(path), path, "truncated");
  writeFileSync(path, bytes.subarray(0, 6));
  throwsUser(() => loadCheckpoint(path), path);
});

test("saveCheckpoint / loadCheckpoint round trip with config and state", () => {
  const path = join(dir, "rt", "ckpt.safetensors");
  assert.equal(checkpointExists(path), false);
  const ckpt: Checkpoint = {
    tensors: sample(),
    config: { model: "mlp", hidden: [64, 32], lr: 1e-3 },
    state: { step: 1200, epoch: 3, rng: [1, 2, 3] },
  };
  saveCheckpoint(path, ckpt);
  assert.equal(checkpointExists(path), true);
  const json = readFileSync(join(dir, "rt", "ckpt.json"), "utf8");
  assert.match(json, /^\{\n {2}"config": /);
  assert.match(JSON.parse(json).tensorsSha256, /^[0-9a-f]{64}$/);
  const loaded = loadCheckpoint(path);
  assert.deepEqual(loaded, ckpt);

  const noState = join(dir, "rt", "nostate.safetensors");
  saveCheckpoint(noState, { tensors: {}, config: "x" });
  assert.deepEqual(loadCheckpoint(noState), { tensors: {}, config: "x" });
  // No temporary files left behind.
  assert.deepEqual(readdirSync(join(dir, "rt")).sort(), ["ckpt.json", "ckpt.safetensors", "nostate.json", "nostate.safetensors"]);
});

test("saving over an existing checkpoint keeps a valid pair", () => {
  const path = join(dir, "over.safetensors");
  saveCheckpoint(path, { tensors: sample(), config: { v: 1 }, state: { step: 1 } });
  const next = { ...sample(), extra: { dtype: "F32", shape: [1], data: new Float32Array([9]) } as HostTensor };
  saveCheckpoint(path, { tensors: next, config: { v: 2 }, state: { step: 2 } });
  const loaded = loadCheckpoint(path);
  assert.deepEqual(loaded.config, { v: 2 });
  assert.deepEqual(loaded.state, { step: 2 });
  assert.deepEqual(loaded.tensors.extra!.data, new Float32Array([9]));
});

test("a failed save leaves the earlier checkpoint files byte-identical", () => {
  const path = join(dir, "fail.safetensors");
  const jsonPath = join(dir, "fail.json");
  saveCheckpoint(path, { tensors: sample(), config: { v: 1 } });
  const before = [readFileSync(path), readFileSync(jsonPath)];
  const bad = { ...sample(), bad: { dtype: "F32", shape: [4], data: new Float32Array(3) } as HostTensor };
  assert.throws(() => saveCheckpoint(path, { tensors: bad, config: { v: 2 } }));
  // Unserializable config also fails before anything is written.
  assert.throws(() => saveCheckpoint(path, { tensors: sample(), config: { n: 1n } }));
  assert.deepEqual(readFileSync(path), before[0]);
  assert.deepEqual(readFileSync(jsonPath), before[1]);
  assert.deepEqual(loadCheckpoint(path).config, { v: 1 });
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith(".fail")), []);
});

test("a tensors file that does not match its JSON is rejected", () => {
  const a = join(dir, "pair-a.safetensors");
  const b = join(dir, "pair-b.safetensors");
  saveCheckpoint(a, { tensors: sample(), config: { v: "a" } });
  saveCheckpoint(b, { tensors: { z: { dtype: "U8", shape: [1], data: new Uint8Array([1]) } }, config: { v: "b" } });
  // Simulate an interrupted save: new tensors beside the old JSON.
  writeFileSync(a, readFileSync(b));
  const jsonPath = join(dir, "pair-a.json");
  throwsUser(() => loadCheckpoint(a), `${a}: checkpoint and ${jsonPath} do not match (interrupted save?)`);
});

test("missing files and bad paths give UserErrors naming them", () => {
  const path = join(dir, "nope.safetensors");
  throwsUser(() => loadCheckpoint(path), path, "not found");
  const lonely = join(dir, "lonely.safetensors");
  writeFileSync(lonely, encodeSafetensors({}));
  assert.equal(checkpointExists(lonely), false);
  throwsUser(() => loadCheckpoint(lonely), join(dir, "lonely.json"), "not found");
  writeFileSync(join(dir, "lonely.json"), "{not json");
  throwsUser(() => loadCheckpoint(lonely), join(dir, "lonely.json"), "JSON");
  writeFileSync(join(dir, "lonely.json"), '{"config":{}}');
  throwsUser(() => loadCheckpoint(lonely), join(dir, "lonely.json"), "tensorsSha256");
  throwsUser(() => saveCheckpoint(join(dir, "x.bin"), { tensors: {}, config: {} }), "x.bin", ".safetensors");
});
