// The report's detail sections: what each run was given, per-class accuracy and confusion
// matrices, reliability diagrams, runs without a training log, and the environment; and the
// CSS that keeps the whole page usable on a phone. html.ts assembles them into the page; the
// SVG primitives are its own (this module imports them back: the cycle is only between
// function declarations, none runs while the modules load).
import { CALIBRATION_BINS, eceFromBins, type ReliabilityBin } from "../eval/metrics.js";
import { ROLE_COLOR, esc, line, linearScale, linearTicks, n, svg, table, text, thousands, xAxis, yAxis, type Cell, type Frame, type LossCurve } from "./html.js";
import { fmtBytes, fmtMs, type Results, type RunRecord, type Summary } from "./results.js";
import type { RunSettings } from "./run-info.js";

const color = (s: { role: RunRecord["role"] }) => ROLE_COLOR[s.role] ?? "#6b7280";

/** The runs of `name` (every seed), by seed. */
function runsOf(results: Results, name: string): RunRecord[] {
  return results.runs.filter((r) => r.name === name).sort((a, b) => a.seed - b.seed);
}

/** "one seed" or "summed over 3 seeds": what a pooled number is, in a caption. */
function pooledOver(seeds: number, verb: string): string {
  return seeds > 1 ? `${verb} over ${seeds} seeds` : "one seed";
}

// ---------------------------------------------------------------- captions

/** The caption under a per-run bar chart: whiskers and dots only where there are seeds. */
export function barCaption(summary: Summary[], lm: boolean): string {
  const most = Math.max(0, ...summary.map((s) => s.seeds));
  const fewest = Math.min(...summary.map((s) => s.seeds));
  const parts = [lm ? "Lower is better." : "Higher is better."];
  if (most > 1) {
    parts.push(
      fewest === most
        ? `Bars: mean over ${most} seeds; whiskers: ± sample std; dots: individual seeds.`
        : `Bars: mean over each run's seeds (${fewest} to ${most}); whiskers: ± sample std where a run has several; dots: individual seeds.`,
    );
  } else {
    parts.push("One seed: each bar is that seed's value; there is no measure of seed-to-seed noise.");
  }
  parts.push(`The dashed line is the best scratch student${lm ? ": a distilled student helped only if its bar ends below it" : ""}.`);
  return parts.join(" ");
}

/** The note in the corner of the size chart. */
export function tradeoffNote(summary: Summary[], lm: boolean): string {
  const most = Math.max(0, ...summary.map((s) => s.seeds));
  return `${most > 1 ? "points: mean; lines: ± std over seeds" : "one seed"}; y axis zoomed${lm ? "; lower is better" : ""}`;
}

// ---------------------------------------------------------------- settings

const fmtNum = (v: number | undefined) => (v === undefined ? "–" : String(v));
const fmtCount = (v: number | undefined) => (v === undefined ? "–" : thousands(v));

function modesText(m: RunSettings["modes"]): string {
  if (!m) return "–";
  const parts = (["corpus", "teacher", "student"] as const).filter((k) => m[k] > 0).map((k) => `${k} ${Math.round(m[k] * 100)}%`);
  return parts.join(", ") || "–";
}

