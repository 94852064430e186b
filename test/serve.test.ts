// `distill serve` against independent computations: the log-probabilities it reports against
// distill's own forward (model.apply on the unpadded sequence, outside jit, log-softmax in float64),
// greedy decoding against an argmax loop written here, /tokenize against the tokenizer; and the
// protocol's edges (limits, errors, generate-only), the loopback binding, and the CLI.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer, connect } from "node:net";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { initDevice, np } from "../src/engine/index.js";
import { saveCheckpoint } from "../src/checkpoint/checkpoint.js";
import { paramsFromHost } from "../src/checkpoint/params.js";
import type { HostTensor } from "../src/checkpoint/safetensors.js";
import { exportCheckpoint } from "../src/export/index.js";
import { type LanguageModel, type LlamaSpec } from "../src/nn/llama.js";
import type { Params } from "../src/nn/models.js";
import { chatPrompt, startServer, type RunningServer } from "../src/serve/server.js";
import { charTokenizer, type Tokenizer, type TokenizerJSON } from "../src/text/tokenizer.js";
import { UserError } from "../src/util/errors.js";
import { REPO_ROOT } from "./helpers/fixtures.js";
import { tempDir } from "./helpers/tmp.js";
import { saveRandomLM } from "./helpers/lm-checkpoint.js";

const CORPUS = "the quick brown fox jumps over the lazy dog.\npack my box with five dozen liquor jugs!\n";
const SPEC: LlamaSpec = { type: "llama", layers: 2, width: 16, heads: 2, context: 24, tied: false, normEps: 1e-5, ropeTheta: 10000 };
const TEXT = "a lazy fox packs the jugs"; // 25 characters: cut to fit the context where needed

let dir: string;
let ckpt: string;
let tok: Tokenizer;
let model: LanguageModel;
let host: Record<string, HostTensor>;
let server: RunningServer;

before(async () => {
  await initDevice("wasm");
  dir = tempDir("distill-serve-");
  tok = charTokenizer(CORPUS);
  ckpt = join(dir, "tiny-lm.safetensors");
  // Projections 10× the init: peaked distributions, so greedy decoding has clear winners.
  ({ model, host } = await saveRandomLM(ckpt, SPEC, tok, 7, (name, d) => {
    for (let i = 0; i < d.length; i++) d[i] = name.endsWith("norm.weight") ? 1 + 0.3 * Math.sin(i) : d[i] * 10;
  }));
  server = await startServer(ckpt);
});

after(async () => {
  await server?.close();
});

const freshParams = (): Params => paramsFromHost(host, model.shapes, "test");

/** Log-softmax (float64) of distill's forward over `seq` alone, [L, V]. */
async function referenceLogprobs(seq: ArrayLike<number>): Promise<Float64Array[]> {
  const L = seq.length;
  const V = model.vocab;
  const logits = (await model.apply(freshParams(), np.array(Int32Array.from(seq), { dtype: np.int32 }).reshape([1, L])).data()) as Float32Array;
  const out: Float64Array[] = [];
  for (let t = 0; t < L; t++) {
    const row = logits.subarray(t * V, (t + 1) * V);
    let mx = -Infinity;
    for (const v of row) mx = Math.max(mx, v);
    let s = 0;
    for (const v of row) s += Math.exp(v - mx);
    const lse = mx + Math.log(s);
    out.push(Float64Array.from(row, (v) => v - lse));
  }
  return out;
}

/** Greedy decoding by argmax over the full forward, written here independently of generate.ts. */
async function argmaxDecode(prompt: Int32Array, n: number): Promise<Int32Array> {
  const seq = Array.from(prompt);
  for (let i = 0; i < n; i++) {
    const lp = await referenceLogprobs(seq);
    const last = lp[seq.length - 1];
    let best = 0;
    for (let v = 1; v < last.length; v++) if (last[v] > last[best]) best = v;
    seq.push(best);
  }
  return Int32Array.from(seq);
}

// Replies are read field by field by the assertions, which check their shape.
async function post(base: string, path: string, body: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(base + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: r.status, json: await r.json() };
}

