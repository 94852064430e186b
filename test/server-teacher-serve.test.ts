// The server teacher against the real server, `distill serve` on a tiny checkpoint: its soft
// labels are the top k of distill's own forward (lmLogits, log-softmax in float64); vLLM's and
// OpenAI's response shapes parse to the same numbers; continuations are distill's own greedy
// decoding; every bad input is one line and the API key is in none of them; and through the
// fault-injecting proxy (drops, 429, 500, cut JSON, stalls) the soft labels and a whole
// soft-label cache equal the fault-free ones row by row.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { initDevice } from "../src/engine/index.js";
import { paramsFromHost } from "../src/checkpoint/params.js";
import type { HostTensor } from "../src/checkpoint/safetensors.js";
import { buildCache, corpusHash, openCache } from "../src/cache/index.js";
import { lmLogits } from "../src/eval/lm-metrics.js";
import { type LanguageModel, type LlamaSpec } from "../src/nn/llama.js";
import { generate } from "../src/nn/generate.js";
import { startServer, type RunningServer } from "../src/serve/server.js";
import { fillTopK, openServerTeacher, readScores, tokenLookup, type ServerTeacherSpec } from "../src/teachers/server.js";
import { topKOfLogits } from "../src/teachers/teacher.js";
import type { SoftLabels } from "../src/teachers/types.js";
import { charTokenizer, type Tokenizer } from "../src/text/tokenizer.js";
import { UserError } from "../src/util/errors.js";
import { Rng } from "../src/util/rng.js";
import { FAULTS, startFaultProxy } from "./helpers/fault-proxy.js";
import { tempDir } from "./helpers/tmp.js";
import { saveRandomLM } from "./helpers/lm-checkpoint.js";

const CORPUS = "the quick brown fox jumps over the lazy dog.\npack my box with five dozen liquor jugs!\n";
// The teacher's context is longer than the windows: scoring a window also generates one token.
const SPEC: LlamaSpec = { type: "llama", layers: 1, width: 16, heads: 2, context: 20, tied: false, normEps: 1e-5, ropeTheta: 10000 };
const T = 12;
const K = 5;

let dir: string;
let ckpt: string;
let tok: Tokenizer;
let V: number;
let model: LanguageModel;
let host: Record<string, HostTensor>;
let server: RunningServer;

before(async () => {
  await initDevice("wasm");
  dir = tempDir("distill-server-teacher-");
  tok = charTokenizer(CORPUS);
  V = tok.vocabSize;
  ckpt = join(dir, "tiny-teacher.safetensors");
  // Projections 4× the init: distributions peaked enough that the top k is not a near tie.
  ({ model, host } = await saveRandomLM(ckpt, SPEC, tok, 3, (name, d) => {
    if (!name.endsWith("norm.weight")) for (let i = 0; i < d.length; i++) d[i] *= 4;
  }));
  server = await startServer(ckpt);
});

after(async () => {
  await server?.close();
});

const spec = (url: string | string[], extra: Partial<ServerTeacherSpec> = {}): ServerTeacherSpec => ({ url, model: server.model, topK: K, backoffMs: 1, timeoutMs: 10_000, maxAttempts: 4, ...extra });
const openT = (s: ServerTeacherSpec, tokenizer = tok) => openServerTeacher(s, { tokenizer, vocab: V, context: T, field: "teacher.server" });

/** B windows of T ids from the corpus, at seeded offsets. */
function windows(B: number, seed: number, T0 = T): Int32Array {
  const T = T0;
  const ids = tok.encode(CORPUS.repeat(2));
  const r = new Rng(seed);
  const out = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    const at = r.int(ids.length - T);
    out.set(ids.subarray(at, at + T), b * T);
  }
  return out;
}

