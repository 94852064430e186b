// The OpenAI-compatible server teacher's client, against a tiny node:http responder that answers
// from a fixed lookup table of logits (the real server, `distill serve`, is tested in
// server-teacher-serve.test.ts): both response shapes parse to the exact top-k of the table,
// retries and backoff on each transient failure, fan-out, every refusal at open as one line, and
// the API key never appears in anything the client says.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { openServerTeacher, parseRetryAfter, type ServerTeacherSpec } from "../src/teachers/server.js";
import { topKOfLogits } from "../src/teachers/teacher.js";
import { charTokenizer, type Tokenizer } from "../src/text/tokenizer.js";
import { UserError } from "../src/util/errors.js";
import { Rng, deriveSeed } from "../src/util/rng.js";

const tok = charTokenizer("abcdefgh .");
const V = tok.vocabSize; // 11: id 0 is "unknown"
const K = 3;
const MODEL = "table";

/** The table's logits over the next token at position t of a prompt, a function of (t, token t). */
function tableLogits(prompt: ArrayLike<number>): Float32Array {
  const T = prompt.length;
  const out = new Float32Array(T * V);
  for (let t = 0; t < T; t++) {
    const r = new Rng(deriveSeed("table", t, prompt[t]));
    for (let v = 0; v < V; v++) out[t * V + v] = (r.nextU32() / 2 ** 32) * 6 - 3;
  }
  return out;
}

/** Log-softmax in float64, per row. */
function logSoftmax(row: Float32Array): number[] {
  const max = Math.max(...row);
  const lse = max + Math.log(row.reduce((a, x) => a + Math.exp(x - max), 0));
  return Array.from(row, (x) => x - lse);
}

type Shape = "vllm" | "openai-ids" | "openai-text";

/** A /v1/completions reply with echo for `prompt`, built from the table in the given shape. */
function completionReply(prompt: number[], k: number, shape: Shape, opts: { cap?: number; noLogprobs?: boolean } = {}): unknown {
  const T = prompt.length;
  const L = tableLogits(prompt);
  const kk = Math.min(k, opts.cap ?? k);
  const rows = Array.from({ length: T }, (_, t) => logSoftmax(L.subarray(t * V, (t + 1) * V)));
  const order = rows.map((lp) => lp.map((_, v) => v).sort((a, b) => lp[b] - lp[a] || a - b));
  const generated = order[T - 1][0];
  const key = (v: number) => (shape === "openai-text" ? tok.decode([v]) : `token_id:${v}`);
  // Entry t + 1 (predicting token t + 1): the top k, plus the actual token when outside it (as vLLM does).
  const dict = (t: number, actual: number | null) => {
    const d: Record<string, number> = {};
    for (const v of order[t].slice(0, kk)) d[key(v)] = rows[t][v];
    if (actual !== null) d[key(actual)] = rows[t][actual];
    return d;
  };
  const top = [null, ...Array.from({ length: T }, (_, t) => dict(t, t < T - 1 ? prompt[t + 1] : null))];
  const tokens = [...prompt, generated].map(key);
  const choice: Record<string, unknown> = {
    index: 0,
    text: tok.decode([...prompt, generated]),
    logprobs: opts.noLogprobs ? null : { tokens, token_logprobs: [null, ...tokens.slice(1).map(() => -1)], top_logprobs: top, text_offset: tokens.map((_, i) => i) },
    finish_reason: "length",
  };
  if (shape === "vllm" && !opts.noLogprobs) {
    // Keys in a scrambled order (the client must sort), the actual token with its true rank.
    choice.prompt_logprobs = [
      null,
      ...Array.from({ length: T - 1 }, (_, t) => {
        const d: Record<string, { logprob: number; rank: number; decoded_token: string }> = {};
        const ids = order[t].slice(0, kk).reverse();
        const actual = prompt[t + 1];
        if (!ids.includes(actual)) ids.unshift(actual);
        for (const v of ids) d[String(v)] = { logprob: rows[t][v], rank: order[t].indexOf(v) + 1, decoded_token: tok.decode([v]) };
        return d;
      }),
    ];
  }
  return { id: "cmpl-1", object: "text_completion", model: MODEL, choices: [choice] };
}

type Reply = { status: number; body: unknown; headers?: Record<string, string> } | "drop" | "stall" | { raw: string };
type Handler = (path: string, body: any, req: IncomingMessage) => Reply | undefined;