const sortedTop = (lp: Float64Array, k: number) =>
  Array.from(lp.keys())
    .sort((a, b) => lp[b] - lp[a] || a - b)
    .slice(0, k);

describe("scoring", () => {
  test("/v1/models names the model and its context", async () => {
    const r = (await (await fetch(server.url + "/v1/models")).json()) as { data: { id: string; max_model_len: number }[] };
    assert.equal(r.data.length, 1);
    assert.equal(r.data[0].id, "tiny-lm");
    assert.equal(r.data[0].max_model_len, SPEC.context);
    assert.equal(server.model, "tiny-lm");
  });

  test("echoed log-probabilities, both shapes, equal distill's forward at every position", async () => {
    const ids = Array.from(tok.encode(TEXT).subarray(0, 20));
    const k = 5;
    const { status, json } = await post(server.url, "/v1/completions", { model: "tiny-lm", prompt: ids, echo: true, max_tokens: 1, logprobs: k, prompt_logprobs: k, temperature: 0, return_tokens_as_token_ids: true });
    assert.equal(status, 200, JSON.stringify(json));
    const c = json.choices[0];
    const lp = c.logprobs;
    assert.equal(lp.tokens.length, ids.length + 1);
    const seq = lp.tokens.map((t: string) => Number(t.replace("token_id:", "")));
    assert.deepEqual(seq.slice(0, ids.length), ids);
    const ref = await referenceLogprobs(seq);
    assert.equal(lp.token_logprobs[0], null);
    assert.equal(lp.top_logprobs[0], null);
    assert.equal(c.prompt_logprobs.length, ids.length);
    assert.equal(c.prompt_logprobs[0], null);
    for (let i = 1; i < seq.length; i++) {
      const dist = ref[i - 1];
      assert.ok(Math.abs(lp.token_logprobs[i] - dist[seq[i]]) < 1e-5, `position ${i}: ${lp.token_logprobs[i]} vs ${dist[seq[i]]}`);
      const top = sortedTop(dist, k);
      const want = new Set([...top, seq[i]]);
      const got = lp.top_logprobs[i];
      assert.deepEqual(new Set(Object.keys(got).map((s) => Number(s.replace("token_id:", "")))), want, `position ${i}: top ids`);
      for (const id of want) assert.ok(Math.abs(got[`token_id:${id}`] - dist[id]) < 1e-5, `position ${i} token ${id}`);
      if (i < ids.length) {
        // vLLM's shape carries the same numbers, with ranks.
        const pl = c.prompt_logprobs[i];
        assert.deepEqual(new Set(Object.keys(pl).map(Number)), want);
        for (const id of want) {
          assert.ok(Math.abs(pl[String(id)].logprob - got[`token_id:${id}`]) < 1e-7);
          const rank = 1 + Array.from(dist).filter((v) => v > dist[id]).length;
          assert.equal(pl[String(id)].rank, rank, `position ${i} token ${id} rank`);
          assert.equal(pl[String(id)].decoded_token, `token_id:${id}`);
        }
      }
    }
    // Greedy: the generated token is the argmax of the last position.
    assert.equal(seq[ids.length], sortedTop(ref[ids.length - 1], 1)[0]);
    assert.equal(c.finish_reason, "length");
    assert.deepEqual(json.usage, { prompt_tokens: ids.length, completion_tokens: 1, total_tokens: ids.length + 1 });
  });

  test("a text prompt: token strings, offsets into the echoed text, max_tokens 0 scores only", async () => {
    const text = TEXT.slice(0, 12);
    const { status, json } = await post(server.url, "/v1/completions", { prompt: text, echo: true, max_tokens: 0, logprobs: 2 });
    assert.equal(status, 200, JSON.stringify(json));
    const c = json.choices[0];
    assert.equal(c.text, text);
    assert.deepEqual(c.logprobs.tokens, [...text]);
    assert.deepEqual(c.logprobs.text_offset, [...text].map((_, i) => i));
    const ref = await referenceLogprobs(tok.encode(text));
    for (let i = 1; i < text.length; i++) assert.ok(Math.abs(c.logprobs.token_logprobs[i] - ref[i - 1][tok.encode(text)[i]]) < 1e-5);
    assert.equal(json.usage.completion_tokens, 0);
  });

  test("generated tokens' log-probabilities (no echo) equal distill's forward over the whole sequence", async () => {
    const prompt = "the lazy";
    const { status, json } = await post(server.url, "/v1/completions", { prompt, max_tokens: 5, logprobs: 2, seed: 11, return_tokens_as_token_ids: true });
    assert.equal(status, 200, JSON.stringify(json));
    const lp = json.choices[0].logprobs;
    const gen = lp.tokens.map((t: string) => Number(t.slice("token_id:".length)));
    assert.equal(gen.length, 5);
    assert.equal(tok.decode(gen), json.choices[0].text);
    const seq = [...tok.encode(prompt), ...gen];
    const ref = await referenceLogprobs(seq);
    for (let i = 0; i < 5; i++) {
      const pos = prompt.length + i;
      assert.ok(Math.abs(lp.token_logprobs[i] - ref[pos - 1][seq[pos]]) < 1e-5, `generated token ${i}`);
      for (const id of sortedTop(ref[pos - 1], 2)) assert.ok(Math.abs(lp.top_logprobs[i][`token_id:${id}`] - ref[pos - 1][id]) < 1e-5);
    }
    assert.deepEqual(lp.text_offset, [0, 1, 2, 3, 4]);
  });

  test("concurrent requests (batched into one forward) each get their own numbers", async () => {
    const prompts = [3, 7, 11, 16, 20].map((n, i) => Array.from(tok.encode(TEXT.slice(i, i + n))));
    const replies = await Promise.all(prompts.map((p) => post(server.url, "/v1/completions", { prompt: p, echo: true, max_tokens: 0, prompt_logprobs: 1 })));
    for (const [i, r] of replies.entries()) {
      assert.equal(r.status, 200);
      const ref = await referenceLogprobs(prompts[i]);
      const pl = r.json.choices[0].prompt_logprobs;
      assert.equal(pl.length, prompts[i].length);
      for (let t = 1; t < prompts[i].length; t++) assert.ok(Math.abs(pl[t][String(prompts[i][t])].logprob - ref[t - 1][prompts[i][t]]) < 1e-5, `request ${i} position ${t}`);
    }
  });

  test("a request's numbers do not depend on what it was batched with (bit for bit)", async () => {
    const body = (n: number) => ({ prompt: Array.from(tok.encode(TEXT.slice(n, n + 18))), echo: true, max_tokens: 1, logprobs: 4, prompt_logprobs: 4, temperature: 0 });
    const alone = await post(server.url, "/v1/completions", body(2));
    const burst = await Promise.all([0, 1, 2, 3, 4, 5, 6].map((n) => post(server.url, "/v1/completions", body(n))));
    assert.deepEqual(burst[2].json.choices, alone.json.choices);
  });

  test("a list of prompts gives one choice each, in order", async () => {
    const a = Array.from(tok.encode("the fox"));
    const b = "pack my";
    const { json } = await post(server.url, "/v1/completions", { prompt: [a, a], echo: true, max_tokens: 0, logprobs: 0 });
    assert.deepEqual(json.choices.map((c: { index: number }) => c.index), [0, 1]);
    const { json: j2 } = await post(server.url, "/v1/completions", { prompt: [b, "the"], echo: true, max_tokens: 0 });
    assert.deepEqual(j2.choices.map((c: { text: string }) => c.text), [b, "the"]);
  });
});