function assertSameLabels(a: SoftLabels, b: SoftLabels, what: string): void {
  assert.equal(a.kind, "topk");
  assert.equal(b.kind, "topk");
  if (a.kind !== "topk" || b.kind !== "topk") return;
  assert.equal(a.rows, b.rows, what);
  for (let r = 0; r < a.rows; r++) {
    assert.deepEqual(Array.from(a.ids.subarray(r * a.k, (r + 1) * a.k)), Array.from(b.ids.subarray(r * b.k, (r + 1) * b.k)), `${what}: ids of row ${r}`);
    assert.deepEqual(Array.from(a.logprobs.subarray(r * a.k, (r + 1) * a.k)), Array.from(b.logprobs.subarray(r * b.k, (r + 1) * b.k)), `${what}: log-probabilities of row ${r}`);
  }
  assert.deepEqual(a.logTail, b.logTail, `${what}: tails`);
}

test("soft labels are the top k of distill's own forward (log-softmax of lmLogits) within 1e-5, also for windows of the model's whole context", async () => {
  await labelsMatchForward(T, 6, 1);
  await labelsMatchForward(SPEC.context, 2, 8);
});

async function labelsMatchForward(T: number, B: number, seed: number): Promise<void> {
  const x = windows(B, seed, T);
  const t = await openServerTeacher(spec(server.url), { tokenizer: tok, vocab: V, context: T, field: "teacher.server" });
  assert.equal(t.scores, true);
  const s = await t.softLabels(x, [B, T]);
  const logits = await lmLogits(model, paramsFromHost(host, model.shapes, "test"), x, T);
  const ref = topKOfLogits(logits, B * T, V, K);
  assert.equal(s.kind, "topk");
  if (s.kind !== "topk") return;
  assert.deepEqual(Array.from(s.ids), Array.from(ref.ids));
  let worst = 0;
  for (let i = 0; i < ref.logprobs.length; i++) worst = Math.max(worst, Math.abs(s.logprobs[i] - ref.logprobs[i]));
  assert.ok(worst < 1e-5, `largest log-probability difference ${worst}`);
  // The tails as masses (their logs amplify rounding where the top k holds nearly everything).
  for (let r = 0; r < B * T; r++) assert.ok(Math.abs(Math.exp(s.logTail![r]) - Math.exp(ref.logTail[r])) < 1e-5, `tail of row ${r}`);
}

test("vLLM's prompt_logprobs and OpenAI's top_logprobs (ids or token text) from distill serve parse to the same numbers", async () => {
  const x = Array.from(windows(1, 2));
  const post = async (extra: Record<string, unknown>) =>
    (await (await fetch(server.url + "/v1/completions", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: server.model, prompt: x, echo: true, max_tokens: 1, logprobs: K, temperature: 0, ...extra }) })).json()) as unknown;
  const lookup = tokenLookup(tok, V, "test");
  const parse = (body: unknown) => {
    const parsed = readScores(body, T);
    assert.ok(parsed);
    const ids = new Int32Array(T * K);
    const lp = new Float32Array(T * K);
    fillTopK(parsed, K, lookup, ids, lp, 0, "test");
    return { ids: Array.from(ids), lp: Array.from(lp) };
  };
  const vllm = await post({ prompt_logprobs: K, return_tokens_as_token_ids: true });
  assert.ok(Array.isArray((vllm as { choices: { prompt_logprobs?: unknown }[] }).choices[0].prompt_logprobs), "the vLLM shape is what was parsed");
  const a = parse(vllm);
  const b = parse(await post({ return_tokens_as_token_ids: true }));
  const c = parse(await post({}));
  assert.deepEqual(b, a);
  assert.deepEqual(c, a);
});

