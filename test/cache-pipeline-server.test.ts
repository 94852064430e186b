// The pipeline with a teacher on a server (`distill serve`, in this process, on the loopback
// address): `distill cache` fills an exact cache through it, and a student from that cache
// equals the student trained with the live server teacher on the same aligned windows, bit for
// bit; the API key is in no file either writes. A server that only generates (like llama.cpp's)
// serves sequence-level KD (modes { teacher: 1 }) and nothing else, with one line saying so.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { initDevice } from "../src/engine/index.js";
import { loadCheckpoint } from "../src/checkpoint/checkpoint.js";
import { type LlamaSpec } from "../src/nn/llama.js";
import { startServer, type RunningServer } from "../src/serve/server.js";
import { charTokenizer } from "../src/text/tokenizer.js";
import { loadAnyRecipe, type LMRecipe } from "../src/recipe/recipe.js";
import { runLMRecipe } from "../src/pipeline-lm.js";
import { cacheRecipe } from "../src/cache/build.js";
import { UserError } from "../src/util/errors.js";
import { checkpointOf, results, run } from "./helpers/byo.js";
import { tempDir } from "./helpers/tmp.js";
import { saveRandomLM } from "./helpers/lm-checkpoint.js";
import { FOX, K, opt, student, textCorpus, writeLMRecipe } from "./helpers/cache-recipes.js";

const TEXT = FOX;
// The served teacher's context is longer than the students' windows (scoring a window also
// generates one token).
const SPEC: LlamaSpec = { type: "llama", layers: 1, width: 16, heads: 2, context: 20, tied: false, normEps: 1e-5, ropeTheta: 10000 };
const KEY = "sk-test-3f9a7c1e55d0";

let dir: string;
let corpus: string;
let scoring: RunningServer;
let generating: RunningServer;

before(async () => {
  await initDevice("wasm");
  dir = tempDir("distill-cache-server-");
  corpus = textCorpus(dir, TEXT, 40);
  // The recipe's char tokenizer is built from the training text, which holds every character.
  const tok = charTokenizer(TEXT);
  const ckpt = join(dir, "teacher.safetensors");
  await saveRandomLM(ckpt, SPEC, tok, 5);
  scoring = await startServer(ckpt);
  generating = await startServer(ckpt, { generateOnly: true });
  process.env.DISTILL_TEST_TEACHER_KEY = KEY;
});

after(async () => {
  await scoring?.close();
  await generating?.close();
});

const quiet = { start() {}, update() {}, stop() {}, info() {} };
const opts = (out: string) => ({ out, seeds: [0], device: "wasm" as const, progress: quiet, stop: { requested: false }, workers: 1 });

function recipe(name: string, teacher: unknown, edit?: (r: Record<string, any>) => void): LMRecipe {
  return loadAnyRecipe(writeLMRecipe(dir, corpus, name, teacher, { steps: 8, evalWindows: 4 }, edit)) as LMRecipe;
}

const server = (s: RunningServer) => ({ server: { url: s.url, model: s.model, topK: K, apiKeyEnv: "DISTILL_TEST_TEACHER_KEY", backoffMs: 1 } });

/** Every file under d (recursively), as text, to look for the key. */
function allText(d: string): string {
  return (readdirSync(d, { recursive: true }) as string[]).filter((f) => statSync(join(d, f)).isFile()).map((f) => readFileSync(join(d, f)).toString("latin1")).join("\n");
}

test("a student from an exact cache filled through the server equals the one trained with the live server teacher, bit for bit; the key is in no file", async (t) => {
  const cacheDir = join(dir, "cache");
  const filled = await cacheRecipe(recipe("fill", server(scoring), (r) => (r.cache = { dir: cacheDir, topK: K, precision: "exact" })), opts(join(dir, "runs")));
  assert.ok("manifest" in filled && filled.manifest, "the cache is not complete");
  // Keyed on the model, not the address: replicas and shards filled through other servers agree.
  assert.equal(filled.manifest.teacher, `server:${scoring.model}:top${K}`);

  const live = join(dir, "live");
  await runLMRecipe(recipe("live", server(scoring), (r) => (r.data.windows = "aligned")), opts(live));
  const fromCache = join(dir, "from-cache");
  await runLMRecipe(recipe("from-cache", { cache: cacheDir }), opts(fromCache));
  const [a, b] = [run(results(live), "fkl"), run(results(fromCache), "fkl")];
  t.diagnostic(`held-out: live server ${a.metrics.loss}, from its cache ${b.metrics.loss} nats/token`);
  assert.equal(b.metrics.loss, a.metrics.loss);
  const tensors = (o: string) => Object.entries(loadCheckpoint(checkpointOf(o, "fkl")).tensors).map(([k, v]) => [k, Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength).toString("base64")]);
  assert.deepEqual(tensors(fromCache), tensors(live));
  for (const d of [cacheDir, live, fromCache]) assert.ok(!allText(d).includes(KEY), `the API key is in a file under ${d}`);
});

test("a server that only generates: sequence-level KD from its continuations, and one line refusing anything else", async () => {
  const seq = join(dir, "seqkd");
  await runLMRecipe(
    recipe("seqkd", server(generating), (r) => {
      r.students[0].train.loss = { name: "ce" };
      r.students[0].train.modes = { teacher: 1 };
      r.students[0].train.promptLength = 8;
      // A scratch student beside it needs no teacher.
      r.students.push({ name: "scratch", role: "scratch", model: student, train: { steps: 2, batchSize: 4, optimizer: opt, loss: { name: "ce" } } });
    }),
    opts(seq),
  );
  assert.ok(Number.isFinite(run(results(seq), "fkl").metrics.loss));
  // No teacher row: it gave no log-probabilities to compute one from.
  assert.equal(results(seq).runs.find((x) => x.name === "teacher"), undefined);

  const refuse = async (p: Promise<unknown>, re: RegExp) => assert.rejects(p, (e: unknown) => e instanceof UserError && !e.message.includes("\n") && re.test(e.message) && !e.message.includes(KEY));
  await refuse(runLMRecipe(recipe("kd", server(generating)), opts(join(dir, "kd"))), /^students\[0\]\.train: teacher\.server .* only generates .*modes \{ teacher: 1 \}/);
  await refuse(cacheRecipe(recipe("fill-gen", server(generating), (r) => (r.cache = { dir: join(dir, "never"), topK: K })), opts(join(dir, "runs"))), /^teacher\.server: .* only generates .*a cache needs a teacher that scores/);
});