/** What a well-behaved OpenAI-compatible server answers, from the table. */
function tableServer(shape: Shape, o: { tokenize?: Tokenizer | false; cap?: number; maxAllowed?: number; noLogprobs?: boolean; models?: string[] } = {}): Handler {
  return (path, body) => {
    if (path === "/v1/models") return { status: 200, body: { object: "list", data: (o.models ?? [MODEL]).map((id) => ({ id, object: "model" })) } };
    if (path === "/tokenize") {
      if (o.tokenize === false) return { status: 404, body: { detail: "Not Found" } };
      return { status: 200, body: { tokens: Array.from((o.tokenize ?? tok).encode(body.prompt)), count: 0, max_model_len: 64 } };
    }
    if (path === "/v1/completions") {
      if (o.maxAllowed !== undefined && body.logprobs > o.maxAllowed) {
        return { status: 400, body: { object: "error", message: `Requested sample logprobs of ${body.logprobs}, which is greater than max allowed: ${o.maxAllowed}`, type: "BadRequestError", code: 400 } };
      }
      const prompt: number[] = typeof body.prompt === "string" ? Array.from((o.tokenize || tok).encode(body.prompt)) : body.prompt;
      if (body.echo !== true) {
        // Generation: one character per requested token, from a seeded stream.
        const r = new Rng(deriveSeed("gen", body.seed ?? 0));
        const text = Array.from({ length: body.max_tokens }, () => "abcdefgh"[r.int(8)]).join("");
        return { status: 200, body: { choices: [{ index: 0, text, finish_reason: "length" }] } };
      }
      return { status: 200, body: completionReply(prompt, body.logprobs, shape, o) };
    }
    return { status: 404, body: { detail: "Not Found" } };
  };
}

interface Responder {
  url: string;
  log: { path: string; auth?: string }[];
  queue: Reply[];
  close(): Promise<void>;
}

const open: Responder[] = [];
after(async () => {
  for (const r of open) await r.close();
});

/**
 * A node:http server on the loopback address answering with `handler`; scoring requests first get
 * the replies in `queue`, one each (tests fill it once the teacher is open).
 */
async function respond(handler: Handler, delayMs = 0): Promise<Responder> {
  const queue: Reply[] = [];
  const log: Responder["log"] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const parts: Buffer[] = [];
    req.on("data", (c: Buffer) => parts.push(c));
    req.on("end", () => {
      const path = req.url ?? "/";
      log.push({ path, auth: req.headers.authorization });
      const body = parts.length ? JSON.parse(Buffer.concat(parts).toString("utf8")) : undefined;
      const reply = path === "/v1/completions" && body?.echo === true && queue.length > 0 ? queue.shift()! : handler(path, body, req)!;
      const send = () => {
        if (reply === "drop") return req.socket.destroy();
        if (reply === "stall") return;
        if ("raw" in reply) {
          res.writeHead(200, { "content-type": "application/json" });
          return res.end(reply.raw);
        }
        const text = JSON.stringify(reply.body);
        res.writeHead(reply.status, { "content-type": "application/json", ...reply.headers });
        res.end(text);
      };
      if (delayMs > 0) {
        const t = setTimeout(() => {
          timers.delete(t);
          send();
        }, delayMs);
        timers.add(t);
      } else send();
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const r: Responder = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    log,
    queue,
    close: async () => {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      await new Promise<void>((res) => server.close(() => res()));
    },
  };
  open.push(r);
  return r;
}

const spec = (url: string | string[], extra: Partial<ServerTeacherSpec> = {}): ServerTeacherSpec => ({ url, model: MODEL, topK: K, backoffMs: 1, timeoutMs: 2000, maxAttempts: 4, ...extra });
const openT = (s: ServerTeacherSpec, o: { tokenizer?: Tokenizer; probe?: string } = {}) => openServerTeacher(s, { tokenizer: o.tokenizer ?? tok, vocab: V, context: 16, field: "teacher.server", probe: o.probe });

/** A few windows [B, T] of ids from the vocabulary (id 0 included). */
function windows(B: number, T: number, seed: number): Int32Array {
  const r = new Rng(seed);
  return Int32Array.from({ length: B * T }, () => r.int(V));
}

/** The one-line UserError `p` rejects with, checked against `re`. */
async function oneLine(p: Promise<unknown>, re: RegExp): Promise<string> {
  const e = await p.then(
    () => assert.fail("expected a UserError"),
    (err: unknown) => err,
  );
  assert.ok(e instanceof UserError, `not a UserError: ${String(e)}`);
  assert.ok(!e.message.includes("\n"), `more than one line: ${e.message}`);
  assert.match(e.message, re);
  return e.message;
}

test("both response shapes (vLLM prompt_logprobs, OpenAI top_logprobs with ids or text) give the table's exact top k, position by position", async () => {
  const x = windows(3, 7, 1);
  const expected = [0, 1, 2].map((b) => topKOfLogits(tableLogits(x.subarray(b * 7, (b + 1) * 7)), 7, V, K));
  for (const shape of ["vllm", "openai-ids", "openai-text"] as const) {
    const r = await respond(tableServer(shape));
    const t = await openT(spec(r.url));
    assert.equal(t.scores, true);
    const s = await t.softLabels(x, [3, 7]);
    assert.equal(s.kind, "topk");
    if (s.kind !== "topk") return;
    assert.equal(s.rows, 21);
    assert.equal(s.k, K);
    for (let b = 0; b < 3; b++) {
      const e = expected[b];
      assert.deepEqual(Array.from(s.ids.subarray(b * 7 * K, (b + 1) * 7 * K)), Array.from(e.ids), `${shape}: ids of window ${b}`);
      for (let i = 0; i < 7 * K; i++) assert.ok(Math.abs(s.logprobs[b * 7 * K + i] - e.logprobs[i]) < 1e-6, `${shape}: logprob ${i} of window ${b}`);
      for (let i = 0; i < 7; i++) assert.ok(Math.abs(s.logTail![b * 7 + i] - e.logTail[i]) < 1e-5, `${shape}: tail ${i} of window ${b}`);
    }
    await t.close();
  }
});

test("Retry-After: seconds and HTTP dates", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  assert.equal(parseRetryAfter("3", now), 3000);
  assert.equal(parseRetryAfter("Thu, 01 Jan 2026 00:00:05 GMT", now), 5000);
  assert.equal(parseRetryAfter("Wed, 31 Dec 2025 23:59:00 GMT", now), 0);
  assert.equal(parseRetryAfter(null, now), null);
  assert.equal(parseRetryAfter("soon", now), null);
});