test("continuations: the server's greedy text, re-tokenized, is distill's own greedy decoding; sampled ones repeat with the seed", async () => {
  const t = await openT(spec(server.url));
  const prompts = [tok.encode("the quick"), tok.encode("pack my b")];
  const got = await t.continuations(prompts, 6, 5, { temperature: 0 });
  const want = await generate(model, paramsFromHost(host, model.shapes, "test"), prompts, 6, { temperature: 0, seed: 5 });
  assert.deepEqual(got.map((g) => Array.from(g)), want.map((w) => Array.from(w)));
  const s1 = await t.continuations(prompts, 6, 9, { temperature: 1, topK: 8 });
  const s2 = await t.continuations(prompts, 6, 9, { temperature: 1, topK: 8 });
  assert.deepEqual(s1, s2);
  assert.ok(s1.every((s, i) => s.length === prompts[i].length + 6));
  // A generate-only server (llama.cpp's kind) still serves continuations, from the prompt's text.
  const g = await startServer(ckpt, { generateOnly: true, name: "gen" });
  try {
    const tg = await openT(spec(g.url, { model: "gen" }));
    assert.equal(tg.scores, false);
    assert.deepEqual((await tg.continuations(prompts, 6, 5, { temperature: 0 })).map((c) => Array.from(c)), want.map((w) => Array.from(w)));
  } finally {
    await g.close();
  }
});