/** One row per run name (its first seed's settings: only the seed differs between seeds). */
export function settingsSection(results: Results, summary: Summary[], lm: boolean): string {
  const head: Cell[] = [
    ["run", ""],
    ["model", ""],
    ["loss", ""],
    ["T", "num"],
    ["λ", "num"],
    ["divergence", ""],
    ...(lm ? [] : [["epochs", "num"] as Cell]),
    ["steps", "num"],
    ["optimiser", ""],
    ["lr", "num"],
    ["batch", "num"],
    ...(lm ? [["batches from", ""] as Cell] : [["labels read", "num"] as Cell]),
    [lm ? "windows read" : "examples read", "num"],
    ...(lm ? [["tokens read", "num"] as Cell] : []),
    ["workers", "num"],
  ];
  const rows = summary.map((s): Cell[] => {
    const st = runsOf(results, s.name)[0]?.settings;
    const name: Cell = [`<span class="swatch" style="background:${color(s)}"></span>${esc(s.name)}`, ""];
    if (!st) return [name, [esc(s.model), ""], [`<span class="muted">not recorded (e.g. a teacher loaded from a checkpoint)</span>`, ""], ...head.slice(3).map((): Cell => ["", ""])];
    const logits = st.divergence ? `${st.divergence}${st.beta !== undefined ? ` β=${st.beta}` : ""}${st.alpha !== undefined ? ` α=${st.alpha}` : ""}${st.topK !== undefined ? `, top-${st.topK}` : ""}` : "–";
    // Encoders: the intermediate-layer terms added to the logit loss.
    const divergence = st.intermediate?.length ? `${logits}; + ${st.intermediate.join(", ")}` : logits;
    return [
      name,
      [esc(s.model), ""],
      [esc(st.loss), ""],
      [fmtNum(st.temperature), "num"],
      [fmtNum(st.lambda), "num"],
      [esc(divergence), ""],
      ...(lm ? [] : [[fmtNum(st.epochs), "num"] as Cell]),
      [fmtCount(st.steps), "num"],
      [esc(`${st.optimizer}${st.schedule && st.schedule !== "constant" ? `, ${st.schedule}` : ""}`), ""],
      [fmtNum(st.lr), "num"],
      [fmtCount(st.batchSize), "num"],
      ...(lm ? [[esc(modesText(st.modes)), ""] as Cell] : [[fmtCount(st.labels), "num"] as Cell]),
      [fmtCount(st.examples), "num"],
      ...(lm ? [[fmtCount(st.tokens), "num"] as Cell] : []),
      [fmtCount(st.workers), "num"],
    ];
  });
  const note = lm
    ? "T: distillation temperature; λ: the weight of the distillation term (1 − λ weighs the cross-entropy on the text); both apply to distillation losses only. lr: the optimiser's learning rate. Windows read: steps × batch, each window one context of tokens; tokens read: windows × context. Batches from: the share of batches taken from the corpus, from teacher samples (sequence-level) and from the student's own samples (on-policy)."
    : "T: distillation temperature; λ: the weight of the distillation term (1 − λ weighs the cross-entropy on labels); both apply to distillation losses only. lr: the optimiser's learning rate. Divergence: of the logits, then any intermediate-layer terms added to the loss (name×weight). Labels read: distinct training labels the run's loss can read (none for soft labels alone). Examples read: steps × batch, repeats over epochs counted (each epoch drops its last partial batch). Runs given different budgets are not a like-for-like comparison.";
  return [`<div id="settings">`, table(head, rows), `</div>`, `<p class="muted">${esc(note)}</p>`].join("\n");
}

// ---------------------------------------------------------------- classes

/** The element-wise sum of every seed's confusion matrix of `name`; null if any seed lacks one. */
export function summedConfusion(results: Results, name: string): number[][] | null {
  const runs = runsOf(results, name);
  if (runs.length === 0 || runs.some((r) => !r.confusion)) return null;
  const k = runs[0].confusion!.length;
  if (runs.some((r) => r.confusion!.length !== k || r.confusion!.some((row) => row.length !== k))) return null;
  const m = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  for (const r of runs) r.confusion!.forEach((row, t) => row.forEach((c, p) => (m[t][p] += c)));
  return m;
}

function classNames(results: Results, k: number): string[] {
  return Array.from({ length: k }, (_, i) => results.classes?.[i] ?? `class ${i}`);
}

const share = (num: number, den: number) => (den > 0 ? ((num / den) * 100).toFixed(1) : "–");

/**
 * Which runs get a confusion matrix: the teacher, the best scratch student and every distilled
 * student. The page's question is whether distillation beat the best student trained without
 * it, and what the teacher it learnt from gets wrong; a matrix for every other scratch
 * student would only repeat the per-class table above it.
 */
function matrixRuns(summary: Summary[]): Summary[] {
  const scratch = summary.filter((s) => s.role === "scratch");
  const best = scratch.length ? scratch.reduce((a, b) => (b.mean.accuracy > a.mean.accuracy ? b : a)) : undefined;
  return summary.filter((s) => s.role !== "scratch" || s === best);
}