test("429, 5xx, timeouts, dropped connections and malformed JSON are retried; the result is the fault-free one", async () => {
  const x = windows(1, 6, 2);
  const clean = await openT(spec((await respond(tableServer("vllm"))).url));
  const want = await clean.softLabels(x, [1, 6]);
  for (const fault of [
    { status: 429, body: { message: "slow down" } },
    { status: 500, body: { message: "boom" } },
    { status: 503, body: { message: "loading" } },
    "drop" as const,
    "stall" as const,
    { raw: '{"choices": [{"index": 0, "logpro' },
  ]) {
    const r = await respond(tableServer("vllm"));
    const t = await openT(spec(r.url, { timeoutMs: 300 }));
    r.queue.push(fault, fault);
    const got = await t.softLabels(x, [1, 6]);
    assert.deepEqual(got, want, `after ${JSON.stringify(fault)}`);
    assert.equal(t.stats.retries, 2, `retries after ${JSON.stringify(fault)}`);
  }
});

test("Retry-After is honoured: a 429 asking for 1 s delays the retry by at least that", async () => {
  const r = await respond(tableServer("vllm"));
  const t = await openT(spec(r.url));
  r.queue.push({ status: 429, body: { message: "later" }, headers: { "retry-after": "1" } });
  const t0 = Date.now();
  await t.softLabels(windows(1, 4, 3), [1, 4]);
  assert.ok(Date.now() - t0 >= 1000, `retried after ${Date.now() - t0} ms`);
});

test("a bounded number of attempts, then one line naming the address and the last status; a 400 is not retried", async () => {
  const r = await respond(tableServer("vllm"));
  const t = await openT(spec(r.url, { maxAttempts: 3 }));
  r.queue.push(...Array.from({ length: 10 }, () => ({ status: 500, body: { message: "still broken" } })));
  const before = r.log.length;
  await oneLine(t.softLabels(windows(1, 4, 4), [1, 4]), new RegExp(`^${r.url}: scoring a window failed after 3 attempts \\(last: HTTP 500: still broken\\)$`));
  assert.equal(r.log.length - before, 3);

  const r400 = await respond(tableServer("vllm"));
  const t400 = await openT(spec(r400.url));
  r400.queue.push({ status: 400, body: { object: "error", message: "prompt too long" } });
  const n = r400.log.length;
  await oneLine(t400.softLabels(windows(1, 4, 4), [1, 4]), /: scoring a window failed \(last: HTTP 400: prompt too long\)$/);
  assert.equal(r400.log.length - n, 1, "a 400 is final");
});

