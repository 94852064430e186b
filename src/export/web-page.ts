// The browser folder's page: index.html and its plain ES-module script (no bundler). The script
// is the same for every model (image classifier, language model, text classifier); what differs
// (family, input layout, classes, tokenizer, bundled inputs) comes from distill-web.json beside
// it. Kept here as strings so the folder can be written from the compiled package without
// locating source assets.

/**
 * index.html; `title` is escaped by the caller. Its Content-Security-Policy lets the page load
 * scripts and data from its own folder only (and compile onnxruntime's Wasm), nothing outside.
 */
export function indexHtml(title: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'; style-src 'unsafe-inline'; img-src data:">
<title>${title}</title>
<link rel="icon" href="data:,">
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 1.5rem; max-width: 60rem; color: #222; }
  #status { color: #555; margin: .5rem 0 1rem; }
  .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(7.5rem, 1fr)); gap: .75rem; }
  figure { margin: 0; text-align: center; }
  canvas { width: 84px; height: 84px; image-rendering: pixelated; border: 1px solid #ccc; }
  figcaption { font-size: 13px; }
  .wrong { color: #b00; }
  textarea { width: 100%; box-sizing: border-box; font: 14px ui-monospace, monospace; }
  pre { white-space: pre-wrap; word-break: break-word; background: #f5f5f5; padding: .75rem; }
  .note { color: #666; font-size: 13px; }
  .example { border-top: 1px solid #ddd; }
  .example pre { cursor: pointer; max-height: 8rem; overflow: auto; }
  .probs { list-style: none; padding: 0; margin: .25rem 0; }
  meter { width: 10rem; }
</style>
</head>
<body>
<h1>${title}</h1>
<p id="status">loading the model…</p>
<div id="app"></div>
<script type="module" src="./app.mjs"></script>
</body>
</html>
`;
}

/**
 * The page script. onnxruntime-web's plain Wasm build, one thread (no cross-origin isolation
 * needed), its files taken from this folder only. Results go to `window.distillResults`.
 */
export const APP_JS = String.raw`// Runs model.onnx with onnxruntime-web (Wasm, one thread); written by distill.
import * as ort from "./ort.wasm.min.mjs";

const here = new URL("./", import.meta.url).href;
ort.env.wasm.numThreads = 1;
ort.env.wasm.proxy = false;
ort.env.wasm.wasmPaths = here;

const statusEl = document.getElementById("status");
const app = document.getElementById("app");
const say = (text) => { statusEl.textContent = text; };

function el(tag, props, children) {
  const e = document.createElement(tag);
  Object.assign(e, props || {});
  for (const c of children || []) e.append(c);
  return e;
}

// distill's pixels are channels-last [H, W, C] in [0, 1]; the model may want [C, H, W].
function toModelLayout(px, cfg) {
  const { height: H, width: W, channels: C } = cfg.input;
  if (cfg.layout !== "nchw" || C === 1) return px;
  const out = new Float32Array(px.length);
  for (let h = 0; h < H; h++) for (let w = 0; w < W; w++) for (let c = 0; c < C; c++) out[(c * H + h) * W + w] = px[(h * W + w) * C + c];
  return out;
}

function argmax(row) {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

async function runClassifier(session, cfg) {
  const inputs = await (await fetch("./inputs.json")).json();
  const { height: H, width: W, channels: C, classes: K } = cfg.input;
  const dim = H * W * C;
  const n = inputs.pixels.length;
  const flat = new Float32Array(n * dim);
  inputs.pixels.forEach((bytes, i) => flat.set(toModelLayout(Float32Array.from(bytes, (b) => b / 255), cfg), i * dim));
  const shape = cfg.layout === "flat" ? [n, dim] : cfg.layout === "nchw" ? [n, C, H, W] : [n, H, W, C];
  const t0 = performance.now();
  const out = await session.run({ [cfg.inputName]: new ort.Tensor("float32", flat, shape) });
  const ms = performance.now() - t0;
  const data = out[cfg.outputName].data;
  const logits = [];
  const predictions = [];
  for (let i = 0; i < n; i++) {
    const row = Array.from(data.subarray(i * K, (i + 1) * K));
    logits.push(row);
    predictions.push(argmax(row));
  }
  const grid = el("div", { className: "grid" });
  inputs.pixels.forEach((bytes, i) => {
    const canvas = el("canvas", { width: W, height: H });
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(W, H);
    for (let p = 0; p < W * H; p++) {
      const rgb = C >= 3 ? [bytes[p * C], bytes[p * C + 1], bytes[p * C + 2]] : [bytes[p * C], bytes[p * C], bytes[p * C]];
      img.data.set([...rgb, 255], p * 4);
    }
    ctx.putImageData(img, 0, 0);
    const label = inputs.labels ? inputs.labels[i] : null;
    const name = cfg.classes[predictions[i]];
    const cap = el("figcaption", { className: label !== null && label !== predictions[i] ? "wrong" : "" }, [
      name + (label !== null && label !== predictions[i] ? " (is " + cfg.classes[label] + ")" : ""),
    ]);
    grid.append(el("figure", {}, [canvas, cap]));
  });
  app.append(el("p", { className: "note" }, [inputs.source]), grid);
  const right = inputs.labels ? predictions.filter((p, i) => p === inputs.labels[i]).length : null;
  say(n + " images in " + ms.toFixed(1) + " ms" + (right !== null ? "; " + right + " of " + n + " right" : ""));
  window.distillResults = { status: "done", family: "classifier", predictions, classNames: predictions.map((p) => cfg.classes[p]), logits, labels: inputs.labels ?? null, ms };
}

// A Hugging Face tokenizer.json, with the library distill itself uses, bundled beside this file.
async function hfTokenizer(config) {
  const { Tokenizer } = await import("./tokenizers.min.mjs");
  const json = await (await fetch("./tokenizer.json")).json();
  // The library requires every top-level key; a hand-written file may leave out the null ones.
  const full = Object.assign({ normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, added_tokens: [] }, json);
  return new Tokenizer(full, config);
}

// The tokenizers of src/text/tokenizer.ts, from the stored TokenizerJSON.
async function makeTokenizer(tj) {
  if (tj.kind === "char") {
    const ids = new Map(tj.chars.map((c, i) => [c, i + 1])); // id 0 = unknown
    return {
      vocabSize: tj.chars.length + 1,
      encode: (text) => Array.from(text, (ch) => ids.get(ch) ?? 0),
      decode: (xs) => xs.map((id) => (id >= 1 && id <= tj.chars.length ? tj.chars[id - 1] : "\uFFFD")).join(""),
    };
  }
  if (tj.kind === "byte") {
    const enc = new TextEncoder();
    const dec = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
    return {
      vocabSize: 256,
      encode: (text) => Array.from(enc.encode(text)),
      decode: (xs) => dec.decode(Uint8Array.from(xs, (id) => (Number.isInteger(id) && id >= 0 && id < 256 ? id : 0xff))),
    };
  }
  const config = tj.config ?? {};
  const tok = await hfTokenizer(config);
  const cleanUp = config.clean_up_tokenization_spaces === true;
  const vocab = tok.model.vocab;
  return {
    vocabSize: vocab.length,
    encode: (text) => (text.length === 0 ? [] : tok.encode(text, { add_special_tokens: false }).ids),
    decode: (xs) => {
      let out = "";
      let run = [];
      const flush = () => { if (run.length) out += tok.decode(run, { skip_special_tokens: false, clean_up_tokenization_spaces: cleanUp }); run = []; };
      for (const id of xs) {
        if (Number.isInteger(id) && id >= 0 && id < vocab.length && vocab[id] !== undefined) run.push(id);
        else { flush(); out += "\uFFFD"; }
      }
      flush();
      return out;
    },
  };
}

function intTensor(type, values, shape) {
  return type === "int64" ? new ort.Tensor("int64", BigInt64Array.from(values, BigInt), shape) : new ort.Tensor("int32", Int32Array.from(values), shape);
}

// Greedy decoding, the whole prefix recomputed for each new token, within the context length.
async function greedy(session, cfg, promptIds, tokens) {
  const C = cfg.context;
  const ids = promptIds.slice(-(C - 1));
  const n = Math.min(tokens, C - ids.length);
  const generated = [];
  for (let i = 0; i < n; i++) {
    const L = ids.length;
    const feeds = {};
    for (const { name, type, shape } of cfg.inputs) {
      if (name === "input_ids") feeds[name] = intTensor(type, ids, [1, L]);
      else if (name === "attention_mask") feeds[name] = intTensor(type, ids.map(() => 1), [1, L]);
      else if (name === "position_ids") feeds[name] = intTensor(type, ids.map((_, j) => j), [1, L]);
      // No cache: every step recomputes the whole prefix, so the past is empty [1, heads, 0, head_dim].
      else if (name.startsWith("past_key_values.")) feeds[name] = new ort.Tensor("float32", new Float32Array(0), [1, shape[1], 0, shape[3]]);
      else throw new Error("model.onnx: unexpected input " + name);
    }
    const out = await session.run(feeds);
    const logits = out[cfg.outputName].data;
    const V = logits.length / L;
    const next = argmax(logits.subarray((L - 1) * V, L * V));
    ids.push(next);
    generated.push(next);
  }
  return { promptIds: ids.slice(0, ids.length - generated.length), generated };
}

async function runLM(session, cfg) {
  const tok = await makeTokenizer(cfg.tokenizer);
  const prompt = el("textarea", { rows: 3, value: cfg.prompt, id: "prompt" });
  const count = el("input", { type: "number", min: 1, max: cfg.context - 1, value: cfg.tokens, id: "tokens" });
  const button = el("button", { type: "submit", id: "generate" }, ["Generate"]);
  const output = el("pre", { id: "output" });
  const form = el("form", {}, [
    el("label", {}, ["Prompt", prompt]),
    el("p", {}, [el("label", {}, ["Tokens to generate (greedy, context " + cfg.context + ") ", count]), " ", button]),
  ]);
  app.append(form, output);
  const generate = async () => {
    const text = prompt.value;
    const ids = tok.encode(text);
    if (ids.length === 0) { say("type a prompt first"); return; }
    window.distillResults = { status: "running", family: "lm" };
    button.disabled = true;
    say("generating…");
    const t0 = performance.now();
    const r = await greedy(session, cfg, ids, Math.max(1, Number(count.value) || cfg.tokens));
    const ms = performance.now() - t0;
    const continuation = tok.decode(r.generated);
    output.textContent = "";
    output.append(el("span", { className: "note" }, [tok.decode(r.promptIds)]), continuation);
    say(r.generated.length + " tokens in " + ms.toFixed(0) + " ms");
    button.disabled = false;
    window.distillResults = { status: "done", family: "lm", prompt: text, promptIds: r.promptIds, ids: r.generated, text: continuation, ms };
  };
  form.addEventListener("submit", (e) => { e.preventDefault(); generate().catch(fail); });
  await generate();
}

// distill's rows (TextTokenizer.encodeBatch): [CLS] tokens… [SEP], the tokens cut so [SEP]
// stays last, then padId to the row length; attention_mask 1 on the tokens, token_type_ids 0.
function textRow(tok, cfg, text) {
  const body = text.length === 0 ? [] : tok.encode(text, { add_special_tokens: false }).ids;
  const kept = body.slice(0, cfg.length - 2);
  const ids = [cfg.clsId, ...kept, cfg.sepId];
  const tokens = ids.length;
  while (ids.length < cfg.length) ids.push(cfg.padId);
  return { ids, tokens, truncated: body.length > kept.length };
}

function softmax(row) {
  const top = Math.max(...row);
  const e = row.map((v) => Math.exp(v - top));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

// All texts in one batch of full-length rows, as distill feeds them.
async function classifyTexts(session, cfg, tok, texts) {
  const L = cfg.length;
  const rows = texts.map((t) => textRow(tok, cfg, t));
  const n = rows.length;
  const ids = rows.flatMap((r) => r.ids);
  const feeds = {};
  for (const { name, type } of cfg.inputs) {
    if (name === "input_ids") feeds[name] = intTensor(type, ids, [n, L]);
    else if (name === "attention_mask") feeds[name] = intTensor(type, rows.flatMap((r) => r.ids.map((_, j) => (j < r.tokens ? 1 : 0))), [n, L]);
    else if (name === "token_type_ids") feeds[name] = intTensor(type, ids.map(() => 0), [n, L]);
    else throw new Error("model.onnx: unexpected input " + name);
  }
  const t0 = performance.now();
  const data = (await session.run(feeds))[cfg.outputName].data;
  const ms = performance.now() - t0;
  const K = cfg.classes.length;
  return {
    ms,
    rows: rows.map((r, i) => {
      const logits = Array.from(data.subarray(i * K, (i + 1) * K));
      const prediction = argmax(logits);
      return { text: texts[i], ids: r.ids, tokens: r.tokens, truncated: r.truncated, logits, probabilities: softmax(logits), prediction, className: cfg.classes[prediction] };
    }),
  };
}

// One line per class, most probable first.
function probabilities(r, classes) {
  const order = classes.map((_, k) => k).sort((a, b) => r.probabilities[b] - r.probabilities[a]);
  return el("ul", { className: "probs" }, order.map((k) => el("li", {}, [el("meter", { min: 0, max: 1, value: r.probabilities[k] }), " " + (100 * r.probabilities[k]).toFixed(1) + "% " + classes[k]])));
}

function tokenNote(r, cfg) {
  return el("p", { className: "note" }, [r.tokens + " of " + cfg.length + " tokens" + (r.truncated ? " (the text was cut to fit)" : "")]);
}

async function runText(session, cfg) {
  const tok = await hfTokenizer(cfg.tokenizer.config ?? {});
  const inputs = await (await fetch("./inputs.json")).json();
  const box = el("textarea", { rows: 6, value: inputs.texts[0], id: "text" });
  const button = el("button", { type: "submit", id: "classify" }, ["Classify"]);
  const typed = el("div", { id: "typed" });
  const form = el("form", {}, [el("label", {}, ["Text", box]), el("p", {}, [button])]);
  const ex = await classifyTexts(session, cfg, tok, inputs.texts);
  const list = el("div", { id: "examples" });
  ex.rows.forEach((r, i) => {
    const label = inputs.labels ? inputs.labels[i] : null;
    const wrong = label !== null && label !== r.prediction;
    const head = el("p", { className: wrong ? "wrong" : "" }, [r.className + (wrong ? " (is " + cfg.classes[label] + ")" : "")]);
    // Clicking an example's text puts it in the box.
    const text = el("pre", { title: "classify this text above" }, [r.text.length > 400 ? r.text.slice(0, 400) + "…" : r.text]);
    text.addEventListener("click", () => { box.value = r.text; box.focus(); });
    list.append(el("section", { className: "example" }, [head, text, probabilities(r, cfg.classes), tokenNote(r, cfg)]));
  });
  app.append(form, typed, el("h2", {}, ["Bundled texts"]), el("p", { className: "note" }, [inputs.source]), list);
  const right = inputs.labels ? ex.rows.filter((r, i) => r.prediction === inputs.labels[i]).length : null;
  const summary = ex.rows.length + " bundled texts in " + ex.ms.toFixed(1) + " ms" + (right !== null ? "; " + right + " of " + ex.rows.length + " right" : "");
  const classify = async () => {
    window.distillResults = { status: "running", family: "text" };
    button.disabled = true;
    const r = await classifyTexts(session, cfg, tok, [box.value]);
    const row = r.rows[0];
    typed.replaceChildren(el("p", {}, [el("strong", {}, [row.className])]), probabilities(row, cfg.classes), tokenNote(row, cfg));
    say(summary + "; this text in " + r.ms.toFixed(1) + " ms");
    button.disabled = false;
    window.distillResults = { status: "done", family: "text", typed: row, examples: ex.rows, labels: inputs.labels, ms: ex.ms };
  };
  form.addEventListener("submit", (e) => { e.preventDefault(); classify().catch(fail); });
  await classify();
}

function fail(e) {
  say("error: " + (e && e.message ? e.message : String(e)));
  window.distillResults = { status: "error", error: String(e && e.message ? e.message : e) };
  console.error(e);
}

async function main() {
  const cfg = await (await fetch("./distill-web.json")).json();
  const session = await ort.InferenceSession.create("./model.onnx", { executionProviders: ["wasm"] });
  if (cfg.family === "classifier") await runClassifier(session, cfg);
  else if (cfg.family === "text") await runText(session, cfg);
  else await runLM(session, cfg);
}

window.distillResults = { status: "loading" };
main().catch(fail);
`;
