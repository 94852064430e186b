// `distill serve`: an OpenAI-compatible HTTP server (fastify) over a model distill can load, on
// the loopback address only. It speaks the parts of OpenAI's and vLLM's protocol a distillation
// client needs: /v1/completions with echo and log-probabilities (OpenAI's `logprobs` and vLLM's
// `prompt_logprobs`), /v1/chat/completions, /v1/models, /tokenize and /detokenize.
import { randomBytes, randomInt } from "node:crypto";
import Fastify, { type FastifyInstance } from "fastify";
import { currentDevice, initDevice } from "../engine/index.js";
import { deriveSeed } from "../util/rng.js";
import { UserError } from "../util/errors.js";
import { loadServedModel, positionScores, sampleNext, scoreSequence, type PositionScore, type ServedModel } from "./model.js";
import { ChatRequest, CompletionRequest, DetokenizeRequest, HttpError, TokenizeRequest, errorBody, parseBody } from "./protocol.js";

export interface ServeOptions {
  /** Default 0: any free port. The server listens on the loopback address only. */
  port?: number;
  /** The largest `logprobs` a request may ask for (default 20, as vLLM). */
  maxLogprobs?: number;
  /** Act like llama.cpp's server: generate, but return no prompt log-probabilities. */
  generateOnly?: boolean;
  /** The model name /v1/models reports (default: the file's base name). */
  name?: string;
}

export interface RunningServer {
  url: string;
  model: string;
  close(): Promise<void>;
}

export const HOST = "127.0.0.1";
/** OpenAI's default for /v1/completions. */
const DEFAULT_MAX_TOKENS = 16;

/** The plain chat template: one "role: content" line per message, then "assistant:" to continue. */
export function chatPrompt(messages: { role: string; content: string }[]): string {
  return messages.map((m) => `${m.role}: ${m.content}\n`).join("") + "assistant:";
}

interface Ctx {
  m: ServedModel;
  name: string;
  maxLogprobs: number;
  generateOnly: boolean;
  created: number;
}

function checkModel(ctx: Ctx, model: string | undefined): void {
  if (model !== undefined && model !== ctx.name) throw new HttpError(404, `The model \`${model}\` does not exist.`, "model");
}

/** The prompts of a request as token ids, each checked against the vocabulary. */
function promptIds(ctx: Ctx, prompt: CompletionRequest["prompt"]): Int32Array[] {
  const list: (string | number[])[] = typeof prompt === "string" ? [prompt] : typeof prompt[0] === "number" ? [prompt as number[]] : (prompt as (string | number[])[]);
  return list.map((p) => {
    const ids = typeof p === "string" ? ctx.m.tokenizer.encode(p) : Int32Array.from(p);
    if (ids.length === 0) throw new HttpError(400, "prompt: the prompt is empty (no tokens)", "prompt");
    for (const id of ids) if (id >= ctx.m.vocab) throw new HttpError(400, `prompt: token id ${id} is outside the vocabulary of ${ctx.m.vocab}`, "prompt");
    return ids;
  });
}

/**
 * vLLM's message for a request longer than the model, naming both numbers. The model reads every
 * token but the last generated one, so prompt + max_tokens may be context + 1 (vLLM stops one
 * earlier); a full-context prompt can then be scored with max_tokens 1.
 */
function checkLength(ctx: Ctx, promptLen: number, maxTokens: number): void {
  if (promptLen > ctx.m.context || promptLen + maxTokens > ctx.m.context + 1) {
    throw new HttpError(
      400,
      `This model's maximum context length is ${ctx.m.context} tokens. However, you requested ${promptLen + maxTokens} tokens (${promptLen} in the messages, ${maxTokens} in the completion). Please reduce the length of the messages or completion.`,
      "max_tokens",
    );
  }
}

function samplingOf(r: { temperature?: number | null; top_p?: number | null; top_k?: number | null }, seed: number) {
  const topK = r.top_k ?? 0;
  return { temperature: r.temperature ?? 1, topP: r.top_p ?? 1, ...(topK > 0 ? { topK } : {}), seed };
}

/** A key that cannot touch a prototype: the object has none. */
function dict<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