test("a full-context prompt: max_tokens 1 scores every position and generates the argmax", async () => {
  const ids = Array.from(tok.encode(TEXT.slice(0, SPEC.context)));
  const r = await post(server.url, "/v1/completions", { prompt: ids, echo: true, max_tokens: 1, logprobs: 3, prompt_logprobs: 3, temperature: 0, return_tokens_as_token_ids: true });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const seq = r.json.choices[0].logprobs.tokens.map((t: string) => Number(t.slice("token_id:".length)));
  assert.equal(seq.length, SPEC.context + 1);
  const ref = await referenceLogprobs(ids);
  assert.equal(seq[SPEC.context], sortedTop(ref[SPEC.context - 1], 1)[0]);
  const lp = r.json.choices[0].logprobs.token_logprobs;
  for (let i = 1; i <= SPEC.context; i++) assert.ok(Math.abs(lp[i] - ref[i - 1][seq[i]]) < 1e-5, `position ${i}`);
});

test("a generation ending past the context samples its last token as a longer context would", async () => {
  // The same weights with one more position: its generate() goes where the 24-position model's cannot.
  const wider = join(dir, "tiny-lm-25.safetensors");
  saveCheckpoint(wider, { tensors: host, config: { role: "scratch", model: { ...SPEC, context: SPEC.context + 1 }, tokenizer: tok.toJSON() as TokenizerJSON }, state: { done: true } });
  const w = await startServer(wider);
  try {
    const prompt = Array.from(tok.encode(TEXT.slice(0, SPEC.context - 3)));
    for (const seed of [1, 2, 3]) {
      const body = { prompt, max_tokens: 4, seed, temperature: 1 };
      const [a, b] = await Promise.all([post(server.url, "/v1/completions", body), post(w.url, "/v1/completions", body)]);
      assert.equal(a.status, 200);
      assert.equal(a.json.choices[0].text, b.json.choices[0].text, `seed ${seed}`);
    }
  } finally {
    await w.close();
  }
});

