// One chunk file of the soft-label cache: up to WINDOWS_PER_CHUNK windows of a split, strided
// over it (types.ts chunkCount), as
// one Parquet file (hyparquet-writer / hyparquet), one row per position: window INT32,
// position INT32, ids and logprobs (codec.ts), log_tail FLOAT.
import { brotliCompressSync, brotliDecompressSync, constants as zc, gunzipSync, gzipSync } from "node:zlib";
import { createHash } from "node:crypto";
import { parquetWriteBuffer } from "hyparquet-writer";
import { parquetMetadata, parquetRead, type ColumnData } from "hyparquet";
import { UserError } from "../util/errors.js";
import type { CachePrecision, CacheSplit } from "./types.js";
import { decodeRows, encodeRows } from "./codec.js";
import type { TopKLabels } from "./types.js";

/**
 * Parquet's BROTLI at quality 5, the smallest that still writes fast. One chunk of a trained
 * byte-level LM's top 128, quantized (`distill bench --workload cache`, bytes per token):
 * BROTLI q4 133.9, q5 125.9, q6 124.8, q9 122.4; GZIP 156.2; SNAPPY 199.6; uncompressed 269.1.
 * Encoding speed halves from q4 to q5 and again by q9 for 3 % less; every codec decodes faster
 * than our rows do, so reading does not choose. Node 20 has no zstd.
 */
export const CODEC = "BROTLI" as const;
export const BROTLI_QUALITY = 5;

const brotli = (quality: number) => (input: Uint8Array) =>
  new Uint8Array(brotliCompressSync(input, { params: { [zc.BROTLI_PARAM_QUALITY]: quality, [zc.BROTLI_PARAM_SIZE_HINT]: input.length } }));
const unbrotli = (input: Uint8Array) => new Uint8Array(brotliDecompressSync(input));

export interface ChunkMeta {
  split: CacheSplit;
  chunk: number;
  firstWindow: number;
  /** Window ids step by this much from row block to row block (the split's chunk count). */
  stride: number;
  windows: number;
  context: number;
  k: number;
  vocab: number;
  precision: CachePrecision;
}

export const chunkFile = (split: CacheSplit, chunk: number) => `${split}-${String(chunk).padStart(5, "0")}.parquet`;

export const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** The Parquet bytes of one chunk; `labels` holds windows × context rows (toTopK's form). */
export function encodeChunk(m: ChunkMeta, labels: TopKLabels, opts: { codec?: "BROTLI" | "GZIP" | "SNAPPY" | "UNCOMPRESSED"; quality?: number } = {}): Uint8Array {
  const rows = m.windows * m.context;
  if (labels.rows !== rows || labels.k !== m.k) throw new Error(`chunk ${m.split} ${m.chunk}: ${labels.rows} rows of ${labels.k}, expected ${rows} of ${m.k}`);
  const window = new Int32Array(rows);
  const position = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    window[r] = m.firstWindow + Math.floor(r / m.context) * m.stride;
    position[r] = r % m.context;
  }
  const enc = encodeRows(labels, m.vocab, m.precision);
  const codec = opts.codec ?? CODEC;
  const buf = parquetWriteBuffer({
    columnData: [
      { name: "window", data: window, type: "INT32", nullable: false },
      { name: "position", data: position, type: "INT32", nullable: false },
      // PLAIN: every row is distinct, a dictionary attempt would only cost time.
      { name: "ids", data: enc.ids, type: "BYTE_ARRAY", nullable: false, encoding: "PLAIN", statistics: false },
      { name: "logprobs", data: enc.logprobs, type: "BYTE_ARRAY", nullable: false, encoding: "PLAIN", statistics: false },
      { name: "log_tail", data: labels.logTail, type: "FLOAT", nullable: false, encoding: "PLAIN", statistics: false },
    ],
    codec,
    compressors: codec === "GZIP" ? { GZIP: (b) => new Uint8Array(gzip(b)) } : { BROTLI: brotli(opts.quality ?? BROTLI_QUALITY) },
    // One row group and one page per column: Brotli sees the whole chunk's column at once.
    rowGroupSize: rows,
    pageSize: 1 << 30,
    kvMetadata: [{ key: "distill.cache", value: JSON.stringify(m) }],
    createdBy: "distill",
  });
  return new Uint8Array(buf);
}

const gzip = (b: Uint8Array) => gzipSync(b, { level: 6 });

/** Rows a chunk file says it holds (footer only), or null when it is not a readable Parquet file. */
export function chunkRows(bytes: Uint8Array): number | null {
  try {
    const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    return Number(parquetMetadata(ab).num_rows);
  } catch {
    return null;
  }
}

/**
 * Decodes a chunk's bytes into `out` (rows × k) from row `at`, checking that its rows are the
 * windows and positions `m` says, in order. `name` names the file in errors.
 */
export async function decodeChunk(bytes: Uint8Array, m: ChunkMeta, out: { ids: Int32Array; logprobs: Float32Array; logTail: Float32Array }, at: number, name: string): Promise<void> {
  const rows = m.windows * m.context;
  const cols = new Map<string, ColumnData[]>();
  const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  try {
    await parquetRead({
      file: ab,
      utf8: false,
      compressors: { BROTLI: unbrotli, GZIP: (b) => new Uint8Array(gunzipSync(b)) },
      onChunk: (c) => {
        const list = cols.get(c.columnName) ?? [];
        list.push(c);
        cols.set(c.columnName, list);
      },
    });
  } catch (e) {
    throw new UserError(`${name}: not a readable cache chunk (${(e as Error).message.split("\n")[0]})`);
  }
  const col = <T>(n: string): ArrayLike<T> => {
    const parts = cols.get(n);
    if (!parts) throw new UserError(`${name}: no column ${n} (corrupt chunk)`);
    parts.sort((a, b) => a.rowStart - b.rowStart);
    const all = parts.length === 1 ? (parts[0].columnData as ArrayLike<T>) : parts.flatMap((p) => Array.from(p.columnData as ArrayLike<T>));
    if (all.length !== rows) throw new UserError(`${name}: ${all.length} rows in column ${n}, expected ${rows} (corrupt or truncated chunk)`);
    return all;
  };
  const window = col<number>("window");
  const position = col<number>("position");
  for (let r = 0; r < rows; r++) {
    const want = m.firstWindow + Math.floor(r / m.context) * m.stride;
    if (window[r] !== want || position[r] !== r % m.context) {
      throw new UserError(`${name}: row ${r} is window ${window[r]} position ${position[r]}, expected window ${want} position ${r % m.context} (corrupt chunk)`);
    }
  }
  decodeRows(col<Uint8Array>("ids"), col<Uint8Array>("logprobs"), col<number>("log_tail"), m.k, m.vocab, m.precision, out, at, name);
}
