// The GGUF teacher's child process: node-llama-cpp (llama.cpp on the CPU) loads the file and
// returns, per position, the k most probable next tokens with their log-probabilities. It runs
// apart from distill because llama.cpp aborts the whole process on some malformed GGUF
// metadata; the parent (teachers/gguf.ts) turns a dead child into a one-line error.
import { getLlama, LlamaLogLevel, type ControlledEvaluateInputItem, type LlamaContext, type LlamaContextSequence, type LlamaModel, type Token } from "node-llama-cpp";

export type ChildRequest =
  | { type: "open"; path: string; context: number; threads: number; sequences: number }
  | { type: "eval"; id: number; tokens: Int32Array; B: number; T: number; k: number }
  | { type: "close" };

export type ChildReply =
  | { type: "ready" }
  | { type: "result"; id: number; ids: Int32Array; logprobs: Float32Array; logTail: Float32Array }
  | { type: "error"; id?: number; message: string };

/** log of the smallest positive float32: a probability llama.cpp rounds to 0 gets this, not −∞. */
const LOG_FLOOR = Math.log(1.4e-45);

let model: LlamaModel | undefined;
let context: LlamaContext | undefined;
let sequences: LlamaContextSequence[] = [];

function send(m: ChildReply): void {
  process.send?.(m);
}

function oneLine(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.split("\n").map((s) => s.trim()).filter(Boolean).join("; ") || "unknown error";
}

async function open(path: string, ctx: number, threads: number, parallel: number): Promise<void> {
  const llama = await getLlama({
    gpu: false,
    build: "never",
    skipDownload: true,
    progressLogs: false,
    // llama.cpp's threads spin while they wait: more of them than free cores (its default
    // counts every core, and distill's own threads are there too) made a batch 60× slower.
    maxThreads: threads,
    logLevel: LlamaLogLevel.error,
    // llama.cpp's own log lines go to stderr, where the parent keeps the last ones for its error.
    logger: (_level, message) => process.stderr.write(message.endsWith("\n") ? message : `${message}\n`),
  });
  model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  // F32 keys and values and no flash attention: the teacher's numbers as close to the file's
  // weights as llama.cpp computes them (the default F16 cache rounds every key and value).
  // One slot more than the longest row: node-llama-cpp shifts the context (drops the first
  // tokens) before evaluating a row's last token when the row fills it exactly. Several
  // sequences let rows be decoded together in one batch.
  context = await model.createContext({
    contextSize: ctx + 1,
    batchSize: (ctx + 1) * parallel,
    sequences: parallel,
    threads,
    flashAttention: false,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
  });
  sequences = Array.from({ length: parallel }, () => context!.getSequence());
  send({ type: "ready" });
}

/**
 * Top-k next-token log-probabilities, and the log of the mass outside them, for every position of B rows of T tokens. node-llama-cpp
 * has a topK sampling option, but in its sampler chain top-k renormalises over the kept tokens
 * (and greedy sampling skips it), so the full distribution is read and the top k taken here.
 */
async function evaluate(tokens: Int32Array, B: number, T: number, k: number): Promise<{ ids: Int32Array; logprobs: Float32Array; logTail: Float32Array }> {
  const ids = new Int32Array(B * T * k);
  const logprobs = new Float32Array(B * T * k);
  const logTail = new Float32Array(B * T);
  const row = async (seq: LlamaContextSequence, b: number) => {
    await seq.clearHistory(); // each row starts from an empty cache
    const input = Array.from(tokens.subarray(b * T, (b + 1) * T), (t): ControlledEvaluateInputItem => [t as Token, { generateNext: { probabilities: true } }]);
    const out = await seq.controlledEvaluate(input, {
      // A shift would silently condition later positions on a truncated row: make it an error.
      contextShift: {
        strategy: () => {
          throw new Error(`context shift requested for a row of ${T} tokens`);
        },
      },
    });
    for (let t = 0; t < T; t++) {
      const probs = out[t]?.next.probabilities;
      if (!probs) throw new Error(`llama.cpp returned no probabilities for position ${t}`);
      // The map is sorted by descending probability. The tail is summed from the tokens not
      // kept (float64), which stays exact where 1 − Σ top-k would cancel.
      let j = 0;
      let tail = 0;
      const base = (b * T + t) * k;
      for (const [id, p] of probs) {
        if (j < k) {
          ids[base + j] = id;
          logprobs[base + j] = p > 0 ? Math.max(Math.log(p), LOG_FLOOR) : LOG_FLOOR;
          j++;
        } else tail += p;
      }
      if (j < k) throw new Error(`llama.cpp returned ${j} probabilities, fewer than k = ${k}`);
      logTail[b * T + t] = tail > 0 ? Math.log(tail) : -Infinity;
    }
  };
  // Sequence s takes rows s, s + S, s + 2S, ...; the sequences run side by side.
  await Promise.all(
    sequences.map(async (seq, s) => {
      for (let b = s; b < B; b += sequences.length) await row(seq, b);
      await seq.clearHistory();
    }),
  );
  return { ids, logprobs, logTail };
}

async function close(): Promise<void> {
  await context?.dispose();
  await model?.dispose();
  process.exit(0);
}

process.on("message", (m: ChildRequest) => {
  if (m.type === "open") {
    open(m.path, m.context, m.threads, m.sequences).catch((e) => send({ type: "error", message: oneLine(e) }));
  } else if (m.type === "eval") {
    evaluate(m.tokens, m.B, m.T, m.k).then(
      (r) => send({ type: "result", id: m.id, ...r }),
      (e) => send({ type: "error", id: m.id, message: oneLine(e) }),
    );
  } else if (m.type === "close") {
    void close();
  }
});
// The parent went away: nothing left to serve.
process.on("disconnect", () => process.exit(0));
