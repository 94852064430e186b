/**
 * The safetensors file format, encoded and decoded on the host.
 *
 * Layout: 8 bytes little-endian u64 header length N, then N bytes of UTF-8 JSON header, then
 * the raw little-endian tensor bytes. The header maps each tensor name to
 * `{ dtype, shape, data_offsets: [begin, end] }`, offsets relative to the first byte after the
 * header, plus an optional `"__metadata__": Record<string, string>`.
 *
 * Written by hand because the npm packages for it are either unmaintained or browser/hub
 * loaders that can only read; the format is small enough that owning it is cheaper than
 * depending on one of them.
 */
import { UserError } from "../util/errors.js";
import { numel } from "../util/shape.js";

export type HostTensor = {
  /** F16 and BF16 (Hugging Face checkpoints) are kept as their raw 16-bit patterns; see toFloat32. */
  dtype: "F32" | "I32" | "U8" | "F64" | "F16" | "BF16";
  shape: number[];
  data: Float32Array | Int32Array | Uint8Array | Float64Array | Uint16Array;
};

type DType = HostTensor["dtype"];

const DTYPES: Record<DType, { bytes: number; make: (n: number) => HostTensor["data"]; name: string }> = {
  F32: { bytes: 4, make: (n) => new Float32Array(n), name: "Float32Array" },
  I32: { bytes: 4, make: (n) => new Int32Array(n), name: "Int32Array" },
  U8: { bytes: 1, make: (n) => new Uint8Array(n), name: "Uint8Array" },
  F64: { bytes: 8, make: (n) => new Float64Array(n), name: "Float64Array" },
  F16: { bytes: 2, make: (n) => new Uint16Array(n), name: "Uint16Array" },
  BF16: { bytes: 2, make: (n) => new Uint16Array(n), name: "Uint16Array" },
};

function isDType(s: unknown): s is DType {
  return typeof s === "string" && Object.prototype.hasOwnProperty.call(DTYPES, s);
}

function matchesDType(dtype: DType, data: unknown): boolean {
  switch (dtype) {
    case "F32":
      return data instanceof Float32Array;
    case "I32":
      return data instanceof Int32Array;
    case "U8":
      return data instanceof Uint8Array;
    case "F64":
      return data instanceof Float64Array;
    case "F16":
    case "BF16":
      return data instanceof Uint16Array;
  }
}

/** IEEE half → float (exact: every half is a float). By hand: Node 20 has no Float16Array. */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero and subnormals
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/**
 * A float tensor's values as float32 (F16 and BF16 widened exactly, F64 rounded); null for the
 * integer dtypes.
 */
export function toFloat32(t: HostTensor): Float32Array | null {
  switch (t.dtype) {
    case "F32":
      return t.data as Float32Array;
    case "F64":
      return Float32Array.from(t.data as Float64Array);
    case "F16":
      return Float32Array.from(t.data as Uint16Array, halfToFloat);
    case "BF16": {
      // bfloat16 is the top half of a float32's bits.
      const bits = new Uint32Array(t.data.length);
      const src = t.data as Uint16Array;
      for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
      return new Float32Array(bits.buffer);
    }
    default:
      return null;
  }
}

/** Same limit as the reference implementation: a bigger header means a corrupt or foreign file. */
const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = "__metadata__";

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Reverses the byte order of each element in place (only used on big-endian hosts). */
function swapElementBytes(bytes: Uint8Array, elemSize: number): void {
  if (elemSize === 1) return;
  for (let i = 0; i < bytes.length; i += elemSize) {
    for (let a = i, b = i + elemSize - 1; a < b; a++, b--) {
      const t = bytes[a]!;
      bytes[a] = bytes[b]!;
      bytes[b] = t;
    }
  }
}

function isShape(shape: unknown): shape is number[] {
  return Array.isArray(shape) && shape.every((d) => Number.isSafeInteger(d) && d >= 0);
}

/**
 * Encodes tensors as a safetensors file. Deterministic: tensors are laid out sorted by name and
 * the header is compact JSON padded with spaces to a multiple of 8 bytes, so the same input gives
 * the same bytes. Throws (a plain Error: it is a bug in the caller) when a tensor's data does
 * not match its dtype or shape.
 */
export function encodeSafetensors(
  tensors: Record<string, HostTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    const meta: Record<string, string> = {};
    for (const key of Object.keys(metadata).sort()) {
      const value = metadata[key];
      if (typeof value !== "string") {
        throw new Error(`safetensors metadata "${key}" must be a string, got ${typeof value}`);
      }
      meta[key] = value;
    }
    header[METADATA_KEY] = meta;
  }

  let offset = 0;
  for (const name of names) {
    if (name === METADATA_KEY) throw new Error(`tensor name "${METADATA_KEY}" is reserved in safetensors`);
    const t = tensors[name]!;
    if (!isDType(t.dtype)) throw new Error(`tensor "${name}": unsupported dtype ${String(t.dtype)}`);
    if (!isShape(t.shape)) {
      throw new Error(`tensor "${name}": shape ${JSON.stringify(t.shape)} is not a list of non-negative integers`);
    }
    if (!matchesDType(t.dtype, t.data)) {
      throw new Error(`tensor "${name}": dtype ${t.dtype} needs a ${DTYPES[t.dtype].name}, got ${t.data?.constructor?.name}`);
    }
    const n = numel(t.shape);
    if (t.data.length !== n) {
      throw new Error(
        `tensor "${name}": shape ${JSON.stringify(t.shape)} has ${n} elements but data has ${t.data.length}`,
      );
    }
    const size = t.data.byteLength;
    Object.defineProperty(header, name, {
      value: { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + size] },
      enumerable: true,
      writable: true,
      configurable: true,
    });
    offset += size;
  }

  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }

  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let pos = 8 + json.length;
  for (const name of names) {
    const { dtype, data } = tensors[name]!;
    const src = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    out.set(src, pos);
    if (!HOST_LITTLE_ENDIAN) swapElementBytes(out.subarray(pos, pos + src.length), DTYPES[dtype].bytes);
    pos += src.length;
  }
  return out;
}

