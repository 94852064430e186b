/**
 * Reader and writer for the IDX format used by MNIST and Fashion-MNIST.
 *
 * An IDX file is a 4-byte magic number (0x00, 0x00, type code, number of dims), then one
 * big-endian uint32 per dim, then the elements in row-major order. Only type code 0x08
 * (unsigned byte) is supported, which is what the (Fashion-)MNIST files use.
 */
import { readFileSync } from "node:fs";
import { gunzipSync, gzipSync } from "node:zlib";
import { UserError } from "../util/errors.js";
import { writeFileAtomic } from "../util/fs.js";

export interface IdxTensor {
  dims: number[];
  data: Uint8Array;
}

/** IDX element types by type code, for error messages. */
const IDX_TYPES: Record<number, string> = {
  0x08: "unsigned byte",
  0x09: "signed byte",
  0x0b: "int16",
  0x0c: "int32",
  0x0d: "float32",
  0x0e: "float64",
};

const UBYTE = 0x08;
const MAX_DIMS = 4;

function hex(n: number, digits: number): string {
  return "0x" + n.toString(16).padStart(digits, "0");
}

function dimsText(dims: number[]): string {
  return `[${dims.join(", ")}]`;
}

/**
 * Parses an in-memory IDX file of unsigned bytes. `source` names where the bytes came from
 * (a file path) and starts every error message. The returned `data` is a view into `buf`.
 */
export function parseIdx(buf: Uint8Array, source: string): IdxTensor {
  if (buf.length < 4) {
    throw new UserError(
      `${source}: truncated IDX file (${buf.length} bytes, the header alone needs at least 4)`,
    );
  }
  const magic = ((buf[0]! << 24) | (buf[1]! << 16) | (buf[2]! << 8) | buf[3]!) >>> 0;
  const type = buf[2]!;
  const ndim = buf[3]!;
  if (buf[0] !== 0 || buf[1] !== 0 || IDX_TYPES[type] === undefined) {
    throw new UserError(
      `${source}: not an IDX file (magic ${hex(magic, 8)}, expected 0x0000080N)`,
    );
  }
  if (type !== UBYTE) {
    throw new UserError(
      `${source}: unsupported IDX type code ${hex(type, 2)} (${IDX_TYPES[type]}); ` +
        `only 0x08 (unsigned byte) is supported`,
    );
  }
  if (ndim < 1 || ndim > MAX_DIMS) {
    throw new UserError(
      `${source}: unsupported IDX dimension count ${ndim} (magic ${hex(magic, 8)}, expected 1..${MAX_DIMS})`,
    );
  }
  const headerLen = 4 + 4 * ndim;
  if (buf.length < headerLen) {
    throw new UserError(
      `${source}: truncated IDX header (${buf.length} bytes, expected at least ${headerLen} for ${ndim} dims)`,
    );
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < ndim; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    count *= d; // exact up to 2^53, and any count that large is rejected as truncated below
  }
  const expected = headerLen + count;
  if (buf.length < expected) {
    throw new UserError(
      `${source}: truncated IDX data (${buf.length} bytes, expected ${expected} for dims ${dimsText(dims)})`,
    );
  }
  if (buf.length > expected) {
    throw new UserError(
      `${source}: ${buf.length - expected} trailing bytes after IDX data ` +
        `(${buf.length} bytes, expected ${expected} for dims ${dimsText(dims)})`,
    );
  }
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + headerLen, count) };
}

function isGzipData(buf: Uint8Array): boolean {
  return buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b;
}

function readFileOrThrow(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new UserError(`${path}: file not found`);
    if (code === "EISDIR") throw new UserError(`${path}: is a directory, expected an IDX file`);
    if (code === "EACCES" || code === "EPERM") throw new UserError(`${path}: permission denied`);
    throw new UserError(`${path}: cannot read file (${code ?? (e as Error).message})`);
  }
}

/**
 * Reads an IDX file. A name ending in `.gz` (or content starting with the gzip magic) is
 * gunzipped first; any other file is taken as uncompressed IDX.
 */
export function readIdxGz(path: string): IdxTensor {
  let buf: Uint8Array = readFileOrThrow(path);
  if (path.endsWith(".gz") || isGzipData(buf)) {
    try {
      buf = gunzipSync(buf);
    } catch (e) {
      const reason = (e as Error).message.split("\n")[0];
      throw new UserError(`${path}: truncated or corrupt gzip data (${reason})`);
    }
  }
  return parseIdx(buf, path);
}

/**
 * Writes an IDX file of unsigned bytes: gzipped when `path` ends in `.gz`, raw otherwise (the
 * same rule `readIdxGz` reads by). The write is atomic. Bad arguments are bugs, not user
 * errors, so they throw RangeError.
 */
export function writeIdxGz(path: string, dims: number[], data: Uint8Array): void {
  if (dims.length < 1 || dims.length > MAX_DIMS) {
    throw new RangeError(`writeIdxGz ${path}: ${dims.length} dims, expected 1..${MAX_DIMS}`);
  }
  let count = 1;
  for (const d of dims) {
    if (!Number.isInteger(d) || d < 0 || d > 0xffffffff) {
      throw new RangeError(`writeIdxGz ${path}: bad dim ${d} in ${dimsText(dims)}`);
    }
    count *= d;
  }
  if (count !== data.length) {
    throw new RangeError(
      `writeIdxGz ${path}: dims ${dimsText(dims)} hold ${count} elements but data has ${data.length}`,
    );
  }
  const headerLen = 4 + 4 * dims.length;
  const out = new Uint8Array(headerLen + data.length);
  const view = new DataView(out.buffer);
  out[2] = UBYTE;
  out[3] = dims.length;
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, headerLen);
  writeFileAtomic(path, path.endsWith(".gz") ? gzipSync(out) : out);
}