async function completion(ctx: Ctx, body: unknown) {
  const r = parseBody(CompletionRequest, body);
  checkModel(ctx, r.model);
  if (r.stop !== undefined && r.stop !== null && r.stop.length > 0) throw new HttpError(400, "stop: stop sequences are not supported", "stop");
  const echo = r.echo ?? false;
  const maxTokens = r.max_tokens ?? DEFAULT_MAX_TOKENS;
  // max_tokens 0 only scores the prompt, as vLLM allows with echo.
  if (maxTokens === 0 && !echo) throw new HttpError(400, "max_tokens: must be at least 1 unless echo is true", "max_tokens");
  for (const [field, v] of [["logprobs", r.logprobs], ["prompt_logprobs", r.prompt_logprobs]] as const) {
    if (v !== undefined && v !== null && v > ctx.maxLogprobs) {
      const what = field === "logprobs" ? "sample" : "prompt";
      throw new HttpError(400, `Requested ${what} logprobs of ${v}, which is greater than max allowed: ${ctx.maxLogprobs}`, field);
    }
  }
  const prompts = promptIds(ctx, r.prompt);
  for (const p of prompts) checkLength(ctx, p.length, maxTokens);
  const wantLogprobs = !ctx.generateOnly && r.logprobs !== undefined && r.logprobs !== null;
  const wantPrompt = !ctx.generateOnly && r.prompt_logprobs !== undefined && r.prompt_logprobs !== null;
  const k = Math.max(wantLogprobs ? r.logprobs! : 0, wantPrompt ? r.prompt_logprobs! : 0);
  const asIds = r.return_tokens_as_token_ids ?? false;
  const tok = ctx.m.tokenizer;
  const tokenText = (id: number) => (asIds ? `token_id:${id}` : tok.decode([id]));
  const seed = r.seed ?? randomInt(2 ** 31);
  let completionTokens = 0;
  let promptTokens = 0;

  const choices = await Promise.all(
    prompts.map(async (p, index) => {
      const P = p.length;
      promptTokens += P;
      const opts = samplingOf(r, index === 0 ? seed : deriveSeed(seed, "choice", index));
      let seq: Int32Array;
      let scores: PositionScore[] = [];
      if (maxTokens === 1 && (wantLogprobs || wantPrompt)) {
        // What scoring clients send: one forward gives every prompt position and the next token.
        const rows = await ctx.m.logits(p);
        seq = new Int32Array(P + 1);
        seq.set(p);
        seq[P] = sampleNext(rows.subarray((P - 1) * ctx.m.vocab), opts, 0);
        scores = positionScores(rows, seq.subarray(1), ctx.m.vocab, k);
      } else {
        seq = await ctx.m.generate(p, maxTokens, opts);
        if (wantLogprobs || wantPrompt) scores = await scoreSequence(ctx.m, seq, k);
      }
      completionTokens += seq.length - P;
      const generated = seq.subarray(P);
      const text = (echo ? tok.decode(p) : "") + tok.decode(generated);
      const choice: Record<string, unknown> = { index, text, logprobs: null, finish_reason: "length", stop_reason: null };
      if (wantLogprobs) {
        const kk = r.logprobs!;
        // Positions reported: the echoed prompt (its first token has no distribution) and the generated tokens.
        const from = echo ? 0 : P;
        const tokens: string[] = [];
        const tokenLogprobs: (number | null)[] = [];
        const top: (Record<string, number> | null)[] = [];
        const offsets: number[] = [];
        let offset = 0;
        for (let i = from; i < seq.length; i++) {
          const t = tokenText(seq[i]);
          tokens.push(t);
          // Offsets into `text` (decoded lengths, also when the tokens are spelled "token_id:N").
          offsets.push(offset);
          offset += asIds ? tok.decode([seq[i]]).length : t.length;
          if (i === 0) {
            tokenLogprobs.push(null);
            top.push(null);
            continue;
          }
          const s = scores[i - 1];
          tokenLogprobs.push(s.logprob);
          const d = dict<number>();
          for (let j = 0; j < s.topIds.length && j < kk; j++) d[tokenText(s.topIds[j])] = s.topLogprobs[j];
          d[t] = s.logprob; // the token itself, as vLLM adds it when it is not among the top k
          top.push(d);
        }
        choice.logprobs = { tokens, token_logprobs: tokenLogprobs, top_logprobs: top, text_offset: offsets };
      }
      if (wantPrompt) {
        const kk = r.prompt_logprobs!;
        const list: (Record<string, { logprob: number; rank: number; decoded_token: string }> | null)[] = [null];
        for (let i = 1; i < P; i++) {
          const s = scores[i - 1];
          const d = dict<{ logprob: number; rank: number; decoded_token: string }>();
          for (let j = 0; j < s.topIds.length && j < kk; j++) d[String(s.topIds[j])] = { logprob: s.topLogprobs[j], rank: j + 1, decoded_token: tokenText(s.topIds[j]) };
          d[String(s.id)] = { logprob: s.logprob, rank: s.rank, decoded_token: tokenText(s.id) };
          list.push(d);
        }
        choice.prompt_logprobs = list;
      }
      return choice;
    }),
  );
  return {
    id: `cmpl-${randomBytes(12).toString("hex")}`,
    object: "text_completion",
    created: Math.floor(Date.now() / 1000),
    model: ctx.name,
    choices,
    usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
  };
}