describe("tokenizer", () => {
  test("/tokenize equals the tokenizer; /detokenize inverts it", async () => {
    const text = "the lazy dog jumps";
    const { json } = await post(server.url, "/tokenize", { prompt: text });
    assert.deepEqual(json.tokens, Array.from(tok.encode(text)));
    assert.equal(json.count, text.length);
    assert.equal(json.max_model_len, SPEC.context);
    const back = await post(server.url, "/detokenize", { tokens: json.tokens });
    assert.equal(back.json.prompt, text);
    const bad = await post(server.url, "/detokenize", { tokens: [tok.vocabSize] });
    assert.equal(bad.status, 400);
  });
});

describe("generation", () => {
  test("the same seed gives the same completion; greedy equals argmax decoding", async () => {
    const prompt = "the quick";
    const ask = (seed: number, temperature = 1) => post(server.url, "/v1/completions", { prompt, max_tokens: 8, temperature, seed });
    const [a, b, c] = await Promise.all([ask(1), ask(1), ask(2)]);
    assert.equal(a.json.choices[0].text, b.json.choices[0].text);
    assert.equal(a.json.choices[0].text.length, 8);
    // Seeds 1 and 2 sampled at T = 1 over 8 tokens: the same text would mean the seed is ignored.
    const others = await Promise.all([3, 4, 5].map((s) => ask(s)));
    assert.ok([c, ...others].some((r) => r.json.choices[0].text !== a.json.choices[0].text), "different seeds, same text every time");
    const greedy = await ask(9, 0);
    const want = await argmaxDecode(tok.encode(prompt), 8);
    assert.equal(greedy.json.choices[0].text, tok.decode(want.subarray(prompt.length)));
  });

  test("chat: the plain template, continued as a completion would be", async () => {
    // "user: fox\nassistant:" is 20 tokens of the 24-token context.
    const messages = [{ role: "user", content: "fox" }];
    assert.equal(tok.encode(chatPrompt(messages)).length, 20);
    const r = await post(server.url, "/v1/chat/completions", { messages, max_tokens: 4, seed: 4, temperature: 0.8 });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.object, "chat.completion");
    assert.equal(r.json.choices[0].message.role, "assistant");
    const same = await post(server.url, "/v1/completions", { prompt: chatPrompt(messages), max_tokens: 4, seed: 4, temperature: 0.8 });
    assert.equal(r.json.choices[0].message.content, same.json.choices[0].text);
    assert.equal(r.json.choices[0].message.content.length, 4);
  });
});

