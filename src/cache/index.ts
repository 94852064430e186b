// The persistent soft-label cache: a teacher's top-k log-probabilities over a recipe's training
// and held-out windows, stored once as compressed Parquet chunks plus a JSON manifest, and read
// back, streaming, by any number of student runs.
//
// DIR/plan.json                 what is being filled (identity, k, vocab, context, precision,
//                               windows per split); every build, restart or shard checks it
// DIR/train-00000.parquet, ...  up to WINDOWS_PER_CHUNK windows each (chunk c: windows c, c + C, ...),
//                               written whole and renamed in
// DIR/shard-I-of-N.json         a finished shard's chunks (rows, bytes, SHA-256)
// DIR/manifest.json             written by mergeCache once every chunk is there and verified
import { createHash } from "node:crypto";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import pLimit from "p-limit";
import { UserError } from "../util/errors.js";
import { ensureWritableDir, readFileBounded, removeStaleTemps, writeFileAtomic } from "../util/fs.js";
import type { SoftLabels } from "../teachers/types.js";
import { CACHE_SCHEMA, WINDOWS_PER_CHUNK, chunkCount, chunkSize, type CacheIdentity, type CacheManifest, type CachePrecision, type CacheShardEntry, type CacheSplit, type TopKLabels } from "./types.js";
import { toTopK } from "./codec.js";
import { CODEC, chunkFile, chunkRows, decodeChunk, encodeChunk, sha256, type ChunkMeta } from "./chunks.js";

export { WINDOWS_PER_CHUNK, CACHE_SCHEMA } from "./types.js";

const SPLITS: CacheSplit[] = ["train", "heldout"];
/** A chunk file is at most windows × context × k × ~9 bytes; this only stops a stray huge file. */
const MAX_CHUNK_BYTES = 2 ** 31 - 1;
const MAX_JSON_BYTES = 64 * 2 ** 20;

export interface BuildCacheOptions {
  /** The cache folder (created; chunks already there are kept and skipped: resumable). */
  dir: string;
  identity: CacheIdentity;
  k: number;
  vocab: number;
  context: number;
  precision?: CachePrecision;
  /** Consecutive windows' inputs, [windows × context] token ids, per split. */
  train: Int32Array;
  heldout: Int32Array;
  /** Scores [B, context] windows: top-k (any k ≥ the cache's) or dense logits (cut to k here). */
  score(x: Int32Array, shape: [number, number]): Promise<SoftLabels>;
  /** Fill only chunks c with c mod count === index (default: all, then merge). */
  shard?: { index: number; count: number };
  /** Windows scored per call to `score` (default 8). */
  batchWindows?: number;
  /** Calls to `score` in flight at once, within a chunk (default 1; raise it for a server teacher). */
  concurrency?: number;
  progress?: (doneWindows: number, totalWindows: number) => void;
}

export interface BuildCacheResult {
  /** Windows scored by this call (0 when everything was already there). */
  scoredWindows: number;
  /** The manifest, when this call completed the cache (unsharded), else null. */
  manifest: CacheManifest | null;
}

/** What plan.json records: everything that must agree between restarts and shards. */
interface CachePlan extends CacheIdentity {
  schema: number;
  k: number;
  vocab: number;
  context: number;
  precision: CachePrecision;
  windows: Record<CacheSplit, number>;
  windowsPerChunk: number;
  codec: string;
}

const PlanSchema = z.object({
  schema: z.number().int(),
  teacher: z.string(),
  tokenizer: z.string(),
  corpus: z.string(),
  k: z.number().int().positive(),
  vocab: z.number().int().positive(),
  context: z.number().int().positive(),
  precision: z.enum(["quantized", "exact"]),
  windows: z.object({ train: z.number().int().nonnegative(), heldout: z.number().int().nonnegative() }),
  windowsPerChunk: z.number().int().positive(),
  codec: z.string(),
});

