// A teacher behind an OpenAI-compatible HTTP server (vLLM, SGLang, `distill serve`, or a load
// balancer in front of many): each window is scored through /v1/completions with the prompt as
// token ids, `echo: true` and `logprobs: k`, and the per-position top-k log-probabilities come
// back as the teacher's soft labels (top-k + tail mode). A server that only generates (llama.cpp's
// server: no prompt log-probabilities) still serves sequence-level KD through `continuations`.
//
// Requests go through one concurrency limit (p-limit) over all addresses; each attempt goes to
// the least busy address, and failures that may pass (429, 5xx, timeouts, dropped connections,
// a cut or malformed JSON body) are retried with exponential backoff and jitter (p-retry),
// honouring Retry-After. The API key lives only in the request header: every message that leaves
// this module passes through `redact`, so a server that echoes it cannot put it into a log.
import pLimit from "p-limit";
import pRetry from "p-retry";
import type { ExternalTeacher, SoftLabels } from "./types.js";
import { logTailOf } from "./teacher.js";
import type { Tokenizer } from "../text/tokenizer.js";
import { UserError } from "../util/errors.js";
import { deriveSeed } from "../util/rng.js";

/** `teacher: { server: {...} }` in an LM recipe. */
export interface ServerTeacherSpec {
  /** One base address (http://host:port) or a list to fan out over. */
  url: string | string[];
  model: string;
  /** The environment variable that holds the API key (never printed or stored). */
  apiKeyEnv?: string;
  topK: number;
  /** Requests in flight at once, over all addresses (default 4 per address). */
  concurrency?: number;
  /** Per request, in milliseconds (default 60000). */
  timeoutMs?: number;
  /** Attempts per request before giving up (default 6). */
  maxAttempts?: number;
  /** First retry's delay in milliseconds, doubled per attempt, times a random 1–2 (default 500). */
  backoffMs?: number;
}

export interface ServerTeacher extends ExternalTeacher {
  /** False for servers that only generate (no prompt log-probabilities, e.g. llama.cpp's). */
  scores: boolean;
  /**
   * The server's continuations of each prompt, re-tokenized with the recipe's tokenizer: the
   * prompt followed by exactly `tokens` ids (as src/nn/generate.ts `generate` returns them).
   */
  continuations(prompts: Int32Array[], tokens: number, seed: number, sampling?: { temperature?: number; topK?: number; topP?: number }): Promise<Int32Array[]>;
  /** Requests retried so far (for logs and the bench). */
  stats: { requests: number; retries: number };
}

export interface OpenServerOptions {
  tokenizer: Tokenizer;
  vocab: number;
  context: number;
  /** The recipe field that holds the spec ("teacher.server"), for error messages. */
  field: string;
  /** Text whose tokenization the server must agree on (default: text decoded from ids spread over the vocabulary). */
  probe?: string;
}

const DEFAULTS = { timeoutMs: 60_000, maxAttempts: 6, backoffMs: 500, perAddress: 4 };
/** The longest Retry-After honoured (a server asking for more is waited on this long, then retried). */
const MAX_RETRY_AFTER_MS = 300_000;

// ---------------------------------------------------------------------------------------------
// Response parsing

/** One position's distribution as a server lists it: token (id or text) → log-probability. */
type Entry = { token: number | string; logprob: number; rank?: number };

/** Turns a returned token ("token_id:N", a number, or its text) into an id of the recipe's vocabulary. */
export type TokenLookup = (token: number | string) => number;

/**
 * A lookup for both key forms: "token_id:N" (vLLM's `return_tokens_as_token_ids`) and decoded
 * token text, mapped through the recipe tokenizer's vocabulary (each id decoded alone). Text that
 * decodes from several ids (byte fallbacks) is ambiguous and refused, naming the token.
 */