describe("limits and errors", () => {
  test("logprobs above the limit: 400 with vLLM's message, whose limit a client can parse", async () => {
    for (const field of ["logprobs", "prompt_logprobs"]) {
      const r = await post(server.url, "/v1/completions", { prompt: "the", echo: true, max_tokens: 1, [field]: 21 });
      assert.equal(r.status, 400);
      const want = field === "logprobs" ? "sample" : "prompt";
      assert.equal(r.json.error.message, `Requested ${want} logprobs of 21, which is greater than max allowed: 20`);
      assert.equal(Number(/max allowed: (\d+)/.exec(r.json.error.message)![1]), 20);
    }
    assert.equal((await post(server.url, "/v1/completions", { prompt: "the", echo: true, max_tokens: 1, logprobs: 20 })).status, 200);
  });

  test("--max-logprobs above the vocabulary: every token, once, and the limit reported is the one set", async () => {
    const wide = await startServer(ckpt, { maxLogprobs: 100 });
    try {
      const r = await post(wide.url, "/v1/completions", { prompt: "the dog", echo: true, max_tokens: 1, logprobs: 100, prompt_logprobs: 100, return_tokens_as_token_ids: true });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      const c = r.json.choices[0];
      for (let i = 1; i < 7; i++) {
        assert.equal(Object.keys(c.prompt_logprobs[i]).length, tok.vocabSize);
        assert.equal(Object.keys(c.logprobs.top_logprobs[i]).length, tok.vocabSize);
        const mass = Object.values(c.prompt_logprobs[i] as Record<string, { logprob: number }>).reduce((a, e) => a + Math.exp(e.logprob), 0);
        assert.ok(Math.abs(mass - 1) < 1e-5, `position ${i}: total probability ${mass}`);
      }
      const over = await post(wide.url, "/v1/completions", { prompt: "the", logprobs: 101 });
      assert.match(over.json.error.message, /max allowed: 100$/);
    } finally {
      await wide.close();
    }
  });

  test("a prompt longer than the context: 400 naming both numbers (the last generated token may lie past it)", async () => {
    const ids = Array.from(tok.encode(TEXT.slice(0, 20)));
    const r = await post(server.url, "/v1/completions", { prompt: ids, max_tokens: 6 });
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /maximum context length is 24 tokens/);
    assert.match(r.json.error.message, /20 in the messages, 6 in the completion/);
    const ok = await post(server.url, "/v1/completions", { prompt: ids, max_tokens: 5 });
    assert.equal(ok.status, 200);
    assert.equal(ok.json.choices[0].text.length, 5);
    const long = await post(server.url, "/v1/completions", { prompt: Array.from(tok.encode(TEXT)), max_tokens: 0, echo: true });
    assert.equal(long.status, 400);
    assert.match(long.json.error.message, /25 in the messages, 0 in the completion/);
  });

  test("unknown model 404; bad fields, streaming, n > 1: 400 naming the field", async () => {
    const unknown = await post(server.url, "/v1/completions", { model: "gpt-9", prompt: "the" });
    assert.equal(unknown.status, 404);
    assert.match(unknown.json.error.message, /gpt-9/);
    for (const [body, field] of [
      [{ prompt: "the", stream: true }, "stream"],
      [{ prompt: "the", n: 2 }, "n"],
      [{ prompt: "the", logprobs: -1 }, "logprobs"],
      [{ prompt: [tok.vocabSize] }, "prompt"],
      [{ prompt: "" }, "prompt"],
      [{ prompt: "the", max_tokens: 0 }, "max_tokens"],
      [{}, "prompt"],
    ] as const) {
      const r = await post(server.url, "/v1/completions", body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.json.error.param, field, JSON.stringify(r.json));
    }
    // A body that would set a prototype is refused by the JSON parser (fastify's default), not merged.
    const poisoned = await fetch(server.url + "/v1/completions", { method: "POST", headers: { "content-type": "application/json" }, body: '{"prompt": "the", "__proto__": {"echo": true}}' });
    assert.equal(poisoned.status, 400);
    const notJson = await fetch(server.url + "/v1/completions", { method: "POST", headers: { "content-type": "application/json" }, body: "{" });
    assert.equal(notJson.status, 400);
    assert.equal(((await notJson.json()) as { error: { code: number } }).error.code, 400);
  });

  test("bad model files and a port in use: one-line UserErrors", async () => {
    const oneLine = (re: RegExp) => (e: unknown) => e instanceof UserError && re.test(e.message) && !e.message.includes("\n");
    await assert.rejects(startServer(join(dir, "missing.safetensors")), oneLine(/missing\.safetensors: no such file/));
    const other = join(dir, "weights.bin");
    writeFileSync(other, "not a model");
    await assert.rejects(startServer(other), oneLine(/weights\.bin: not a distill checkpoint/));
    const empty = join(dir, "empty-folder");
    mkdirSync(empty);
    await assert.rejects(startServer(empty), oneLine(/empty-folder: no config\.json/));
    const fake = join(dir, "fake.gguf");
    writeFileSync(fake, "GGUF but nothing else");
    await assert.rejects(startServer(fake), oneLine(/fake\.gguf: /));
    await assert.rejects(startServer(ckpt, { port: 70000 }), oneLine(/--port 70000/));
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    const port = (blocker.address() as { port: number }).port;
    try {
      await assert.rejects(startServer(ckpt, { port }), (e: unknown) => e instanceof UserError && e.message.includes(`--port ${port}`) && !e.message.includes("\n"));
    } finally {
      blocker.close();
    }
  });
});