const EntrySchema = z.object({
  file: z.string(),
  split: z.enum(["train", "heldout"]),
  chunk: z.number().int().nonnegative(),
  firstWindow: z.number().int().nonnegative(),
  windows: z.number().int().positive(),
  rows: z.number().int().positive(),
  bytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

const ShardSchema = z.object({ plan: PlanSchema, shard: z.object({ index: z.number().int(), count: z.number().int() }), chunks: z.array(EntrySchema) });

const ManifestSchema = PlanSchema.omit({ codec: true }).extend({ rows: z.number().int().nonnegative(), shards: z.array(EntrySchema) });

/** The plan's fields in the order they are compared (and named in errors). */
const PLAN_FIELDS = ["schema", "teacher", "tokenizer", "corpus", "k", "vocab", "context", "precision", "windows.train", "windows.heldout", "windowsPerChunk", "codec"] as const;

function planField(p: CachePlan, f: (typeof PLAN_FIELDS)[number]): unknown {
  if (f === "windows.train") return p.windows.train;
  if (f === "windows.heldout") return p.windows.heldout;
  return p[f];
}

/** The first field where two plans differ, as one line; null when they agree. */
function planDifference(have: CachePlan, want: CachePlan, haveName: string, wantName: string): string | null {
  for (const f of PLAN_FIELDS) {
    const a = planField(have, f);
    const b = planField(want, f);
    if (a !== b) return `${f} is ${JSON.stringify(a)} in ${haveName}, ${JSON.stringify(b)} in ${wantName}`;
  }
  return null;
}

function readJson<T>(path: string, schema: z.ZodType<T>, what: string): T {
  const text = readFileBounded(path, MAX_JSON_BYTES, what).toString("utf8");
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new UserError(`${path}: not valid JSON (a corrupt ${what})`);
  }
  const r = schema.safeParse(doc);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new UserError(`${path}: ${issue.path.join(".") || "(top level)"}: ${issue.message} (a corrupt ${what})`);
  }
  return r.data;
}

/**
 * SHA-256 of the token ids a cache scores (both splits, with the context), for
 * CacheIdentity.corpus: one definition for the builder and the readers that check it.
 */
export function corpusHash(train: Int32Array, heldout: Int32Array, context: number): string {
  const h = createHash("sha256");
  h.update(`distill-cache-corpus context=${context} train=${train.length} heldout=${heldout.length}\n`);
  for (const a of [train, heldout]) {
    const le = new Int32Array(a); // a copy, so a subarray's neighbours are not hashed
    h.update(new Uint8Array(le.buffer));
  }
  return h.digest("hex");
}


/** A chunk's shape within a plan. */
function chunkMeta(plan: CachePlan, split: CacheSplit, chunk: number): ChunkMeta {
  const total = plan.windows[split];
  // Chunk c holds windows c, c + C, c + 2C, ... (types.ts chunkCount): its first window is c.
  return { split, chunk, firstWindow: chunk, stride: chunkCount(total, plan.windowsPerChunk), windows: chunkSize(chunk, total, plan.windowsPerChunk), context: plan.context, k: plan.k, vocab: plan.vocab, precision: plan.precision };
}

function entryOf(m: ChunkMeta, bytes: Uint8Array): CacheShardEntry {
  return { file: chunkFile(m.split, m.chunk), split: m.split, chunk: m.chunk, firstWindow: m.firstWindow, windows: m.windows, rows: m.windows * m.context, bytes: bytes.length, sha256: sha256(bytes) };
}

const shardFileName = (index: number, count: number) => `shard-${index}-of-${count}.json`;
const SHARD_RE = /^shard-(\d+)-of-(\d+)\.json$/;

function checkInt(name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new UserError(`${name}: expected an integer ≥ ${min}, got ${v}`);
}