export function tokenLookup(tokenizer: Tokenizer, vocab: number, where: string): TokenLookup {
  let byText: Map<string, number> | null = null;
  return (token) => {
    let id: number;
    if (typeof token === "number") id = token;
    else if (/^token_id:-?\d+$/.test(token)) id = Number(token.slice(9));
    else {
      if (!byText) {
        byText = new Map();
        for (let i = 0; i < vocab; i++) {
          const s = tokenizer.decode([i]);
          byText.set(s, byText.has(s) ? -1 : i);
        }
      }
      const hit = byText.get(token);
      if (hit === undefined) throw new UserError(`${where}: the server returned the token ${JSON.stringify(token)}, which is not in the recipe's vocabulary`);
      if (hit < 0) throw new UserError(`${where}: the server returned the token ${JSON.stringify(token)}, which several ids of the recipe's vocabulary decode to: use a server that returns token ids (vLLM's return_tokens_as_token_ids)`);
      id = hit;
    }
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new UserError(`${where}: the server returned token id ${id}, outside the recipe's vocabulary of ${vocab}`);
    return id;
  };
}

class Malformed extends Error {}

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);

/** vLLM's prompt_logprobs entry: {"<id>": {logprob, rank, decoded_token}} (ranks beyond k: the actual token). */
function vllmEntry(e: unknown, at: string): Entry[] {
  if (!isObj(e)) throw new Malformed(`${at} is not an object`);
  return Object.entries(e).map(([key, v]) => {
    if (!isObj(v) || typeof v.logprob !== "number") throw new Malformed(`${at} has no logprob for token ${JSON.stringify(key)}`);
    return { token: /^\d+$/.test(key) ? Number(key) : key, logprob: v.logprob, rank: typeof v.rank === "number" ? v.rank : undefined };
  });
}

/** OpenAI's top_logprobs entry: {token: logprob}. */
function openaiEntry(e: unknown, at: string): Entry[] {
  if (!isObj(e)) throw new Malformed(`${at} is not an object`);
  return Object.entries(e).map(([key, v]) => {
    if (typeof v !== "number") throw new Malformed(`${at}[${JSON.stringify(key)}] is not a number`);
    return { token: key, logprob: v };
  });
}

/** What a scoring response holds: per position of the prompt, the distribution over its next token. */
export interface ParsedScores {
  /** rows[t]: the entries predicting token t + 1 (t = 0..T−1), or null where the server gave none. */
  rows: (Entry[] | null)[];
}

/** `readScores`, with a malformed reply as one line naming the server (`who`). */
function scoresOf(reply: unknown, n: number, who: string): ParsedScores | null {
  try {
    return readScores(reply, n);
  } catch (e) {
    if (e instanceof Malformed) throw new UserError(`${who}: unexpected reply to a scoring request (${e.message})`);
    throw e;
  }
}

/**
 * Reads the T next-token distributions of a window of T prompt tokens from a /v1/completions
 * response with echo: vLLM's `choices[0].prompt_logprobs` (entry t + 1 predicts token t + 1 from
 * tokens ..t; entry 0 is null), else OpenAI's `choices[0].logprobs.top_logprobs` (with echo: the
 * prompt's entries then the generated token's). The last position, which predicts the token after
 * the window, is the generated token's distribution in either shape. Returns null when the
 * response has no prompt log-probabilities at all (a server that only generates).
 */
export function readScores(body: unknown, T: number): ParsedScores | null {
  if (!isObj(body) || !Array.isArray(body.choices) || !isObj(body.choices[0])) throw new Malformed("no choices[0]");
  const c = body.choices[0];
  const lp = isObj(c.logprobs) ? c.logprobs : null;
  const top = lp && Array.isArray(lp.top_logprobs) ? (lp.top_logprobs as unknown[]) : null;
  // With echo the list holds the T prompt entries then the generated one's.
  const generated = top && top.length >= T + 1 ? top[T] : null;
  if (Array.isArray(c.prompt_logprobs)) {
    const p = c.prompt_logprobs as unknown[];
    if (p.length < T) throw new Malformed(`prompt_logprobs has ${p.length} entries for ${T} prompt tokens`);
    if (generated === null || generated === undefined) throw new Malformed("no top_logprobs for the generated token");
    const rows: (Entry[] | null)[] = [];
    for (let t = 0; t < T - 1; t++) rows.push(p[t + 1] === null ? null : vllmEntry(p[t + 1], `prompt_logprobs[${t + 1}]`));
    rows.push(openaiEntry(generated, `logprobs.top_logprobs[${T}]`));
    return { rows };
  }
  if (!top || top.length < T + 1) return null;
  const rows: (Entry[] | null)[] = [];
  for (let t = 0; t < T; t++) rows.push(top[t + 1] === null ? null : openaiEntry(top[t + 1], `logprobs.top_logprobs[${t + 1}]`));
  return { rows };
}