test("fan-out: requests spread over the addresses, the least busy gets more, and a retry moves to a working one", async () => {
  const fast = await respond(tableServer("vllm"));
  const slow = await respond(tableServer("vllm"), 150);
  const t = await openT(spec([fast.url, slow.url], { concurrency: 4 }));
  const n0 = [fast.log.length, slow.log.length];
  const x = windows(24, 4, 5);
  const s = await t.softLabels(x, [24, 4]);
  const [a, b] = [fast.log.length - n0[0], slow.log.length - n0[1]];
  const direct = await (await openT(spec(fast.url))).softLabels(x, [24, 4]);
  assert.deepEqual(s, direct);
  assert.equal(a + b, 24);
  assert.ok(b >= 1 && a > 2 * b, `fast ${a}, slow ${b}`);

  const broken = await respond(tableServer("vllm"));
  const ok = await respond(tableServer("vllm"));
  const t2 = await openT(spec([broken.url, ok.url], { concurrency: 2, maxAttempts: 3 }));
  broken.queue.push(...Array.from({ length: 100 }, () => ({ status: 503, body: { message: "down" } })));
  assert.deepEqual(await t2.softLabels(x, [24, 4]), direct);
  assert.ok(t2.stats.retries > 0);
});

test("opening: unreachable, model missing, topK over the limit (refused or silently capped), generate-only, tokenizer mismatch, missing key", async () => {
  const gone = await respond(tableServer("vllm"));
  const goneUrl = gone.url;
  await gone.close();
  open.splice(open.indexOf(gone), 1);
  await oneLine(openT(spec(goneUrl)), new RegExp(`^cannot reach ${goneUrl} \\(ECONNREFUSED\\)$`));

  const other = await respond(tableServer("vllm", { models: ["llama-70b"] }));
  await oneLine(openT(spec(other.url)), new RegExp(`^${other.url}: no model "table" \\(it serves "llama-70b"\\)$`));

  const vllm = await respond(tableServer("vllm", { maxAllowed: 2 }));
  await oneLine(openT(spec(vllm.url)), new RegExp(`^teacher\\.server\\.topK: 3 is more than ${vllm.url} allows \\(at most 2 log-probabilities per token\\)$`));
  const capped = await respond(tableServer("openai-ids", { cap: 2 }));
  await oneLine(openT(spec(capped.url)), /^teacher\.server\.topK: 3 is more than .* allows \(it returned at most 2 log-probabilities per token\)$/);

  const genOnly = await respond(tableServer("openai-ids", { noLogprobs: true }));
  const g = await openT(spec(genOnly.url));
  assert.equal(g.scores, false);
  await oneLine(g.softLabels(windows(1, 4, 6), [1, 4]), /returns no prompt log-probabilities \(it only generates.*modes: \{ teacher: 1 \}\)$/);

  const otherTok = charTokenizer("abcdefgh .!"); // "!" sorts before "." and the letters: their ids move up by one
  const viaTokenize = await respond(tableServer("vllm", { tokenize: otherTok }));
  await oneLine(openT(spec(viaTokenize.url), { probe: "a bad cafe" }), /: the server's tokenizer differs from the recipe's: "a bad cafe" is \[4, 1, 5, 4, 7, 1, 6, 4, 9, 8\] \(10 tokens\) on the server, \[3, 1, 4, 3, 6, 1, 5, 3, 8, 7\] \(10 tokens\) in the recipe$/);
  const viaEcho = await respond(tableServer("openai-ids", { tokenize: false }));
  const echoed = await openT(spec(viaEcho.url), { probe: "a bad cafe" });
  assert.equal(echoed.scores, true, "the same tokenizer, checked through the echoed prompt");
  const mismatchEcho = await respond((path, body, req) => (path === "/tokenize" ? { status: 404, body: {} } : tableServer("openai-ids", { tokenize: otherTok })(path, body, req)));
  await oneLine(openT(spec(mismatchEcho.url), { probe: "a bad cafe" }), /tokenizer differs from the recipe's: "a bad cafe" is \[4, 1, /);

  delete process.env.DISTILL_TEST_NO_SUCH_KEY;
  await oneLine(openT(spec(viaEcho.url, { apiKeyEnv: "DISTILL_TEST_NO_SUCH_KEY" })), /^teacher\.server\.apiKeyEnv: the environment variable DISTILL_TEST_NO_SUCH_KEY is not set$/);
});

test("the API key is sent as a bearer token and appears in no error, even when the server echoes it", async () => {
  const KEY = `sk-distill-test-${deriveSeed(Date.now()).toString(16)}-secret`;
  process.env.DISTILL_TEST_API_KEY = KEY;
  const said: string[] = [];
  const capture = (p: Promise<unknown>) =>
    p.then(
      (v) => said.push(JSON.stringify(v, (_, x) => (ArrayBuffer.isView(x) ? Array.from(x as Float32Array) : x))),
      (e: Error) => said.push(`${e.message}\n${e.stack}`),
    );
  try {
    // A server that puts the Authorization header into every error it returns.
    const leaky: Handler = (path, body, req) => {
      if (path === "/v1/completions" && body.echo === true && body.prompt.length === 5) return { status: 500, body: { message: `bad request from ${req.headers.authorization}` } };
      if (path === "/v1/completions" && body.echo !== true) return { status: 401, body: { error: { message: `invalid key ${req.headers.authorization}` } } };
      return tableServer("vllm")(path, body, req);
    };
    const r = await respond(leaky);
    const s = spec(r.url, { apiKeyEnv: "DISTILL_TEST_API_KEY", maxAttempts: 2 });
    const t = await openT(s);
    assert.ok(r.log.every((l) => l.auth === `Bearer ${KEY}`), "every request carries the key");
    await capture(t.softLabels(windows(1, 4, 7), [1, 4]));
    await capture(t.softLabels(windows(1, 5, 7), [1, 5]));
    await capture(t.continuations([Int32Array.of(1, 2)], 3, 0));
    said.push(t.source, JSON.stringify(t.stats), JSON.stringify(s));
    // Refusals at open, with the key set.
    const limited = await respond(tableServer("vllm", { maxAllowed: 1 }));
    await capture(openT(spec(limited.url, { apiKeyEnv: "DISTILL_TEST_API_KEY" })));
    const gone = await respond(tableServer("vllm"));
    const goneUrl = gone.url;
    await gone.close();
    open.splice(open.indexOf(gone), 1);
    await capture(openT(spec(goneUrl, { apiKeyEnv: "DISTILL_TEST_API_KEY" })));
    // A key a header cannot carry: fetch's own message would quote it.
    process.env.DISTILL_TEST_API_KEY = `${KEY}\n`;
    await capture(openT(spec(r.url, { apiKeyEnv: "DISTILL_TEST_API_KEY" })));
    assert.match(said.at(-1)!, /^teacher\.server\.apiKeyEnv: the environment variable DISTILL_TEST_API_KEY holds spaces, line breaks or characters outside ASCII/);
    assert.ok(said.some((x) => x.includes("[redacted]")), "the server's echo reached an error, redacted");
    assert.ok(said.some((x) => x.includes("HTTP 401")));
    for (const x of said) assert.ok(!x.includes(KEY) && !x.includes(KEY.slice(8, 30)), `the key leaked: ${x}`);
  } finally {
    delete process.env.DISTILL_TEST_API_KEY;
  }
});

test("continuations: the prompt then exactly `tokens` ids of the server's text, re-tokenized; a server that stops early is one line", async () => {
  const r = await respond(tableServer("vllm"));
  const t = await openT(spec(r.url));
  const prompts = [Int32Array.of(1, 2, 3), Int32Array.of(4, 5, 6)];
  const a = await t.continuations(prompts, 5, 11, { temperature: 0.7, topK: 4 });
  const b = await t.continuations(prompts, 5, 11, { temperature: 0.7, topK: 4 });
  assert.deepEqual(a, b, "the same seed gives the same continuations");
  for (const [i, c] of a.entries()) {
    assert.equal(c.length, 8);
    assert.deepEqual(Array.from(c.subarray(0, 3)), Array.from(prompts[i]));
    assert.ok(Array.from(c.subarray(3)).every((id) => id >= 3 && id <= 10), "letters a–h");
  }
  assert.notDeepEqual(Array.from(a[0].subarray(3)), Array.from(a[1].subarray(3)), "each prompt its own stream");

  // Text that re-tokenizes to fewer ids than asked: the client asks for the rest.
  let calls = 0;
  const short = await respond((path, body, req) => {
    if (path === "/v1/completions" && body.echo !== true) {
      calls++;
      return { status: 200, body: { choices: [{ text: "ab".slice(0, Math.min(2, body.max_tokens)) }] } };
    }
    return tableServer("vllm")(path, body, req);
  });
  const ts = await openT(spec(short.url));
  const c = await ts.continuations([Int32Array.of(1)], 4, 0);
  assert.deepEqual(Array.from(c[0]), [1, 3, 4, 3, 4]);
  assert.equal(calls, 2);
  const stops = await respond((path, body, req) => (path === "/v1/completions" && body.echo !== true ? { status: 200, body: { choices: [{ text: "" }] } } : tableServer("vllm")(path, body, req)));
  await oneLine((await openT(spec(stops.url))).continuations([Int32Array.of(1)], 4, 0), /the server generated 0 of 4 tokens of a continuation/);
});