export async function buildCache(o: BuildCacheOptions): Promise<BuildCacheResult> {
  checkInt("k", o.k, 1);
  checkInt("vocab", o.vocab, 1);
  checkInt("context", o.context, 1);
  if (o.k > o.vocab) throw new UserError(`k: ${o.k} is more than the vocabulary's ${o.vocab} tokens`);
  const shard = o.shard ?? { index: 0, count: 1 };
  checkInt("--shard count", shard.count, 1);
  if (!Number.isInteger(shard.index) || shard.index < 0 || shard.index >= shard.count) throw new UserError(`--shard: index ${shard.index} is not in 0..${shard.count - 1}`);
  const batchWindows = o.batchWindows ?? 8;
  checkInt("batchWindows", batchWindows, 1);
  const concurrency = o.concurrency ?? 1;
  checkInt("concurrency", concurrency, 1);
  for (const s of SPLITS) if (o[s].length % o.context !== 0) throw new Error(`cache ${s} windows: ${o[s].length} ids is not a multiple of the context ${o.context}`);
  const plan: CachePlan = {
    schema: CACHE_SCHEMA,
    teacher: o.identity.teacher,
    tokenizer: o.identity.tokenizer,
    corpus: o.identity.corpus,
    k: o.k,
    vocab: o.vocab,
    context: o.context,
    precision: o.precision ?? "quantized",
    windows: { train: o.train.length / o.context, heldout: o.heldout.length / o.context },
    windowsPerChunk: WINDOWS_PER_CHUNK,
    codec: CODEC,
  };
  const dir = o.dir;
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new UserError(`${dir}: exists and is not a folder; a cache is a folder`);
  ensureWritableDir(dir); // one line for a read-only disk, permission denied, ...
  // Temporary chunks of a killed build (writeFileAtomic's `.NAME.PID.tmp`) are garbage.
  removeStaleTemps(dir);
  const planPath = join(dir, "plan.json");
  if (existsSync(planPath)) {
    const have = readJson(planPath, PlanSchema, "cache plan");
    const diff = planDifference(have, plan, planPath, "this build");
    if (diff) throw new UserError(`${dir}: another cache is being filled here: ${diff}`);
  } else {
    writeFileAtomic(planPath, JSON.stringify(plan, null, 2) + "\n");
  }

  const owned: ChunkMeta[] = [];
  for (const split of SPLITS) {
    for (let c = 0; c < chunkCount(plan.windows[split], plan.windowsPerChunk); c++) if (c % shard.count === shard.index) owned.push(chunkMeta(plan, split, c));
  }
  const total = owned.reduce((a, m) => a + m.windows, 0);
  let done = 0;
  let scored = 0;
  const entries: CacheShardEntry[] = [];
  const limit = pLimit(concurrency);
  for (const m of owned) {
    const path = join(dir, chunkFile(m.split, m.chunk));
    if (existsSync(path)) {
      // A chunk is renamed in only when whole; a file of the wrong size is rewritten.
      const bytes = readFileBounded(path, MAX_CHUNK_BYTES, "cache chunk");
      if (chunkRows(bytes) === m.windows * m.context) {
        entries.push(entryOf(m, bytes));
        done += m.windows;
        o.progress?.(done, total);
        continue;
      }
    }
    const rows = m.windows * m.context;
    const labels: TopKLabels = { kind: "topk", rows, classes: o.vocab, k: o.k, ids: new Int32Array(rows * o.k), logprobs: new Float32Array(rows * o.k), logTail: new Float32Array(rows) };
    const source = o[m.split];
    const jobs: Promise<void>[] = [];
    for (let lo = 0; lo < m.windows; lo += batchWindows) {
      const n = Math.min(batchWindows, m.windows - lo);
      const windowOf = (j: number) => m.firstWindow + (lo + j) * m.stride;
      jobs.push(
        limit(async () => {
          const x = new Int32Array(n * o.context);
          for (let j = 0; j < n; j++) x.set(source.subarray(windowOf(j) * o.context, (windowOf(j) + 1) * o.context), j * o.context);
          const s = await o.score(x, [n, o.context]);
          const t = toTopK(s, n * o.context, o.k, o.vocab, (r) => `${m.split} window ${windowOf(Math.floor(r / o.context))} position ${r % o.context}`);
          const r0 = lo * o.context;
          labels.ids.set(t.ids, r0 * o.k);
          labels.logprobs.set(t.logprobs, r0 * o.k);
          labels.logTail.set(t.logTail, r0);
          done += n;
          o.progress?.(done, total);
        }),
      );
    }
    // allSettled first: no call of this chunk is still writing into `labels` when one fails.
    const settled = await Promise.allSettled(jobs);
    for (const r of settled) if (r.status === "rejected") throw r.reason;
    const bytes = encodeChunk(m, labels);
    writeFileAtomic(path, bytes);
    entries.push(entryOf(m, bytes));
    scored += m.windows;
  }
  writeFileAtomic(join(dir, shardFileName(shard.index, shard.count)), JSON.stringify({ plan, shard, chunks: entries }, null, 2) + "\n");
  return { scoredWindows: scored, manifest: shard.count === 1 ? mergeCache(dir) : null };
}

