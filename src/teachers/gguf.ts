// A GGUF file as a teacher: llama.cpp (through node-llama-cpp, on the CPU) gives per-position
// top-k next-token probabilities, so the loss runs in top-k + tail mode.
//
// llama.cpp aborts the whole process on some malformed metadata (a missing feed_forward_length
// or head_count ends in a failed assertion), so the file is loaded in a child process
// (gguf-child.ts); this side first checks the header itself for clear one-line errors, and a
// child that dies anyway becomes a one-line UserError naming the file.
import { fork, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import type { ChildReply, ChildRequest } from "./gguf-child.js";
import type { ExternalTeacher, SoftLabels } from "./types.js";
import { UserError } from "../util/errors.js";

const GGUF_MAGIC = 0x46554747; // "GGUF" as a little-endian uint32

export interface GgufHeader {
  architecture: string;
  /** Entries of tokenizer.ggml.tokens: llama.cpp's vocabulary size. */
  vocab: number;
  /** Sum of the tensors' element counts. */
  parameters: number;
  /** The model's training context ({arch}.context_length). */
  context: number;
  tensors: number;
}

/** Keys llama.cpp needs for a transformer; without some of them it aborts rather than reports. */
const REQUIRED_ARCH_KEYS = ["context_length", "embedding_length", "block_count", "feed_forward_length", "attention.head_count"];

function firstLine(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.split("\n").map((s) => s.trim()).find(Boolean) ?? "unknown error";
}

/** A metadata value by its dotted key, or undefined; walks own properties only. */
function metaValue(meta: unknown, key: string): unknown {
  let node: unknown = meta;
  for (const part of key.split(".")) {
    if (typeof node !== "object" || node === null || !Object.hasOwn(node, part)) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

/** Bytes per element of the unquantised ggml types (F32, F16, BF16); null for block-quantised ones. */
function elementBytes(ggmlType: number): number | null {
  return ggmlType === 0 ? 4 : ggmlType === 1 || ggmlType === 30 ? 2 : null;
}

/**
 * Reads and checks a GGUF file's header in this process: magic, version, counts, the keys
 * llama.cpp needs, and that the tensors lie inside the file. Every problem is a one-line
 * UserError naming the file.
 */
export async function readGgufHeader(path: string): Promise<GgufHeader> {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new UserError(`${path}: not a regular file, expected a GGUF file`);
    size = st.size;
  } catch (e) {
    if (e instanceof UserError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`${path}: ${code === "ENOENT" ? "GGUF file not found" : `cannot read the GGUF file (${code ?? firstLine(e)})`}`);
  }
  // The fixed part first: magic, version, tensor and key counts.
  const head = Buffer.alloc(24);
  const fd = openSync(path, "r");
  let got: number;
  try {
    got = readSync(fd, head, 0, 24, 0);
  } finally {
    closeSync(fd);
  }
  if (got < 4 || head.readUInt32LE(0) !== GGUF_MAGIC) throw new UserError(`${path}: not a GGUF file (it does not start with "GGUF")`);
  if (got < 24) throw new UserError(`${path}: truncated GGUF file (${size} bytes, shorter than its header)`);
  const version = head.readUInt32LE(4);
  if (version !== 2 && version !== 3) throw new UserError(`${path}: GGUF version ${version}; llama.cpp reads versions 2 and 3`);
  const tensorCount = head.readBigUInt64LE(8);
  const kvCount = head.readBigUInt64LE(16);
  // A tensor info takes at least 8 + 4 + 8 + 4 + 8 bytes and a key/value at least 8 + 4 + 1.
  if (tensorCount === 0n) throw new UserError(`${path}: the GGUF file holds no tensors`);
  if (tensorCount > BigInt(size) / 32n) throw new UserError(`${path}: corrupt GGUF header: ${tensorCount} tensors in ${size} bytes`);
  if (kvCount > BigInt(size) / 13n) throw new UserError(`${path}: corrupt GGUF header: ${kvCount} metadata entries in ${size} bytes`);

  // The rest through node-llama-cpp's own GGUF reader (JavaScript only; llama.cpp is not loaded).
  const { readGgufFileInfo } = await import("node-llama-cpp");
  let info: Awaited<ReturnType<typeof readGgufFileInfo>>;
  try {
    info = await readGgufFileInfo(path, { sourceType: "filesystem", logWarnings: false, spliceSplitFiles: false });
  } catch (e) {
    throw new UserError(`${path}: truncated or corrupt GGUF file (${firstLine(e)})`);
  }
  // The reader does not stop at the end of the file (it reads zeros past it): check the header's end.
  if (info.infoEndOffset !== undefined && info.infoEndOffset > size) {
    throw new UserError(`${path}: truncated GGUF file: its header runs to byte ${info.infoEndOffset} but the file has ${size} bytes`);
  }
  const meta = info.metadata as unknown;
  const arch = metaValue(meta, "general.architecture");
  if (typeof arch !== "string" || arch === "") throw new UserError(`${path}: GGUF metadata has no general.architecture`);
  for (const k of REQUIRED_ARCH_KEYS) {
    const v = metaValue(meta, `${arch}.${k}`);
    const ok = typeof v === "number" ? v > 0 : Array.isArray(v) && v.length > 0;
    if (!ok) throw new UserError(`${path}: GGUF metadata has no ${arch}.${k}; llama.cpp cannot load the model without it`);
  }
  const model = metaValue(meta, "tokenizer.ggml.model");
  if (typeof model !== "string") throw new UserError(`${path}: GGUF metadata has no tokenizer.ggml.model`);
  const tokens = metaValue(meta, "tokenizer.ggml.tokens");
  if (!Array.isArray(tokens) || tokens.length === 0) throw new UserError(`${path}: GGUF metadata has no tokenizer.ggml.tokens (the vocabulary)`);

  let parameters = 0;
  for (const t of info.tensorInfo ?? []) {
    const n = t.dimensions.reduce<number>((a, d) => a * Number(d), 1);
    parameters += n;
    const start = Number(t.fileOffset);
    const per = elementBytes(t.ggmlType);
    const end = per === null ? start : start + n * per;
    if (end > size || start > size) {
      throw new UserError(`${path}: truncated GGUF file: tensor "${t.name}" ends at byte ${end} but the file has ${size} bytes`);
    }
  }
  return { architecture: arch, vocab: tokens.length, parameters, context: Number(metaValue(meta, `${arch}.context_length`)), tensors: Number(tensorCount) };
}

/** node-llama-cpp in a child process: one request at a time; a dead child fails every request. */
class GgufChild {
  private readonly child: ChildProcess;
  private readonly lastLines: string[] = [];
  private dead: UserError | null = null;
  private next = 0;
  private pending = new Map<number | "open", { resolve: (r: ChildReply) => void; reject: (e: Error) => void }>();
  private queue: Promise<unknown> = Promise.resolve();
  private exited: Promise<void>;
  private closing = false;

  constructor(private readonly path: string) {
    // TypeScript under tsx (tests, `npm run distill`), JavaScript once built: the child is the
    // file of the same kind beside this one, and under tsx it needs tsx's loader too.
    const ext = extname(fileURLToPath(import.meta.url));
    const script = fileURLToPath(new URL(`./gguf-child${ext === ".ts" ? ".ts" : ".js"}`, import.meta.url));
    const execArgv = ext === ".ts" ? ["--import", import.meta.resolve("tsx")] : [];
    this.child = fork(script, [], {
      execArgv,
      serialization: "advanced", // typed arrays cross as they are
      stdio: ["ignore", "ignore", "pipe", "ipc"],
      env: { ...process.env, NODE_LLAMA_CPP_SKIP_DOWNLOAD: "true" },
    });
    let partial = "";
    this.child.stderr?.setEncoding("utf8");
    this.child.stderr?.on("data", (chunk: string) => {
      const lines = (partial + chunk).split("\n");
      partial = lines.pop() ?? "";
      for (const l of lines) if (l.trim()) this.lastLines.push(l.trim());
      this.lastLines.splice(0, Math.max(0, this.lastLines.length - 20));
    });
    this.child.on("message", (m: ChildReply) => {
      const key = m.type === "ready" ? "open" : m.type === "error" && m.id === undefined ? "open" : m.id!;
      const p = this.pending.get(key);
      if (!p) return;
      this.pending.delete(key);
      p.resolve(m);
      this.idle();
    });
    this.exited = new Promise((resolve) => {
      this.child.on("exit", (code, signal) => {
        if (partial.trim()) this.lastLines.push(partial.trim());
        const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        // An abort's own message (GGML_ASSERT ...) is the most useful part.
        const why = [...this.lastLines].reverse().find((l) => /error|assert|abort|failed|invalid/i.test(l)) ?? this.lastLines.at(-1);
        this.dead = new UserError(`${this.path}: llama.cpp stopped while running the GGUF teacher: its process ${how}${why ? ` (${why.slice(0, 300)})` : ""}`);
        for (const p of this.pending.values()) p.reject(this.dead);
        this.pending.clear();
        resolve();
      });
      this.child.on("error", (e) => {
        this.dead = new UserError(`${this.path}: cannot start the GGUF teacher's process (${firstLine(e)})`);
        for (const p of this.pending.values()) p.reject(this.dead);
        this.pending.clear();
        resolve();
      });
    });
  }

  /** While nothing is asked of it, the child keeps neither it nor this process alive. */
  private idle(): void {
    if (this.pending.size > 0) return;
    this.child.unref();
    this.child.channel?.unref();
    (this.child.stderr as unknown as { unref?: () => void } | null)?.unref?.();
  }

  private busy(): void {
    this.child.ref();
    this.child.channel?.ref();
    (this.child.stderr as unknown as { ref?: () => void } | null)?.ref?.();
  }

  private request(key: number | "open", msg: ChildRequest): Promise<ChildReply> {
    const run = () =>
      new Promise<ChildReply>((resolve, reject) => {
        if (this.closing) return reject(new UserError(`${this.path}: the GGUF teacher is closed`));
        if (this.dead) return reject(this.dead);
        this.busy();
        this.pending.set(key, { resolve, reject });
        // The channel may close between the check above and the send (the child just died): the
        // exit handler then rejects with the reason; this only catches a send that never left.
        this.child.send(msg, (err) => {
          if (err && this.pending.get(key)?.reject === reject) {
            this.pending.delete(key);
            reject(this.dead ?? new UserError(`${this.path}: the GGUF teacher's process is gone (${firstLine(err)})`));
          }
        });
      });
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  async open(context: number, threads: number, sequences: number): Promise<void> {
    const r = await this.request("open", { type: "open", path: this.path, context, threads, sequences });
    if (r.type === "error") {
      await this.close();
      throw new UserError(`${this.path}: llama.cpp cannot load the GGUF file (${r.message})`);
    }
  }

  async evaluate(tokens: Int32Array, B: number, T: number, k: number): Promise<{ ids: Int32Array; logprobs: Float32Array; logTail: Float32Array }> {
    const id = this.next++;
    const r = await this.request(id, { type: "eval", id, tokens, B, T, k });
    if (r.type === "error") throw new UserError(`${this.path}: llama.cpp failed to evaluate a batch (${r.message})`);
    if (r.type !== "result") throw new Error(`GGUF teacher: unexpected reply ${r.type}`);
    return r;
  }

  async close(): Promise<void> {
    if (this.closing) return this.exited;
    this.closing = true;
    if (this.dead || this.child.exitCode !== null) return this.exited;
    this.busy();
    this.child.send({ type: "close" } satisfies ChildRequest);
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Rows decoded side by side (each a sequence of llama.cpp's context, with its own F32 cache). */
const DEFAULT_SEQUENCES = 1;

/**
 * A GGUF language model as a top-k teacher. `vocab` is the student's vocabulary size (the
 * teacher's must equal it), `context` the longest row it will be asked about, `topK` how many
 * of each position's most probable tokens it returns; `threads` (llama.cpp's, default all cores
 * but one) and `sequences` (rows decoded together in one llama.cpp batch, default 1: no faster with one
 * thread, and each holds its own F32 cache) only change its speed.
 */
export async function openGgufTeacher(
  path: string,
  opts: { topK: number; vocab: number; context: number; threads?: number; sequences?: number },
): Promise<ExternalTeacher> {
  const { topK, vocab, context } = opts;
  // llama.cpp's threads spin while waiting, so leave a core to distill (and to whatever else runs).
  const threads = opts.threads ?? Math.max(1, availableParallelism() - 1);
  const sequences = opts.sequences ?? DEFAULT_SEQUENCES;
  if (!Number.isInteger(threads) || threads < 1) throw new UserError(`GGUF teacher: threads must be a positive integer, got ${threads}`);
  if (!Number.isInteger(sequences) || sequences < 1) throw new UserError(`GGUF teacher: sequences must be a positive integer, got ${sequences}`);
  if (!Number.isInteger(topK) || topK < 1) throw new UserError(`teacher.topK must be a positive integer, got ${topK}`);
  if (!Number.isInteger(context) || context < 1) throw new UserError(`GGUF teacher: context must be a positive integer, got ${context}`);
  const header = await readGgufHeader(path);
  if (header.vocab !== vocab) {
    throw new UserError(`${path}: the GGUF teacher's vocabulary has ${header.vocab} tokens, the student's tokenizer ${vocab}: they must match`);
  }
  if (topK > vocab) throw new UserError(`teacher.topK is ${topK}, more than the vocabulary's ${vocab} tokens`);
  // Past its training context a model's positions are ones it never saw (llama.cpp only warns).
  if (context > header.context) {
    throw new UserError(`${path}: the GGUF teacher was trained on ${header.context} tokens (${header.architecture}.context_length), shorter than the students' windows of ${context}`);
  }
  const child = new GgufChild(path);
  await child.open(context, threads, sequences);
  return {
    kind: "gguf",
    source: path,
    classes: vocab,
    parameters: header.parameters,
    output: "topk",
    async softLabels(x, shape): Promise<SoftLabels> {
      if (!(x instanceof Int32Array) || shape.length !== 2) throw new Error(`GGUF teacher: expected [B, T] int32 token ids, got shape [${shape.join(", ")}]`);
      const [B, T] = shape;
      if (x.length !== B * T) throw new Error(`GGUF teacher: ${x.length} tokens for shape [${B}, ${T}]`);
      if (T > context) throw new UserError(`${path}: rows of ${T} tokens are longer than the teacher's context of ${context}`);
      for (let i = 0; i < x.length; i++) {
        if (x[i] < 0 || x[i] >= vocab) throw new UserError(`${path}: token id ${x[i]} is outside the teacher's vocabulary of ${vocab}`);
      }
      const { ids, logprobs, logTail } = await child.evaluate(x, B, T, topK);
      return { kind: "topk", rows: B * T, classes: vocab, k: topK, ids, logprobs, logTail };
    },
    close: () => child.close(),
  };
}