/**
 * The top k of each row, sorted by descending probability (ties: smaller id), into `ids` and
 * `logprobs` at row offset `r0`. Entries with a rank beyond k (vLLM adds the actual token) and
 * any extra entries beyond the k most probable are dropped; fewer than k is an error.
 */
export function fillTopK(parsed: ParsedScores, k: number, lookup: TokenLookup, ids: Int32Array, logprobs: Float32Array, r0: number, where: string): void {
  parsed.rows.forEach((row, t) => {
    if (row === null) throw new UserError(`${where}: the server gave no log-probabilities at position ${t} of a window`);
    const kept = row.filter((e) => e.rank === undefined || e.rank <= k).map((e) => ({ id: lookup(e.token), logprob: e.logprob }));
    kept.sort((a, b) => b.logprob - a.logprob || a.id - b.id);
    if (kept.length < k) throw new UserError(`${where}: the server gave ${kept.length} log-probabilities at position ${t} of a window, the recipe's topK is ${k}`);
    for (let j = 0; j < k; j++) {
      ids[(r0 + t) * k + j] = kept[j].id;
      logprobs[(r0 + t) * k + j] = kept[j].logprob;
    }
  });
}

// ---------------------------------------------------------------------------------------------
// HTTP with retries

/** Retry-After as milliseconds to wait: delta-seconds or an HTTP date; null when absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | null {
  if (value === null) return null;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.min(Number(v) * 1000, MAX_RETRY_AFTER_MS);
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.min(Math.max(0, at - now), MAX_RETRY_AFTER_MS);
}

/** A failed attempt: `retry` says whether another may pass; `why` is already redacted. */
class AttemptError extends Error {
  constructor(
    readonly why: string,
    readonly retry: boolean,
    readonly address: string,
    readonly retryAfterMs: number | null = null,
    /** Nobody answers at the address (refused, unresolvable): final while opening. */
    readonly unreachable = false,
  ) {
    super(why);
  }
}

/** Connection errors that mean nobody answers at the address (not a dropped connection). */
const UNREACHABLE = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH"]);