test("bad inputs are one line each, and the API key is in none of them", async () => {
  const KEY = `sk-serve-${process.pid}-${Date.now().toString(36)}-do-not-print`;
  process.env.DISTILL_SERVER_TEST_KEY = KEY;
  const messages: string[] = [];
  const refuse = async (p: Promise<unknown>, re: RegExp) => {
    const e = await p.then(
      () => assert.fail(`expected a UserError matching ${re}`),
      (err: unknown) => err,
    );
    assert.ok(e instanceof UserError, String(e));
    assert.ok(!e.message.includes("\n"), e.message);
    assert.match(e.message, re);
    messages.push(`${e.message}\n${e.stack}`);
  };
  const withKey = (url: string | string[], extra: Partial<ServerTeacherSpec> = {}) => spec(url, { apiKeyEnv: "DISTILL_SERVER_TEST_KEY", ...extra });
  const limited = await startServer(ckpt, { maxLogprobs: 3, name: "limited" });
  const gen = await startServer(ckpt, { generateOnly: true, name: "gen" });
  const gone = await startServer(ckpt);
  const goneUrl = gone.url;
  await gone.close();
  try {
    await refuse(openT(withKey(goneUrl)), new RegExp(`^cannot reach ${goneUrl} \\(ECONNREFUSED\\)$`));
    await refuse(openT(withKey(server.url, { model: "llama-70b" })), new RegExp(`^${server.url}: no model "llama-70b" \\(it serves "${server.model}"\\)$`));
    await refuse(openT(withKey(limited.url, { model: "limited" })), new RegExp(`^teacher\\.server\\.topK: 5 is more than ${limited.url} allows \\(at most 3 log-probabilities per token\\)$`));
    const g = await openT(withKey(gen.url, { model: "gen" }));
    await refuse(g.softLabels(windows(1, 3), [1, T]), /returns no prompt log-probabilities \(it only generates/);
    await refuse(openT(withKey(server.url), charTokenizer(CORPUS + "#")), /: the server's tokenizer differs from the recipe's: ".*" is \[.*\] \(\d+ tokens\) on the server, \[.*\] \(\d+ tokens\) in the recipe$/);
    await refuse(
      openServerTeacher(withKey(server.url), { tokenizer: tok, vocab: V, context: SPEC.context + 1, field: "teacher.server" }),
      new RegExp(`^${server.url}: the server refuses a window of the recipe's context, 21 tokens, and the one token generated after it \\(HTTP 400: This model's maximum context length is 20 tokens\\. .*\\)$`),
    );
    const t = await openT(withKey(server.url));
    await refuse(t.softLabels(Int32Array.from({ length: T }, () => V + 3), [1, T]), new RegExp(`^${server.url}: scoring a window failed \\(last: HTTP 400: prompt: token id ${V + 3} is outside the vocabulary of ${V}\\)$`));
    messages.push(t.source, JSON.stringify(t.stats));
    delete process.env.DISTILL_SERVER_TEST_KEY;
    await refuse(openT(withKey(server.url)), /^teacher\.server\.apiKeyEnv: the environment variable DISTILL_SERVER_TEST_KEY is not set$/);
  } finally {
    delete process.env.DISTILL_SERVER_TEST_KEY;
    await limited.close();
    await gen.close();
  }
  for (const m of messages) assert.ok(!m.includes(KEY), `the key leaked: ${m}`);
});

test("through the fault proxy (drops, 429, 500, cut JSON, stalls): the same soft labels, and every fault happened", async () => {
  const B = 16;
  const x = windows(B, 4);
  const direct = await (await openT(spec(server.url))).softLabels(x, [B, T]);
  // Armed once the teacher is open, so every fault falls on the scoring of these windows (the
  // cache test below has them from the first request on, opening included).
  const proxy = await startFaultProxy(server.url, { seed: 11, rate: 0.2, stallMs: 3000, armed: false });
  try {
    const t = await openT(spec(proxy.url, { timeoutMs: 2500, maxAttempts: 10, concurrency: 4 }));
    proxy.arm();
    const got = await t.softLabels(x, [B, T]);
    assertSameLabels(got, direct, "through the proxy");
    for (const f of FAULTS) assert.ok(proxy.counts[f] > 0, `no ${f} happened: ${JSON.stringify(proxy.counts)}`);
    assert.equal(proxy.abandoned.count, proxy.counts.stall, "the client's timeout ended every stalled request");
    // One retry per fault at least (more where a slow reply on this shared machine timed out).
    assert.ok(t.stats.retries >= FAULTS.reduce((a, f) => a + proxy.counts[f], 0), `retries ${t.stats.retries}, faults ${JSON.stringify(proxy.counts)}`);
  } finally {
    await proxy.close();
  }
});

test("a soft-label cache built through the fault proxy equals a fault-free one, row by row, and holds no API key", async () => {
  const KEY = `sk-cache-${process.pid}-${Date.now().toString(36)}-secret`;
  process.env.DISTILL_CACHE_TEST_KEY = KEY;
  const ids = tok.encode(CORPUS.repeat(6));
  const W = Math.floor(ids.length / T);
  const train = ids.subarray(0, (W - 4) * T);
  const heldout = ids.subarray((W - 4) * T, W * T);
  const identity = { teacher: `server ${server.url} ${server.model}`, tokenizer: "test-tokenizer", corpus: corpusHash(train, heldout, T) };
  const proxy = await startFaultProxy(server.url, { seed: 5, rate: 0.2, stallMs: 3000 });
  try {
    const build = async (url: string, cacheDir: string) => {
      const t = await openT(spec(url, { apiKeyEnv: "DISTILL_CACHE_TEST_KEY", timeoutMs: 2500, maxAttempts: 10, concurrency: 4 }));
      const r = await buildCache({ dir: cacheDir, identity, k: K, vocab: V, context: T, precision: "exact", train, heldout, score: (xx, shape) => t.softLabels(xx, shape), batchWindows: 4, concurrency: 4 });
      assert.ok(r.manifest, "the cache is complete");
      return t;
    };
    const clean = join(dir, "cache-clean");
    const faulty = join(dir, "cache-faults");
    await build(server.url, clean);
    const t = await build(proxy.url, faulty);
    for (const f of FAULTS) assert.ok(proxy.counts[f] > 0, `no ${f} happened: ${JSON.stringify(proxy.counts)}`);
    assert.ok(t.stats.retries > 0);
    const a = openCache(clean, identity);
    const b = openCache(faulty, identity);
    try {
      assert.deepEqual(b.manifest.windows, a.manifest.windows);
      for (const split of ["train", "heldout"] as const) {
        const all = Int32Array.from({ length: a.manifest.windows[split] }, (_, i) => i);
        assertSameLabels(await b.softLabels(split, all), await a.softLabels(split, all), `${split} windows`);
      }
    } finally {
      await a.close();
      await b.close();
    }
    for (const d of [clean, faulty]) {
      for (const f of readdirSync(d, { recursive: true }) as string[]) {
        const path = join(d, f);
        if (statSync(path).isFile()) assert.ok(!readFileSync(path).includes(KEY), `the key is in ${f}`);
      }
    }
  } finally {
    delete process.env.DISTILL_CACHE_TEST_KEY;
    await proxy.close();
  }
});