function confusionChart(m: number[][], names: string[], run: Summary): string {
  const k = m.length;
  const cell = Math.min(34, 340 / k);
  const f: Frame = { x: 104, y: 8, w: cell * k, h: cell * k };
  const W = f.x + f.w + 10;
  const H = f.y + f.h + 96;
  const out: string[] = [];
  m.forEach((row, t) => {
    const total = row.reduce((a, b) => a + b, 0);
    row.forEach((c, p) => {
      const frac = total > 0 ? c / total : 0;
      const x = f.x + p * cell;
      const y = f.y + t * cell;
      const fill = t === p ? "#15803d" : "#b91c1c";
      out.push(
        `<rect x="${n(x)}" y="${n(y)}" width="${n(cell)}" height="${n(cell)}" fill="${c > 0 ? fill : "#fff"}" fill-opacity="${n(c > 0 ? Math.max(0.06, frac) : 1)}" stroke="#e5e7eb">` +
          `<title>${esc(`true ${names[t]}, predicted ${names[p]}: ${c} (${share(c, total)}% of ${names[t]})`)}</title></rect>`,
      );
      if (c > 0) out.push(text(x + cell / 2, y + cell / 2 + 4, String(c), `class="cm-n${frac > 0.5 ? " on-dark" : ""}" data-cell="${t},${p}" text-anchor="middle"`));
    });
    out.push(text(f.x - 6, f.y + t * cell + cell / 2 + 4, names[t], `class="tick" text-anchor="end"`));
  });
  for (let p = 0; p < k; p++) {
    const x = f.x + p * cell + cell / 2 + 4;
    const y = f.y + f.h + 8;
    out.push(text(x, y, names[p], `class="tick" text-anchor="end" transform="rotate(-50 ${n(x)} ${n(y)})"`));
  }
  out.push(text(12, f.y + f.h / 2, "true class", `class="axis-title" text-anchor="middle" transform="rotate(-90 12 ${n(f.y + f.h / 2)})"`));
  out.push(text(f.x + f.w / 2, H - 6, "predicted class", `class="axis-title" text-anchor="middle"`));
  return svg(W, H, `Confusion matrix of ${run.name}`, out).replace("<svg ", `<svg data-run="${esc(run.name)}" `);
}