async function chat(ctx: Ctx, body: unknown) {
  const r = parseBody(ChatRequest, body);
  checkModel(ctx, r.model);
  if (r.stop !== undefined && r.stop !== null && r.stop.length > 0) throw new HttpError(400, "stop: stop sequences are not supported", "stop");
  const ids = ctx.m.tokenizer.encode(chatPrompt(r.messages));
  const maxTokens = r.max_completion_tokens ?? r.max_tokens ?? Math.max(1, ctx.m.context + 1 - ids.length);
  if (maxTokens === 0) throw new HttpError(400, "max_tokens: must be at least 1", "max_tokens");
  checkLength(ctx, ids.length, maxTokens);
  const seq = await ctx.m.generate(ids, maxTokens, samplingOf(r, r.seed ?? randomInt(2 ** 31)));
  return {
    id: `chatcmpl-${randomBytes(12).toString("hex")}`,
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model: ctx.name,
    choices: [{ index: 0, message: { role: "assistant", content: ctx.m.tokenizer.decode(seq.subarray(ids.length)) }, logprobs: null, finish_reason: "length" }],
    usage: { prompt_tokens: ids.length, completion_tokens: maxTokens, total_tokens: ids.length + maxTokens },
  };
}

function buildApp(ctx: Ctx): FastifyInstance {
  // Room for a list of long token-id prompts (the default is 1 MiB).
  const app = Fastify({ logger: false, bodyLimit: 64 * 2 ** 20 });
  app.setErrorHandler((e, _req, reply) => {
    if (e instanceof HttpError) return reply.code(e.status).send(errorBody(e.status, e.message, e.param));
    // fastify's own (malformed JSON, a body too large, a wrong content type) carry their status.
    const status = (e as { statusCode?: number }).statusCode;
    if (status && status >= 400 && status < 500) return reply.code(status).send(errorBody(status, (e as Error).message.split("\n")[0]));
    if (e instanceof UserError) return reply.code(400).send(errorBody(400, e.message));
    process.stderr.write(`distill serve: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return reply.code(500).send(errorBody(500, "internal server error"));
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send(errorBody(404, `Not found: ${req.method} ${req.url.split("?")[0]}`)));

  app.get("/v1/models", async () => ({
    object: "list",
    data: [{ id: ctx.name, object: "model", created: ctx.created, owned_by: "distill", root: ctx.name, parent: null, max_model_len: ctx.m.context }],
  }));
  app.get("/health", async () => ({}));
  app.post("/v1/completions", (req) => completion(ctx, req.body));
  app.post("/v1/chat/completions", (req) => chat(ctx, req.body));
  if (!ctx.generateOnly) {
    app.post("/tokenize", async (req) => {
      const r = parseBody(TokenizeRequest, req.body);
      checkModel(ctx, r.model);
      const tokens = Array.from(ctx.m.tokenizer.encode(r.prompt));
      return { tokens, count: tokens.length, max_model_len: ctx.m.context };
    });
    app.post("/detokenize", async (req) => {
      const r = parseBody(DetokenizeRequest, req.body);
      checkModel(ctx, r.model);
      for (const id of r.tokens) if (id >= ctx.m.vocab) throw new HttpError(400, `tokens: token id ${id} is outside the vocabulary of ${ctx.m.vocab}`, "tokens");
      return { prompt: ctx.m.tokenizer.decode(r.tokens) };
    });
  }
  return app;
}

/** Serves a distill LM checkpoint, a Hugging Face Llama folder or a GGUF file. */
export async function startServer(modelPath: string, o: ServeOptions = {}): Promise<RunningServer> {
  const port = o.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UserError(`--port ${port}: expected an integer from 0 to 65535`);
  const maxLogprobs = o.maxLogprobs ?? 20;
  if (!Number.isInteger(maxLogprobs) || maxLogprobs < 0) throw new UserError(`--max-logprobs ${maxLogprobs}: expected a non-negative integer`);
  try {
    currentDevice();
  } catch {
    await initDevice("wasm");
  }
  const m = await loadServedModel(modelPath);
  const name = o.name ?? m.name;
  if (name === "") throw new UserError("--name: the model name is empty");
  const app = buildApp({ m, name, maxLogprobs, generateOnly: o.generateOnly ?? false, created: Math.floor(Date.now() / 1000) });
  try {
    await app.listen({ host: HOST, port });
  } catch (e) {
    await m.close();
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EADDRINUSE") throw new UserError(`--port ${port}: the port is in use on ${HOST}`);
    if (code === "EACCES") throw new UserError(`--port ${port}: permission denied (ports below 1024 need privileges)`);
    throw e;
  }
  const addr = app.server.address();
  const url = `http://${HOST}:${typeof addr === "object" && addr ? addr.port : port}`;
  let closing: Promise<void> | null = null;
  return {
    url,
    model: name,
    close: () =>
      (closing ??= (async () => {
        await app.close();
        await m.close();
      })()),
  };
}