/**
 * Verifies every shard's checksum and coverage, then writes manifest.json (atomically): the
 * finished shards of one count N (shard-0-of-N.json … shard-(N−1)-of-N.json) must list every
 * chunk of both splits exactly once, and every chunk file must have the bytes and SHA-256 its
 * shard recorded.
 */
export function mergeCache(dir: string): CacheManifest {
  const planPath = join(dir, "plan.json");
  if (!existsSync(planPath)) throw new UserError(`${dir}: no plan.json; not a soft-label cache folder`);
  const plan = readJson(planPath, PlanSchema, "cache plan");
  const groups = new Map<number, Map<number, string>>();
  for (const name of readdirSync(dir)) {
    const m = SHARD_RE.exec(name);
    if (!m) continue;
    const [i, n] = [Number(m[1]), Number(m[2])];
    if (i >= n) continue;
    if (!groups.has(n)) groups.set(n, new Map());
    groups.get(n)!.set(i, name);
  }
  if (groups.size === 0) throw new UserError(`${dir}: no shard has finished (no shard-I-of-N.json); run the cache build first`);
  const complete = [...groups].filter(([n, g]) => g.size === n).sort((a, b) => a[0] - b[0]);
  if (complete.length === 0) {
    const [n, g] = [...groups].sort((a, b) => b[1].size - a[1].size)[0];
    let missing = 0;
    while (g.has(missing)) missing++;
    throw new UserError(`${join(dir, shardFileName(missing, n))}: missing (shard ${missing} of ${n} has not finished)`);
  }
  let first: unknown = null;
  for (const [n] of complete) {
    try {
      return mergeGroup(dir, plan, n);
    } catch (e) {
      first ??= e;
    }
  }
  throw first;
}