describe("binding and modes", () => {
  test("the server listens on 127.0.0.1 only", async () => {
    const u = new URL(server.url);
    assert.equal(u.hostname, "127.0.0.1");
    const others = Object.values(networkInterfaces())
      .flat()
      .filter((a) => a && a.family === "IPv4" && !a.internal)
      .map((a) => a!.address);
    for (const address of others) {
      const reached = await new Promise<boolean>((resolve) => {
        const s = connect({ host: address, port: Number(u.port) });
        s.once("connect", () => (s.destroy(), resolve(true)));
        s.once("error", () => resolve(false));
      });
      assert.equal(reached, false, `reachable on ${address}`);
    }
  });

  test("generate-only: generates, but no log-probabilities and no /tokenize", async () => {
    const g = await startServer(ckpt, { generateOnly: true, name: "gen" });
    try {
      const r = await post(g.url, "/v1/completions", { model: "gen", prompt: "the", echo: true, max_tokens: 3, logprobs: 3, prompt_logprobs: 3, seed: 1 });
      assert.equal(r.status, 200);
      assert.equal(r.json.choices[0].logprobs, null);
      assert.equal(r.json.choices[0].prompt_logprobs, undefined);
      assert.equal(r.json.choices[0].text.length, 6);
      assert.equal((await post(g.url, "/tokenize", { prompt: "the" })).status, 404);
    } finally {
      await g.close();
    }
  });

  test("a Hugging Face folder scores as its checkpoint", async () => {
    const folder = join(dir, "tiny-hf");
    await exportCheckpoint(ckpt, "hf", { out: folder });
    const hf = await startServer(folder);
    try {
      assert.equal(hf.model, "tiny-hf");
      const ids = Array.from(tok.encode(TEXT.slice(0, 18)));
      const body = { prompt: ids, echo: true, max_tokens: 0, prompt_logprobs: 4 };
      const [a, b] = await Promise.all([post(server.url, "/v1/completions", body), post(hf.url, "/v1/completions", body)]);
      const pa = a.json.choices[0].prompt_logprobs;
      const pb = b.json.choices[0].prompt_logprobs;
      for (let i = 1; i < ids.length; i++) {
        assert.deepEqual(Object.keys(pb[i]).sort(), Object.keys(pa[i]).sort());
        for (const id of Object.keys(pa[i])) assert.ok(Math.abs(pa[i][id].logprob - pb[i][id].logprob) < 1e-5);
      }
      const t = await post(hf.url, "/tokenize", { prompt: "the dog" });
      assert.deepEqual(t.json.tokens, Array.from(tok.encode("the dog")));
    } finally {
      await hf.close();
    }
  });
});