/** Per-class accuracy of every run, and confusion matrices of the runs matrixRuns picks. */
export function classesSection(results: Results, summary: Summary[]): string {
  const withM = summary.map((s) => ({ s, m: summedConfusion(results, s.name) })).filter((x): x is { s: Summary; m: number[][] } => x.m !== null);
  if (withM.length === 0) return `<p class="muted">No confusion matrices in these results (written by an older distill).</p>`;
  const k = withM[0].m.length;
  const names = classNames(results, k);
  const seeds = Math.max(...withM.map((x) => x.s.seeds));
  const head: Cell[] = [["true class", ""], ...withM.map(({ s }): Cell => [s.name, "num"])];
  const rows: Cell[][] = names.map((name, t) => [
    [esc(name), ""],
    ...withM.map(({ m }): Cell => [share(m[t][t], m[t].reduce((a, b) => a + b, 0)), "num"]),
  ]);
  rows.push([
    ["<strong>all classes</strong>", ""],
    ...withM.map(({ m }): Cell => {
      const right = m.reduce((a, row, t) => a + row[t], 0);
      const all = m.reduce((a, row) => a + row.reduce((x, y) => x + y, 0), 0);
      return [`<strong>${share(right, all)}</strong>`, "num"];
    }),
  ]);
  const shown = matrixRuns(withM.map((x) => x.s));
  const tests = withM[0].m.reduce((a, row) => a + row.reduce((x, y) => x + y, 0), 0) / Math.max(1, withM[0].s.seeds);
  return [
    `<h3>Per-class accuracy (%)</h3>`,
    `<div id="per-class">`,
    table(head, rows),
    `</div>`,
    `<p class="muted">${esc(`Test accuracy within each true class, in %, from the confusion counts (${pooledOver(seeds, "summed")}; ${thousands(tests)} test images per seed).`)}</p>`,
    `<h3>Confusion matrices</h3>`,
    `<div class="small-multiples">`,
    ...shown.map((s) => {
      const m = withM.find((x) => x.s === s)!.m;
      return `<figure><figcaption><span class="swatch" style="background:${color(s)}"></span>${esc(s.name)} <span class="muted">${esc(s.role)}</span></figcaption>${confusionChart(m, names, s)}</figure>`;
    }),
    `</div>`,
    `<p class="muted">${esc(
      `Rows: true class; columns: predicted class; each cell the number of test images (${pooledOver(seeds, "counts summed")}). Green: correct, red: mistaken; the shade is the cell's share of its row. Shown for the teacher, the best scratch student and each distilled student.`,
    )}</p>`,
  ].join("\n");
}

// ---------------------------------------------------------------- calibration

/** Bins of every seed of a run pooled: counts summed, confidence and accuracy count-weighted. */
export function pooledBins(runs: RunRecord[]): ReliabilityBin[] | null {
  if (runs.length === 0 || runs.some((r) => !r.reliability)) return null;
  const k = runs[0].reliability!.length;
  if (runs.some((r) => r.reliability!.length !== k)) return null;
  return Array.from({ length: k }, (_, b) => {
    const count = runs.reduce((a, r) => a + r.reliability![b].count, 0);
    const w = (f: (x: ReliabilityBin) => number) => (count > 0 ? runs.reduce((a, r) => a + r.reliability![b].count * f(r.reliability![b]), 0) / count : 0);
    return { count, confidence: w((x) => x.confidence), accuracy: w((x) => x.accuracy) };
  });
}

function reliabilityChart(bins: ReliabilityBin[], run: Summary): string {
  const W = 340;
  const H = 330;
  const f: Frame = { x: 52, y: 10, w: W - 52 - 12, h: 190 };
  const hist: Frame = { x: f.x, y: f.y + f.h + 20, w: f.w, h: 46 };
  const k = bins.length;
  const x = linearScale([0, 100], [f.x, f.x + f.w]);
  const y = linearScale([0, 100], [f.y + f.h, f.y]);
  const ticks = linearTicks([0, 100], 20);
  const out = [...yAxis(f, y, ticks, (v) => v.toFixed(0), "accuracy (%)")];
  out.push(line(x(0), y(0), x(100), y(100), `class="diag"`));
  const total = bins.reduce((a, b) => a + b.count, 0);
  const maxShare = Math.max(...bins.map((b) => b.count / Math.max(1, total)));
  const hy = linearScale([0, maxShare > 0 ? maxShare : 1], [hist.y + hist.h, hist.y]);
  bins.forEach((b, i) => {
    if (b.count === 0) return;
    const x0 = x((i / k) * 100) + 0.5;
    const bw = x(((i + 1) / k) * 100) - x((i / k) * 100) - 1;
    const acc = b.accuracy * 100;
    const conf = b.confidence * 100;
    out.push(
      `<rect x="${n(x0)}" y="${n(y(acc))}" width="${n(bw)}" height="${n(y(0) - y(acc))}" fill="${color(run)}" fill-opacity="0.8">` +
        `<title>${esc(`confidence ${((i / k) * 100).toFixed(1)}–${(((i + 1) / k) * 100).toFixed(1)}%: ${b.count} predictions, mean confidence ${conf.toFixed(1)}%, accuracy ${acc.toFixed(1)}%`)}</title></rect>`,
    );
    // The gap to perfect calibration: from the bar's top to the mean confidence.
    out.push(line(x0, y(conf), x0 + bw, y(conf), `class="conf"`));
    const sh = b.count / total;
    out.push(`<rect x="${n(x0)}" y="${n(hy(sh))}" width="${n(bw)}" height="${n(hist.y + hist.h - hy(sh))}" class="hist"><title>${esc(`${b.count} predictions (${(sh * 100).toFixed(1)}%)`)}</title></rect>`);
  });
  out.push(line(f.x, hist.y + hist.h, f.x + f.w, hist.y + hist.h, `class="axis"`));
  out.push(text(f.x - 6, hist.y + 12, `${Math.round(maxShare * 100)}%`, `class="tick" text-anchor="end"`));
  out.push(text(f.x - 6, hist.y + hist.h, "0", `class="tick" text-anchor="end"`));
  out.push(text(f.x, hist.y - 5, "share of predictions in each bin", `class="note"`));
  out.push(...xAxis(hist, x, ticks, (v) => v.toFixed(0), "confidence: top softmax probability (%)"));
  return svg(W, H, `Reliability diagram of ${run.name}`, out).replace("<svg ", `<svg data-run="${esc(run.name)}" `);
}

/** One reliability diagram per run, seeds pooled. */
export function calibrationSection(results: Results, summary: Summary[], lm: boolean): string {
  const figs: string[] = [];
  let seeds = 1;
  for (const s of summary) {
    const bins = pooledBins(runsOf(results, s.name));
    if (!bins) continue;
    seeds = Math.max(seeds, s.seeds);
    const ece = eceFromBins(bins);
    const what = s.seeds > 1 ? `ECE of the pooled bins <span class="ece" data-run="${esc(s.name)}">${ece.toFixed(4)}</span> (mean of the seeds' ECE ${s.mean.ece.toFixed(4)})` : `ECE <span class="ece" data-run="${esc(s.name)}">${ece.toFixed(4)}</span>`;
    figs.push(
      `<figure><figcaption><span class="swatch" style="background:${color(s)}"></span>${esc(s.name)} <span class="muted">${what}</span></figcaption>${reliabilityChart(bins, s)}</figure>`,
    );
  }
  if (figs.length === 0) return `<p class="muted">No reliability bins in these results (written by an older distill).</p>`;
  const bins = results.runs.find((r) => r.reliability)?.reliability?.length ?? CALIBRATION_BINS;
  return [
    `<div class="small-multiples">`,
    ...figs,
    `</div>`,
    `<p class="muted">${esc(
      `${bins} equal-width bins of the top softmax probability over the ${lm ? "held-out next-token predictions" : "test images"} (${pooledOver(seeds, "pooled")}). Bars: accuracy within the bin; black ticks: the bin's mean confidence; the dashed diagonal is perfect calibration, so a tick above its bar means over-confidence. Below: the share of predictions in each bin. ECE: Σ (bin share) × |accuracy − mean confidence|.`,
    )}</p>`,
  ].join("\n");
}

// ---------------------------------------------------------------- logs, environment

/**
 * Under the training-loss chart: on a phone, where the wide chart scrolls in its box, its key as
 * HTML (the chart's own key sits at its right edge, off screen); then the runs without a log.
 */
export function lossNotes(results: Results, curves: LossCurve[], styles: Map<string, { color: string; dash: string }>): string {
  const names = [...new Set(curves.filter((c) => c.points.length > 0).map((c) => c.name))];
  const key = names.length
    ? `<ul class="narrow-key">${names
        .map((name) => {
          const st = styles.get(name) ?? { color: "#6b7280", dash: "" };
          return `<li><span class="key-line" style="border-top: 3px ${st.dash ? "dashed" : "solid"} ${st.color}"></span>${esc(name)}</li>`;
        })
        .join("")}</ul>`
    : "";
  return key + missingLogsNote(results, curves);
}

/** The runs and seeds of `results` that have no training-loss curve, as a note (or nothing). */
export function missingLogsNote(results: Results, curves: LossCurve[]): string {
  const have = new Set(curves.filter((c) => c.points.length > 0).map((c) => JSON.stringify([c.name, c.seed])));
  const missing: string[] = [];
  for (const r of results.runs) {
    const key = JSON.stringify([r.name, r.seed]);
    if (!have.has(key) && !missing.includes(key)) missing.push(key);
  }
  if (missing.length === 0) return "";
  const list = missing.map((k) => {
    const [name, seed] = JSON.parse(k) as [string, number];
    return `<li>${esc(name)} <span class="muted">seed ${seed}</span></li>`;
  });
  return [
    `<div class="no-logs"><p><strong>No training log</strong> for ${missing.length === 1 ? "this run" : `these ${missing.length} runs`}, so ${missing.length === 1 ? "it is" : "they are"} missing from the chart:</p>`,
    `<ul>${list.join("")}</ul>`,
    `<p class="muted">A run has a curve when OUT/seed-S/NAME-HASH.metrics.jsonl holds at least one finite loss; a teacher loaded from a checkpoint, or a run whose log was deleted or left empty, has none.</p></div>`,
  ].join("\n");
}

/**
 * Deployment (recipes with `export: [...]`): bytes on disk per exported format and median ms per
 * example at batch 1 and 64 in onnxruntime-node and distill, one row per run and seed. Nothing
 * when no run was exported.
 */
export function deploymentSection(results: Results): string[] {
  const runs = results.runs.filter((r) => r.deploy);
  if (runs.length === 0) return [];
  const formats = [...new Set(runs.flatMap((r) => Object.keys(r.deploy!.bytes)))];
  const seeds = new Set(runs.map((r) => r.seed)).size;
  const head: Cell[] = [["run", ""], ...formats.map((f): Cell => [f, "num"]), ["onnxruntime b1", "num"], ["onnxruntime b64", "num"], ["distill b1", "num"], ["distill b64", "num"]];
  const rows = runs.map((r): Cell[] => {
    const d = r.deploy!;
    const lat = (v: number | undefined): Cell => [esc(fmtMs(v)), "num"];
    return [
      [esc(seeds > 1 ? `${r.name} seed ${r.seed}` : r.name), ""],
      ...formats.map((f): Cell => [esc(fmtBytes(d.bytes[f])), "num"]),
      lat(d.latency.onnxruntime?.batch1),
      lat(d.latency.onnxruntime?.batch64),
      lat(d.latency.distill.batch1),
      lat(d.latency.distill.batch64),
    ];
  });
  const skipped = runs.flatMap((r) => Object.entries(r.deploy!.skipped ?? {}).map(([f, why]) => `${r.name}: ${f} not written (${why})`));
  return [
    `<section class="card" id="deployment">`,
    `<h2>Deployment</h2>`,
    table(head, rows),
    `<p class="muted">Bytes on disk of each exported format in OUT/seed-S/export/RUN/ (safetensors: the parameters alone; hf and web: the whole folder, the web one including onnxruntime-web's Wasm runtime). Latency: median milliseconds per example after warm-up, at batch 1 and batch 64, in onnxruntime-node on the exported model.onnx and in distill's own compiled forward pass, both on one thread; a language model's example is one full context window.</p>`,
    ...(skipped.length ? [`<p class="muted">${skipped.map(esc).join("<br>")}</p>`] : []),
    `</section>`,
  ];
}