/** The server's own error text from a JSON error body (vLLM: {message}; OpenAI: {error: {message}}), first line only. */
function serverMessage(text: string): string {
  let msg = text;
  try {
    const j = JSON.parse(text) as unknown;
    if (isObj(j)) {
      if (typeof j.message === "string") msg = j.message;
      else if (isObj(j.error) && typeof j.error.message === "string") msg = j.error.message;
      else if (typeof j.error === "string") msg = j.error;
    }
  } catch {
    // not JSON: the text itself
  }
  const line = msg.split("\n").map((s) => s.trim()).find(Boolean) ?? "";
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

/** A network failure's cause in words (the code undici puts on `cause`). */
function networkCause(e: unknown): string {
  if (e instanceof Error && (e.name === "TimeoutError" || e.name === "AbortError")) return "timed out";
  const cause = (e as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  if (cause && typeof cause.code === "string") return cause.code;
  if (cause && typeof cause.message === "string") return cause.message;
  return e instanceof Error ? e.message : String(e);
}

// ---------------------------------------------------------------------------------------------

function checkSpec(spec: ServerTeacherSpec, field: string, vocab: number): { addresses: string[]; timeoutMs: number; maxAttempts: number; backoffMs: number; concurrency: number } {
  const urls = Array.isArray(spec.url) ? spec.url : [spec.url];
  if (urls.length === 0) throw new UserError(`${field}.url: give one address or a list of them`);
  const addresses = urls.map((u, i) => {
    let parsed: URL;
    try {
      parsed = new URL(u);
    } catch {
      throw new UserError(`${field}.url${Array.isArray(spec.url) ? `[${i}]` : ""}: not an address: ${JSON.stringify(u)}`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new UserError(`${field}.url: ${JSON.stringify(u)} is not an http(s) address`);
    if (parsed.username || parsed.password) throw new UserError(`${field}.url: put no credentials in the address; name the key's environment variable in apiKeyEnv`);
    return u.replace(/\/+$/, "");
  });
  const positive = (v: number | undefined, name: string, dflt: number) => {
    if (v === undefined) return dflt;
    if (!Number.isFinite(v) || v <= 0) throw new UserError(`${field}.${name}: expected a positive number, got ${v}`);
    return v;
  };
  if (typeof spec.model !== "string" || spec.model === "") throw new UserError(`${field}.model: name the model the server serves`);
  if (!Number.isInteger(spec.topK) || spec.topK < 1 || spec.topK > vocab) throw new UserError(`${field}.topK: expected an integer from 1 to the vocabulary size ${vocab}, got ${spec.topK}`);
  const maxAttempts = positive(spec.maxAttempts, "maxAttempts", DEFAULTS.maxAttempts);
  if (!Number.isInteger(maxAttempts)) throw new UserError(`${field}.maxAttempts: expected an integer, got ${maxAttempts}`);
  const concurrency = positive(spec.concurrency, "concurrency", DEFAULTS.perAddress * addresses.length);
  if (!Number.isInteger(concurrency)) throw new UserError(`${field}.concurrency: expected an integer, got ${concurrency}`);
  return {
    addresses,
    timeoutMs: positive(spec.timeoutMs, "timeoutMs", DEFAULTS.timeoutMs),
    maxAttempts,
    backoffMs: spec.backoffMs === 0 ? 0 : positive(spec.backoffMs, "backoffMs", DEFAULTS.backoffMs),
    concurrency,
  };
}

/** Default probe text: ids spread over the whole vocabulary, decoded (so two vocabularies that differ anywhere likely differ here). */
function defaultProbe(tokenizer: Tokenizer, vocab: number): string {
  const n = Math.min(64, vocab);
  const ids = Array.from({ length: n }, (_, i) => Math.floor((i * vocab) / n));
  return tokenizer.decode(ids);
}

function showIds(a: ArrayLike<number>, from: number): string {
  const lo = Math.max(0, from - 2);
  const part = Array.from(a).slice(lo, lo + 10);
  return `${lo > 0 ? "[…, " : "["}${part.join(", ")}${lo + 10 < a.length ? ", …]" : "]"} (${a.length} tokens)`;
}

export async function openServerTeacher(spec: ServerTeacherSpec, o: OpenServerOptions): Promise<ServerTeacher> {
  const { field, tokenizer, vocab, context } = o;
  const cfg = checkSpec(spec, field, vocab);
  const k = spec.topK;
  let key: string | undefined;
  if (spec.apiKeyEnv !== undefined) {
    if (typeof spec.apiKeyEnv !== "string" || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(spec.apiKeyEnv)) throw new UserError(`${field}.apiKeyEnv: expected the name of an environment variable`);
    key = process.env[spec.apiKeyEnv];
    if (key === undefined || key === "") throw new UserError(`${field}.apiKeyEnv: the environment variable ${spec.apiKeyEnv} is not set`);
    // Said without the value: fetch's own error for a bad header would quote it.
    if (!/^[\x21-\x7e]+$/.test(key)) throw new UserError(`${field}.apiKeyEnv: the environment variable ${spec.apiKeyEnv} holds spaces, line breaks or characters outside ASCII, which an HTTP header cannot carry`);
  }
  const redact = (s: string) => (key ? s.split(key).join("[redacted]") : s);
  const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json" };
  if (key) headers.authorization = `Bearer ${key}`;

  const pool = { addresses: cfg.addresses, busy: cfg.addresses.map(() => 0), turn: 0 };
  const limit = pLimit(cfg.concurrency);
  const stats = { requests: 0, retries: 0 };

  /** The least busy address (ties: round robin), other than `avoid` (where this request just failed) when there is another. */
  const pick = (avoid = -1): number => {
    let best = -1;
    for (let j = 0; j < pool.addresses.length; j++) {
      const i = (pool.turn + j) % pool.addresses.length;
      if (i === avoid && pool.addresses.length > 1) continue;
      if (best < 0 || pool.busy[i] < pool.busy[best]) best = i;
    }
    pool.turn = (best + 1) % pool.addresses.length;
    return best;
  };

  /** One attempt: JSON in, JSON out; every failure an AttemptError. */
  async function attempt(i: number, path: string, body: unknown): Promise<unknown> {
    const address = pool.addresses[i];
    pool.busy[i]++;
    stats.requests++;
    try {
      let res: Response;
      let text: string;
      try {
        res = await fetch(address + path, {
          method: body === undefined ? "GET" : "POST",
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(cfg.timeoutMs),
        });
        text = await res.text();
      } catch (e) {
        const cause = networkCause(e);
        throw new AttemptError(redact(cause === "timed out" ? `timed out after ${cfg.timeoutMs} ms` : `connection failed: ${cause}`), true, address, null, UNREACHABLE.has(cause));
      }
      if (!res.ok) {
        const msg = serverMessage(text);
        const retry = res.status === 429 || res.status >= 500;
        throw new AttemptError(redact(`HTTP ${res.status}${msg ? `: ${msg}` : ""}`), retry, address, retry ? parseRetryAfter(res.headers.get("retry-after")) : null);
      }
      try {
        return JSON.parse(text) as unknown;
      } catch {
        throw new AttemptError(`malformed JSON (${text.length} bytes)`, true, address);
      }
    } finally {
      pool.busy[i]--;
    }
  }

  /**
   * A request with retries, each attempt to the least busy address other than the previous
   * attempt's (or always to `only`). With `opening`, a refused or unresolvable connection is final
   * ("cannot reach ...": a wrong address should not wait through the backoff); a dropped one is
   * retried as always. Returns the JSON body; else a one-line UserError naming the address and
   * the last status or cause.
   */
  async function send(path: string, body: unknown, what: string, opts: { only?: number; opening?: boolean } = {}): Promise<unknown> {
    const attempts = cfg.maxAttempts;
    let last: AttemptError | null = null;
    let previous = -1;
    const final = (e: AttemptError) => !e.retry || (opts.opening === true && e.unreachable);
    try {
      return await pRetry(
        async () => {
          try {
            previous = opts.only ?? pick(previous);
            return await attempt(previous, path, body);
          } catch (e) {
            if (e instanceof AttemptError) last = e;
            throw e;
          }
        },
        {
          retries: attempts - 1,
          factor: 2,
          minTimeout: cfg.backoffMs,
          maxTimeout: Math.max(cfg.backoffMs, 30_000),
          randomize: true,
          shouldRetry: (e) => e instanceof AttemptError && !final(e),
          onFailedAttempt: async (e) => {
            if (!(e instanceof AttemptError) || final(e) || e.retriesLeft === 0) return;
            stats.retries++;
            // p-retry's own backoff follows this wait: the server's Retry-After is at least honoured.
            if (e.retryAfterMs) await new Promise((r) => setTimeout(r, e.retryAfterMs!));
          },
        },
      );
    } catch (e) {
      const a = last as AttemptError | null;
      if (!(e instanceof AttemptError) || !a) throw e;
      if (a.unreachable && opts.opening) throw new UserError(`cannot reach ${a.address} (${a.why.replace(/^connection failed: /, "")})`);
      const tries = a.retry ? ` after ${attempts} attempt${attempts > 1 ? "s" : ""}` : "";
      throw new UserError(`${a.address}: ${what} failed${tries} (last: ${a.why})`);
    }
  }

  const scoreBody = (prompt: number[] | string, kk: number) => ({
    model: spec.model,
    prompt,
    echo: true,
    max_tokens: 1,
    logprobs: kk,
    temperature: 0,
    // vLLM's extensions: per-prompt-token top-k (with ranks) and "token_id:N" keys.
    prompt_logprobs: kk,
    return_tokens_as_token_ids: true,
    add_special_tokens: false,
  });

  // --- Opening, per address (every replica must serve the same model and tokenizer): reachable,
  // the model is there, the tokenizer agrees, k is allowed, and whether it scores prompts at all.
  const where = `${field} (${cfg.addresses.join(", ")})`;
  const lookup = tokenLookup(tokenizer, vocab, where);
  // The probe, cut to at most 64 of our tokens and shorter than a window (whether a whole window
  // fits is its own check, with its own message).
  const probe = tokenizer.decode(tokenizer.encode(o.probe ?? defaultProbe(tokenizer, vocab)).subarray(0, Math.max(2, Math.min(context - 1, 64))));
  const oursIds = tokenizer.encode(probe);
  const sameTokens = (address: string, theirs: number[]) => {
    let at = theirs.findIndex((x, j) => x !== oursIds[j]);
    if (at < 0 && theirs.length !== oursIds.length) at = Math.min(theirs.length, oursIds.length);
    if (at >= 0) {
      const shown = JSON.stringify(probe.length > 40 ? probe.slice(0, 40) + "…" : probe);
      throw new UserError(`${address}: the server's tokenizer differs from the recipe's: ${shown} is ${showIds(theirs, at)} on the server, ${showIds(oursIds, at)} in the recipe`);
    }
  };
  let scores = true;
  let checkedTokenizer = true;
  for (let i = 0; i < cfg.addresses.length; i++) {
    const address = cfg.addresses[i];
    const models = await send("/v1/models", undefined, "listing the models", { only: i, opening: true });
    const served = isObj(models) && Array.isArray(models.data) ? models.data.map((m) => (isObj(m) ? m.id : undefined)).filter((x): x is string => typeof x === "string") : null;
    if (!served) throw new UserError(`${address}: /v1/models did not return a model list; is this an OpenAI-compatible server?`);
    if (!served.includes(spec.model)) throw new UserError(`${address}: no model ${JSON.stringify(spec.model)} (it serves ${served.map((s) => JSON.stringify(s)).join(", ") || "none"})`);

    // Their tokenization of the probe: /tokenize (vLLM, SGLang, distill serve; llama.cpp's reads
    // `content`), else the echoed prompt below.
    let tokenized = false;
    try {
      const t = await send("/tokenize", { model: spec.model, prompt: probe, content: probe, add_special_tokens: false }, "tokenizing the probe text", { only: i, opening: true });
      if (isObj(t) && Array.isArray(t.tokens) && t.tokens.every((x) => Number.isInteger(x))) {
        sameTokens(address, t.tokens as number[]);
        tokenized = true;
      }
    } catch (e) {
      if (!(e instanceof UserError) || !/\(last: HTTP 40[45]\b/.test(e.message)) throw e;
    }
    // Scoring the probe with the recipe's k says whether the server scores prompts at all and how
    // many log-probabilities it allows; without /tokenize its echoed tokens are its tokenization.
    let reply: unknown;
    try {
      reply = await send("/v1/completions", scoreBody(tokenized ? Array.from(oursIds) : probe, k), "scoring the probe text", { only: i, opening: true });
    } catch (e) {
      // vLLM: 400 "... greater than max allowed: 20".
      const m = e instanceof UserError && /\(last: HTTP 4\d\d\b/.test(e.message) ? /max(?:imum)?\W{0,3}allowed\D{0,5}(\d+)|at most (\d+)/i.exec(e.message) : null;
      if (m) throw new UserError(`${field}.topK: ${k} is more than ${address} allows (at most ${m[1] ?? m[2]} log-probabilities per token)`);
      throw e;
    }
    const lp = isObj(reply) && Array.isArray(reply.choices) && isObj(reply.choices[0]) && isObj(reply.choices[0].logprobs) ? reply.choices[0].logprobs : null;
    if (!tokenized) {
      const toks = lp && Array.isArray(lp.tokens) ? (lp.tokens as unknown[]) : null;
      if (toks) {
        // Echo lists the prompt's tokens, then the generated one.
        sameTokens(address, toks.slice(0, -1).map((t) => lookup(typeof t === "number" ? t : String(t))));
        tokenized = true;
      } else if (lp) throw new UserError(`${address}: cannot check the server's tokenizer: it has no /tokenize and echoes no prompt tokens`);
      // No log-probabilities at all: a server that only generates; its tokenizer stays unchecked,
      // so continuations send it text, not our ids.
      else checkedTokenizer = false;
    }
    const parsed = scoresOf(reply, oursIds.length, address);
    if (parsed === null) {
      scores = false;
      continue;
    }
    // A whole window of the recipe's context, plus the token generated after it, must fit the
    // server's model (vLLM counts both against max_model_len; distill serve lets the last one pass).
    if (context > oursIds.length) {
      const window = Array.from({ length: context }, (_, j) => oursIds[j % oursIds.length]);
      try {
        await send("/v1/completions", scoreBody(window, 1), "scoring a window of the recipe's context", { only: i, opening: true });
      } catch (e) {
        if (!(e instanceof UserError) || !/\(last: HTTP 4\d\d\b/.test(e.message)) throw e;
        throw new UserError(`${address}: the server refuses a window of the recipe's context, ${context} tokens, and the one token generated after it (${e.message.replace(/^.*\(last: (.*)\)$/, "$1")})`);
      }
    }
    // An OpenAI-shape server may return fewer than asked without saying so: count them at the
    // generated token, the one position where no actual prompt token is added to the top k.
    const lastRow = parsed.rows[parsed.rows.length - 1];
    const got = lastRow === null ? 0 : lastRow.filter((e) => e.rank === undefined || e.rank <= k).length;
    if (got < k) throw new UserError(`${field}.topK: ${k} is more than ${address} allows (it returned at most ${got} log-probabilities per token)`);
  }

  async function scoreWindow(ids: Int32Array, into: { ids: Int32Array; logprobs: Float32Array }, r0: number): Promise<void> {
    const body = await send("/v1/completions", scoreBody(Array.from(ids), k), "scoring a window");
    const parsed = scoresOf(body, ids.length, where);
    if (parsed === null) throw new UserError(`${where}: the server returned no prompt log-probabilities`);
    fillTopK(parsed, k, lookup, into.ids, into.logprobs, r0, where);
  }

  let closed = false;
  const teacher: ServerTeacher = {
    kind: "server",
    source: `${cfg.addresses.join(", ")} (${spec.model})`,
    classes: vocab,
    output: "topk",
    scores,
    stats,
    async softLabels(x, shape): Promise<SoftLabels> {
      if (closed) throw new Error("server teacher: used after close()");
      if (!scores) throw new UserError(`${where}: the server returns no prompt log-probabilities (it only generates, like llama.cpp's server), so it cannot give soft labels; use it for sequence-level distillation (modes: { teacher: 1 })`);
      if (!(x instanceof Int32Array) || shape.length !== 2) throw new Error("server teacher: expects [B, T] int32 token ids");
      const [B, T] = shape;
      const rows = B * T;
      const out = { ids: new Int32Array(rows * k), logprobs: new Float32Array(rows * k) };
      await Promise.all(Array.from({ length: B }, (_, b) => limit(() => scoreWindow(x.subarray(b * T, (b + 1) * T), out, b * T))));
      return { kind: "topk", rows, classes: vocab, k, ids: out.ids, logprobs: out.logprobs, logTail: logTailOf(out.logprobs, rows, k) };
    },
    async continuations(prompts, tokens, seed, sampling = {}) {
      return Promise.all(
        prompts.map((prompt, b) =>
          limit(async () => {
            // Text is re-tokenized with the recipe's tokenizer, which may give fewer ids than the
            // server generated (merges): ask for the rest, from where it stopped, a few times.
            const got: number[] = [];
            for (let round = 0; got.length < tokens && round < 4; round++) {
              const reply = await send(
                "/v1/completions",
                {
                  model: spec.model,
                  // Ids mean the same on both sides only when the tokenizers were compared.
                  prompt: checkedTokenizer ? [...prompt, ...got] : tokenizer.decode([...prompt, ...got]),
                  max_tokens: tokens - got.length,
                  temperature: sampling.temperature ?? 1,
                  // As distill's sampler reads them: top-k 0 and top-p 1 are off (older vLLM refuses top_k 0).
                  ...(sampling.topP !== undefined && sampling.topP < 1 ? { top_p: sampling.topP } : {}),
                  ...(sampling.topK ? { top_k: sampling.topK } : {}),
                  seed: deriveSeed(seed, "continuation", b, round),
                  ignore_eos: true,
                  add_special_tokens: false,
                },
                "generating a continuation",
              );
              const text = isObj(reply) && Array.isArray(reply.choices) && isObj(reply.choices[0]) ? reply.choices[0].text : undefined;
              if (typeof text !== "string") throw new UserError(`${where}: unexpected reply to a generation request (no choices[0].text)`);
              const ids = tokenizer.encode(text);
              if (ids.length === 0) break;
              got.push(...ids);
            }
            if (got.length < tokens) throw new UserError(`${where}: the server generated ${got.length} of ${tokens} tokens of a continuation (it stopped early; ignore_eos is not honoured?)`);
            const out = new Int32Array(prompt.length + tokens);
            out.set(prompt);
            out.set(got.slice(0, tokens), prompt.length);
            return out;
          }),
        ),
      );
    },
    async close() {
      closed = true;
    },
  };
  return teacher;
}