/**
 * Decodes a safetensors file, validating the whole header against the file before copying any
 * data. `source` (usually the file path) names the file in every error, all of them UserErrors.
 * Tensor data is copied into fresh typed arrays, so the result never aliases `bytes` and is
 * always aligned.
 */
export function decodeSafetensors(
  bytes: Uint8Array,
  source: string,
): { tensors: Record<string, HostTensor>; metadata: Record<string, string> } {
  function fail(msg: string): never {
    throw new UserError(`${source}: ${msg}`);
  }

  if (bytes.length < 8) {
    fail(`not a safetensors file: only ${bytes.length} bytes, shorter than the 8-byte header length`);
  }
  const headerLen = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) {
    fail(`safetensors header length ${headerLen} is absurd (over ${MAX_HEADER_BYTES} bytes); corrupt or not a safetensors file`);
  }
  if (headerLen > BigInt(bytes.length - 8)) {
    fail(`safetensors header length ${headerLen} exceeds the file size (${bytes.length} bytes); truncated or corrupt`);
  }
  const n = Number(headerLen);
  const dataStart = 8 + n;
  const dataLen = bytes.length - dataStart;

  let header: unknown;
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, dataStart));
    header = JSON.parse(text);
  } catch {
    fail(`corrupt safetensors header (not valid UTF-8 JSON)`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    fail(`corrupt safetensors header (not a JSON object)`);
  }
  const entries = Object.entries(header as Record<string, unknown>);

  const metadata: Record<string, string> = {};
  const parsed: Array<{ name: string; dtype: DType; shape: number[]; begin: number; end: number }> = [];
  for (const [name, entry] of entries) {
    if (name === METADATA_KEY) {
      if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
        fail(`safetensors header: "${METADATA_KEY}" is not an object of strings`);
      }
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== "string") fail(`safetensors header: "${METADATA_KEY}" value for "${k}" is not a string`);
        Object.defineProperty(metadata, k, { value: v, enumerable: true, writable: true, configurable: true });
      }
      continue;
    }
    const where = `safetensors header: tensor "${name}"`;
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) fail(`${where} is not an object`);
    const e = entry as Record<string, unknown>;
    for (const field of ["dtype", "shape", "data_offsets"]) {
      if (!Object.prototype.hasOwnProperty.call(e, field)) fail(`${where} is missing "${field}"`);
    }
    if (!isDType(e.dtype)) {
      fail(`${where} has unsupported dtype ${JSON.stringify(e.dtype)} (supported: ${Object.keys(DTYPES).join(", ")})`);
    }
    const dtype = e.dtype as DType;
    if (!isShape(e.shape)) fail(`${where} has invalid shape ${JSON.stringify(e.shape)}`);
    const shape = e.shape as number[];
    const offs = e.data_offsets;
    if (
      !Array.isArray(offs) ||
      offs.length !== 2 ||
      !offs.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offs[0] > offs[1]
    ) {
      fail(`${where} has invalid data_offsets ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    if (end > dataLen) {
      fail(`${where} data_offsets [${begin}, ${end}] run past the end of the data (${dataLen} bytes); truncated file?`);
    }
    const expected = numel(shape) * DTYPES[dtype].bytes;
    if (end - begin !== expected) {
      fail(
        `${where} data_offsets [${begin}, ${end}] span ${end - begin} bytes but ${dtype} ${JSON.stringify(shape)} needs ${expected}`,
      );
    }
    parsed.push({ name, dtype, shape, begin, end });
  }

  const byOffset = parsed.filter((p) => p.end > p.begin).sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1]!;
    const cur = byOffset[i]!;
    if (cur.begin < prev.end) {
      fail(`safetensors header: tensors "${prev.name}" and "${cur.name}" have overlapping data_offsets`);
    }
  }

  const tensors: Array<[string, HostTensor]> = [];
  for (const { name, dtype, shape, begin, end } of parsed) {
    const data = DTYPES[dtype].make(numel(shape));
    const dst = new Uint8Array(data.buffer);
    dst.set(bytes.subarray(dataStart + begin, dataStart + end));
    if (!HOST_LITTLE_ENDIAN) swapElementBytes(dst, DTYPES[dtype].bytes);
    tensors.push([name, { dtype, shape, data }]);
  }
  // fromEntries defines own properties, so a tensor named "__proto__" stays an ordinary key.
  return { tensors: Object.fromEntries(tensors), metadata };
}