export function environmentSection(results: Results): string {
  const e = results.environment;
  if (!e) return `<p class="muted">Not recorded in these results (written by an older distill).</p>`;
  const rows: [string, string, string][] = [
    ["distill", "distill", e.distill],
    ["commit", "commit", e.commit ? `${e.commit.slice(0, 12)}${e.dirty ? " (with uncommitted changes)" : ""}` : "not a git checkout (or git not installed)"],
    ["node", "Node.js", e.node],
    ["engine", "engine", e.engine],
    ["device", "device", e.device],
    ["workers", "workers (--workers)", String(e.workers)],
    ["cpus", "logical CPUs", String(e.cpus)],
    ["inference", "inference (--inference)", e.inference ?? "distill"],
  ];
  return `<dl class="env">${rows.map(([key, dt, dd]) => `<div><dt>${esc(dt)}</dt><dd data-key="${key}">${esc(dd)}</dd></div>`).join("")}</dl>`;
}

// ---------------------------------------------------------------- layout

/**
 * After html.ts's CSS: the two-chart grid never asks for more than the screen, wide tables and
 * the wide loss chart scroll inside their own box, and on a phone the verdict stacks.
 */
export const PAGE_CSS = `
.grid { grid-template-columns: repeat(auto-fit, minmax(min(440px, 100%), 1fr)); }
#settings th { white-space: normal; vertical-align: bottom; }
#settings th, #settings td { padding: 7px 6px; }
#settings td:not(.num):not(:first-child) { white-space: normal; min-width: 4.5em; }
.chart-scroll { overflow-x: auto; }
.chart-scroll svg { min-width: 620px; }
.small-multiples { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(300px, 100%), 1fr)); gap: 12px 18px; }
.small-multiples svg { max-width: 440px; }
figure { margin: 0; min-width: 0; }
figcaption { font-weight: 600; font-size: 14px; }
figcaption .muted { font-weight: 400; }
h3 { font-size: 15px; margin: 16px 0 6px; }
svg .cm-n { fill: #111827; font-size: 10px; }
svg .cm-n.on-dark { fill: #fff; }
svg .diag { stroke: #6b7280; stroke-width: 1; stroke-dasharray: 4 3; }
svg .conf { stroke: #111827; stroke-width: 2; }
svg .hist { fill: #9ca3af; }
.no-logs { border-left: 3px solid #b45309; background: #fffbeb; padding: 8px 12px; margin-top: 10px; }
.no-logs p { margin: 0; }
.no-logs ul { margin: 4px 0; padding-left: 20px; }
dl.env { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(220px, 100%), 1fr)); gap: 8px 18px; margin: 0; }
dl.env dt { color: #6b7280; font-size: 12px; }
dl.env dd { margin: 0; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
.narrow-key { display: none; list-style: none; padding: 0; margin: 6px 0 0; flex-wrap: wrap; gap: 4px 14px; font-size: 13px; }
.key-line { display: inline-block; width: 26px; vertical-align: middle; margin-right: 6px; }
@media (max-width: 640px) {
  .narrow-key { display: flex; }
  main { padding: 12px 10px 28px; }
  h1 { font-size: 21px; }
  .card { padding: 12px; margin: 12px 0; }
  .verdict { flex-direction: column; align-items: stretch; gap: 8px; padding: 10px; }
  .badge { min-width: 0; }
}
`.trim();