function mergeGroup(dir: string, plan: CachePlan, count: number): CacheManifest {
  const listed = new Map<string, { entry: CacheShardEntry; by: string }>();
  for (let i = 0; i < count; i++) {
    const name = shardFileName(i, count);
    const path = join(dir, name);
    const doc = readJson(path, ShardSchema, "shard record");
    const diff = planDifference(doc.plan, plan, name, "plan.json");
    if (diff) throw new UserError(`${path}: filled for another cache: ${diff}`);
    for (const e of doc.chunks) {
      const key = `${e.split}/${e.chunk}`;
      const prev = listed.get(key);
      if (prev) throw new UserError(`${join(dir, e.file)}: listed twice (by ${prev.by} and ${name})`);
      listed.set(key, { entry: e, by: name });
    }
  }
  const shards: CacheShardEntry[] = [];
  for (const split of SPLITS) {
    const n = chunkCount(plan.windows[split], plan.windowsPerChunk);
    for (let c = 0; c < n; c++) {
      const file = chunkFile(split, c);
      const path = join(dir, file);
      const got = listed.get(`${split}/${c}`);
      if (!got) throw new UserError(`${path}: missing (no finished shard lists chunk ${c} of ${split})`);
      listed.delete(`${split}/${c}`);
      const m = chunkMeta(plan, split, c);
      const e = got.entry;
      if (e.file !== file || e.firstWindow !== m.firstWindow || e.windows !== m.windows || e.rows !== m.windows * m.context) throw new UserError(`${join(dir, got.by)}: its entry for ${file} does not match plan.json (corrupt shard record)`);
      if (!existsSync(path)) throw new UserError(`${path}: missing (${got.by} lists it)`);
      const bytes = readFileBounded(path, MAX_CHUNK_BYTES, "cache chunk");
      const sum = sha256(bytes);
      if (bytes.length !== e.bytes || sum !== e.sha256) {
        throw new UserError(`${path}: ${bytes.length} bytes with SHA-256 ${sum.slice(0, 12)}…, ${got.by} recorded ${e.bytes} bytes with ${e.sha256.slice(0, 12)}… (corrupt or truncated chunk)`);
      }
      shards.push(e);
    }
  }
  const extra = [...listed.values()][0];
  if (extra) throw new UserError(`${join(dir, extra.by)}: lists ${extra.entry.file}, which plan.json has no room for (corrupt shard record)`);
  const { codec: _codec, ...rest } = plan;
  const manifest: CacheManifest = { ...rest, rows: (plan.windows.train + plan.windows.heldout) * plan.context, shards };
  writeFileAtomic(join(dir, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
  return manifest;
}

export interface CacheReader {
  manifest: CacheManifest;
  /**
   * Soft labels of these windows of a split, in this order: rows = windows.length × context,
   * row-major. Streaming: keeps at most two chunks decoded.
   */
  softLabels(split: CacheSplit, windows: Int32Array): Promise<TopKLabels>;
  close(): Promise<void>;
  /** Chunk files loaded (read, verified, decoded) so far, and the most held decoded at once. */
  stats?: { loads: number; maxDecoded: number };
}

interface Decoded {
  ids: Int32Array;
  logprobs: Float32Array;
  logTail: Float32Array;
}

/** Chunks kept decoded: students read chunk by chunk, and a batch may straddle two. */
const KEEP_DECODED = 2;

/**
 * Opens a merged cache; refuses one whose identity (or context, k, vocab) differs from
 * `expect` (one line naming the field and both values).
 */
export function openCache(dir: string, expect: Partial<CacheIdentity> & { context?: number; k?: number; vocab?: number } = {}): CacheReader {
  const mpath = join(dir, "manifest.json");
  if (!existsSync(mpath)) {
    const unfinished = existsSync(join(dir, "plan.json"));
    throw new UserError(`${dir}: no manifest.json (${unfinished ? "an unfinished cache: finish the build, or merge its shards" : "not a soft-label cache folder"})`);
  }
  const manifest = readJson(mpath, ManifestSchema, "cache manifest") as CacheManifest;
  if (manifest.schema !== CACHE_SCHEMA) throw new UserError(`${mpath}: schema ${manifest.schema}, this distill reads schema ${CACHE_SCHEMA}; rebuild the cache`);
  for (const f of ["teacher", "tokenizer", "corpus", "context", "k", "vocab"] as const) {
    const want = expect[f];
    if (want !== undefined && manifest[f] !== want) throw new UserError(`${mpath}: ${f} is ${manifest[f]}, the recipe's is ${want}`);
  }
  const byKey = new Map<string, CacheShardEntry>();
  for (const e of manifest.shards) byKey.set(`${e.split}/${e.chunk}`, e);
  for (const split of SPLITS) {
    for (let c = 0; c < chunkCount(manifest.windows[split], manifest.windowsPerChunk); c++) {
      if (!byKey.has(`${split}/${c}`)) throw new UserError(`${mpath}: no entry for chunk ${c} of ${split} (corrupt manifest)`);
    }
  }
  // Each chunk's SHA-256 is checked when it is first read, which may be hours into a student's
  // training (or never, for chunks a short run does not reach): a missing or truncated chunk is
  // found here, before anything trains, by its size alone.
  for (const e of manifest.shards) {
    const path = join(dir, e.file);
    let size: number;
    try {
      size = statSync(path).size;
    } catch {
      throw new UserError(`${path}: missing (manifest.json lists it: chunk ${e.chunk} of ${e.split}); the cache is incomplete`);
    }
    if (size !== e.bytes) throw new UserError(`${path}: ${size} bytes, manifest.json says ${e.bytes} (a truncated or corrupt chunk)`);
  }
  const { k, context } = manifest;
  const decoded = new Map<string, Promise<Decoded>>();
  const stats = { loads: 0, maxDecoded: 0 };
  const plan = { ...manifest, codec: CODEC };

  const load = async (split: CacheSplit, c: number): Promise<Decoded> => {
    const e = byKey.get(`${split}/${c}`)!;
    const path = join(dir, e.file);
    const bytes = readFileBounded(path, MAX_CHUNK_BYTES, "cache chunk");
    const sum = sha256(bytes);
    if (sum !== e.sha256) throw new UserError(`${path}: SHA-256 ${sum.slice(0, 12)}… does not match manifest.json's ${e.sha256.slice(0, 12)}… (corrupt or truncated chunk)`);
    const m = chunkMeta(plan, split, c);
    const rows = m.windows * context;
    const out = { ids: new Int32Array(rows * k), logprobs: new Float32Array(rows * k), logTail: new Float32Array(rows) };
    await decodeChunk(bytes, m, out, 0, path);
    stats.loads++;
    return out;
  };
  const chunk = (split: CacheSplit, c: number): Promise<Decoded> => {
    const key = `${split}/${c}`;
    let p = decoded.get(key);
    if (p) {
      decoded.delete(key); // re-inserted below: most recently used last
    } else {
      p = load(split, c);
      p.catch(() => decoded.delete(key));
    }
    decoded.set(key, p);
    while (decoded.size > KEEP_DECODED) decoded.delete(decoded.keys().next().value!);
    stats.maxDecoded = Math.max(stats.maxDecoded, decoded.size);
    return p;
  };

  return {
    manifest,
    stats,
    async softLabels(split, windows) {
      const total = manifest.windows[split];
      const rows = windows.length * context;
      const out: TopKLabels = { kind: "topk", rows, classes: manifest.vocab, k, ids: new Int32Array(rows * k), logprobs: new Float32Array(rows * k), logTail: new Float32Array(rows) };
      for (let i = 0; i < windows.length; i++) {
        const w = windows[i];
        if (!(Number.isInteger(w) && w >= 0 && w < total)) throw new RangeError(`${dir}: window ${w} of ${split} is outside the cache's ${total}`);
        const chunks = chunkCount(total, manifest.windowsPerChunk);
        const c = w % chunks;
        const d = await chunk(split, c);
        const r0 = Math.floor(w / chunks) * context;
        out.ids.set(d.ids.subarray(r0 * k, (r0 + context) * k), i * context * k);
        out.logprobs.set(d.logprobs.subarray(r0 * k, (r0 + context) * k), i * context * k);
        out.logTail.set(d.logTail.subarray(r0, r0 + context), i * context);
      }
      return out;
    },
    async close() {
      decoded.clear();
    },
  };
}

/** Reads plan.json (for tools that report on a cache being filled). */
export function readPlan(dir: string): CachePlan {
  return readJson(join(dir, "plan.json"), PlanSchema, "cache plan");
}