test("a GGUF file (llama.cpp in a child process) scores and generates as its checkpoint", async () => {
  const file = join(dir, "tiny-lm.gguf");
  await exportCheckpoint(ckpt, "gguf", { out: file });
  const g = await startServer(file);
  try {
    assert.equal(g.model, "tiny-lm");
    const models = (await (await fetch(g.url + "/v1/models")).json()) as { data: { max_model_len: number }[] };
    assert.equal(models.data[0].max_model_len, SPEC.context);
    const text = TEXT.slice(0, 16);
    const t = await post(g.url, "/tokenize", { prompt: text });
    assert.deepEqual(t.json.tokens, Array.from(tok.encode(text)));
    const ids = Array.from(tok.encode(text));
    const r = await post(g.url, "/v1/completions", { prompt: ids, echo: true, max_tokens: 0, prompt_logprobs: 3, logprobs: 3, return_tokens_as_token_ids: true });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const ref = await referenceLogprobs(ids);
    const pl = r.json.choices[0].prompt_logprobs;
    let maxDiff = 0;
    for (let i = 1; i < ids.length; i++) {
      for (const [id, e] of Object.entries(pl[i]) as [string, { logprob: number; rank: number }][]) {
        maxDiff = Math.max(maxDiff, Math.abs(e.logprob - ref[i - 1][Number(id)]));
      }
      assert.equal(pl[i][String(ids[i])].rank, 1 + Array.from(ref[i - 1]).filter((v) => v > ref[i - 1][ids[i]]).length, `position ${i} rank`);
      assert.ok(Math.abs(r.json.choices[0].logprobs.token_logprobs[i] - pl[i][String(ids[i])].logprob) < 1e-7);
    }
    // llama.cpp's float32 arithmetic in another order than distill's.
    assert.ok(maxDiff < 1e-3, `max |log-prob difference| ${maxDiff}`);
    const greedy = await post(g.url, "/v1/completions", { prompt: text, max_tokens: 6, temperature: 0 });
    const want = await argmaxDecode(tok.encode(text), 6);
    assert.equal(greedy.json.choices[0].text, tok.decode(want.subarray(ids.length)));
    const sampled = { prompt: text, max_tokens: 6, temperature: 1, seed: 5 };
    const [a, b, native] = await Promise.all([post(g.url, "/v1/completions", sampled), post(g.url, "/v1/completions", sampled), post(server.url, "/v1/completions", sampled)]);
    assert.equal(a.json.choices[0].text, b.json.choices[0].text);
    // The same seed draws the same uniforms whichever runtime computed the distribution.
    assert.equal(a.json.choices[0].text, native.json.choices[0].text);
  } finally {
    await g.close();
  }
});

test("CLI: distill serve prints its address, answers, and stops on SIGTERM", async () => {
  const env: Record<string, string | undefined> = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  const child = spawn(process.execPath, ["--import", "tsx", join(REPO_ROOT, "src/cli/bin.ts"), "serve", ckpt, "--name", "cli-lm"], { cwd: REPO_ROOT, env });
  let out = "";
  let err = "";
  child.stderr.on("data", (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  try {
    const line = await new Promise<string>((resolve, reject) => {
      child.stdout.on("data", (d) => {
        out += d;
        if (out.includes("\n")) resolve(out.split("\n")[0]);
      });
      child.on("exit", () => reject(new Error(`exited before printing its address: ${err}`)));
    });
    const m = /^distill serve: (http:\/\/127\.0\.0\.1:\d+) model cli-lm$/.exec(line);
    assert.ok(m, line);
    const r = await post(m[1], "/v1/completions", { model: "cli-lm", prompt: "the", max_tokens: 2, seed: 3 });
    assert.equal(r.status, 200);
    assert.equal(r.json.choices[0].text.length, 2);
    child.kill("SIGTERM");
    assert.equal(await exited, 0, err);
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
  }
  // A bad model path: one line on stderr, exit code 2.
  const bad = spawn(process.execPath, ["--import", "tsx", join(REPO_ROOT, "src/cli/bin.ts"), "serve", join(dir, "nope.safetensors")], { cwd: REPO_ROOT, env });
  let badErr = "";
  bad.stderr.on("data", (d) => (badErr += d));
  const code = await new Promise<number | null>((resolve) => bad.on("exit", resolve));
  assert.equal(code, 2);
  assert.equal(badErr.trim().split("\n").length, 1, badErr);
  assert.match(badErr, /nope\.safetensors/);
});
