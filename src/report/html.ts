// OUT/report.html: one self-contained page (inline CSS and inline SVG; no scripts, fonts or
// other assets, and a Content-Security-Policy that forbids loading any) that opens offline and
// can be mailed or archived as a single file.
//
// The charts are hand-written SVG. The maintained charting libraries either need a DOM to
// render (d3, Chart.js, Plotly: jsdom or a headless browser on the server) or are a large
// dependency with its own spec language (Vega), all for four simple charts; a linear scale, a
// log scale and "nice" ticks are a few dozen readable lines below.
//
// The output is a pure function of its arguments: same results, curves and `opts.generated`,
// same bytes.
import { lmVerdicts, summarize, verdicts, type Results, type RunRecord, type Summary } from "./results.js";
import type { Verdict } from "./verdicts.js";
import { PAGE_CSS, barCaption, calibrationSection, classesSection, deploymentSection, environmentSection, lossNotes, settingsSection, tradeoffNote } from "./page-sections.js";

export interface LossCurve {
  name: string;
  seed: number;
  points: { step: number; loss: number }[];
  /** With data.validation: validation loss (nats) and accuracy at each epoch's end. */
  validation?: { epoch: number; step: number; loss: number; accuracy: number }[];
}

export interface HtmlReportOptions {
  /** Replaces the page title (default: recipe, device and seeds). */
  title?: string;
  /** Shown as "generated <this>"; left out when not given, so the output stays reproducible. */
  generated?: string;
}

// ---------------------------------------------------------------- text and number formatting

const ENTITIES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Escapes text for HTML/SVG content and quoted attribute values. */
export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

/** An SVG coordinate: at most two decimals, no exponent, no "-0". */
export function n(x: number): string {
  const v = Math.round(x * 100) / 100;
  return String(v === 0 ? 0 : v);
}

export function thousands(x: number): string {
  return String(Math.round(x)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** 101770 → "102k", 1500000 → "1.5M". */
function shortCount(x: number): string {
  const p3 = (v: number) => String(parseFloat(v.toPrecision(3)));
  if (x >= 1e9) return `${p3(x / 1e9)}G`;
  if (x >= 1e6) return `${p3(x / 1e6)}M`;
  if (x >= 1e3) return `${p3(x / 1e3)}k`;
  return p3(x);
}

function pct(mean: number, std: number, seeds: number): string {
  if (!Number.isFinite(mean)) return "–";
  return seeds > 1 ? `${(mean * 100).toFixed(2)} ± ${(std * 100).toFixed(2)}` : (mean * 100).toFixed(2);
}

function signed(x: number, digits = 2): string {
  return `${x >= 0 ? "+" : ""}${x.toFixed(digits)}`;
}

function truncate(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, Math.max(1, max - 1))}…`;
}

// ---------------------------------------------------------------- scales and ticks

type Scale = (v: number) => number;
type Domain = [number, number];

export function linearScale([d0, d1]: Domain, [r0, r1]: Domain): Scale {
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  return (v) => r0 + (v - d0) * k;
}

function logScale([d0, d1]: Domain, range: Domain): Scale {
  const lin = linearScale([Math.log10(d0), Math.log10(d1)], range);
  return (v) => lin(Math.log10(v));
}

/** A step of 1, 2 or 5 × 10^k giving about `count` intervals over `span`. */
function niceStep(span: number, count: number): number {
  const raw = (span > 0 ? span : 1) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

const clean = (v: number) => parseFloat(v.toPrecision(12));

/** Multiples of `step` within [d0, d1]. */
export function linearTicks([d0, d1]: Domain, step: number): number[] {
  const out: number[] = [];
  for (let i = Math.ceil(d0 / step - 1e-9); i * step <= d1 + step * 1e-9; i++) out.push(clean(i * step));
  return out;
}

/** Decimals that show a tick step exactly: 0.5 → 1, 0.05 → 2, 10 → 0. */
export function decimalsFor(step: number): number {
  return Math.max(0, Math.ceil(-Math.log10(step) - 1e-9));
}

/** Powers of ten in the domain; 1-2-5 or 1…9 multiples when that gives fewer than three. */
function logTicks([d0, d1]: Domain): number[] {
  const pick = (mults: number[]) => {
    const out: number[] = [];
    for (let e = Math.floor(Math.log10(d0)); e <= Math.ceil(Math.log10(d1)); e++) {
      for (const m of mults) {
        const v = clean(m * 10 ** e);
        if (v >= d0 * (1 - 1e-9) && v <= d1 * (1 + 1e-9)) out.push(v);
      }
    }
    return out;
  };
  for (const mults of [[1], [1, 2, 5], [1, 2, 3, 4, 5, 6, 7, 8, 9]]) {
    const t = pick(mults);
    if (t.length >= 3) return t;
  }
  return pick([1, 2, 3, 4, 5, 6, 7, 8, 9]);
}

/**
 * A zoomed axis for values in [floor, ceil] (accuracy in %, or held-out loss in nats/token):
 * from a little below the lowest value to a little above the highest, widened to whole tick
 * steps. Accuracies of 86–89% on an axis from 0 would all look the same. `minSpan` keeps noise
 * among nearly equal values from being blown up to the full height.
 */
function zoomedAxis(values: number[], floor: number, ceil: number, minSpan = 0.5): { domain: Domain; ticks: number[]; step: number } {
  const xs = values.filter(Number.isFinite);
  const lo = xs.length ? Math.min(...xs) : floor;
  const hi = xs.length ? Math.max(...xs) : Number.isFinite(ceil) ? ceil : floor + minSpan;
  const span = Math.max(hi - lo, minSpan);
  const step = niceStep(span * 1.5, 5);
  const d0 = Math.max(floor, Math.floor((lo - span * 0.3) / step) * step);
  const d1 = Math.min(ceil, Math.ceil((hi + span * 0.15) / step) * step);
  const domain: Domain = [clean(d0), clean(d1 > d0 ? d1 : d0 + step)];
  return { domain, ticks: linearTicks(domain, step), step };
}

// ---------------------------------------------------------------- SVG building blocks

export interface Frame {
  x: number;
  y: number;
  w: number;
  h: number;
}

export function svg(width: number, height: number, label: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" role="img" aria-label="${esc(label)}">`,
    `<title>${esc(label)}</title>`,
    ...body,
    `</svg>`,
  ].join("\n");
}

export function text(x: number, y: number, s: string, attrs = ""): string {
  return `<text x="${n(x)}" y="${n(y)}"${attrs ? " " + attrs : ""}>${esc(s)}</text>`;
}

export function line(x1: number, y1: number, x2: number, y2: number, attrs: string): string {
  return `<line x1="${n(x1)}" y1="${n(y1)}" x2="${n(x2)}" y2="${n(y2)}" ${attrs}/>`;
}

/** Horizontal grid lines with labels on the left, and the rotated axis title. */
export function yAxis(f: Frame, scale: Scale, ticks: number[], fmt: (v: number) => string, title: string): string[] {
  const out: string[] = [];
  for (const t of ticks) {
    const y = scale(t);
    out.push(line(f.x, y, f.x + f.w, y, `class="grid"`));
    out.push(text(f.x - 6, y + 4, fmt(t), `class="tick" text-anchor="end"`));
  }
  const cy = f.y + f.h / 2;
  out.push(text(14, cy, title, `class="axis-title" text-anchor="middle" transform="rotate(-90 14 ${n(cy)})"`));
  out.push(line(f.x, f.y, f.x, f.y + f.h, `class="axis"`));
  return out;
}

/** Vertical grid lines with labels below, the axis line and its title. */
export function xAxis(f: Frame, scale: Scale, ticks: number[], fmt: (v: number) => string, title: string): string[] {
  const out: string[] = [];
  const bottom = f.y + f.h;
  for (const t of ticks) {
    const x = scale(t);
    out.push(line(x, f.y, x, bottom, `class="grid"`));
    out.push(line(x, bottom, x, bottom + 4, `class="axis"`));
    out.push(text(x, bottom + 18, fmt(t), `class="tick" text-anchor="middle"`));
  }
  out.push(line(f.x, bottom, f.x + f.w, bottom, `class="axis"`));
  out.push(text(f.x + f.w / 2, bottom + 38, title, `class="axis-title" text-anchor="middle"`));
  return out;
}

function emptyChart(width: number, height: number, label: string, message: string): string {
  return svg(width, height, label, [text(width / 2, height / 2, message, `class="muted-text" text-anchor="middle"`)]);
}

// ---------------------------------------------------------------- run styles

export const ROLE_COLOR: Record<RunRecord["role"], string> = {
  teacher: "#4e79a7",
  scratch: "#e8871e",
  distilled: "#8e5ea2",
};
const DASHES = ["", "8 4", "2 3", "10 3 2 3"];

interface RunStyle {
  color: string;
  dash: string;
}

/** Colour by role; runs sharing a role are told apart by dash pattern (line chart). */
function runStyles(summary: Summary[]): Map<string, RunStyle> {
  const perRole = new Map<string, number>();
  const styles = new Map<string, RunStyle>();
  for (const s of summary) {
    const i = perRole.get(s.role) ?? 0;
    perRole.set(s.role, i + 1);
    styles.set(s.name, { color: ROLE_COLOR[s.role] ?? "#6b7280", dash: DASHES[i % DASHES.length] });
  }
  return styles;
}

const dashAttr = (dash: string) => (dash ? ` stroke-dasharray="${dash}"` : "");

// ---------------------------------------------------------------- charts

/**
 * What a bar or size chart plots: one metric of RunMetrics, scaled for display, and which way
 * is better. Classification charts test accuracy in %; language models held-out loss.
 */
interface MetricSpec {
  key: "accuracy" | "agreement" | "ece" | "loss";
  /** Display value = metric × scale (100 for a fraction shown in %). */
  scale: number;
  higherIsBetter: boolean;
  /** Axis limits and the smallest span a zoomed axis shows, in display units. */
  floor: number;
  ceil: number;
  minSpan: number;
  axisTitle: string;
  /** A display value with its unit, for tooltips and keys. */
  show: (v: number) => string;
  /** Mean (± std over seeds), with its unit, for tooltips. */
  showStat: (s: Summary) => string;
  /** The label drawn over a bar. */
  barValue: (v: number) => string;
  /** The note under the bar chart, given where its y axis starts. */
  barNote: (start: string) => string;
  barLabel: string;
  tradeoffLabel: string;
}

const ACCURACY: MetricSpec = {
  key: "accuracy",
  scale: 100,
  higherIsBetter: true,
  floor: 0,
  ceil: 100,
  minSpan: 0.5,
  axisTitle: "test accuracy (%)",
  show: (v) => `${v.toFixed(2)}%`,
  showStat: (s) => `${pct(s.mean.accuracy, s.std.accuracy, s.seeds)}%`,
  barValue: (v) => v.toFixed(2),
  barNote: (start) => `y axis starts at ${start}%, not 0`,
  barLabel: "Test accuracy per run",
  tradeoffLabel: "Test accuracy against parameter count",
};

const HELD_OUT_LOSS: MetricSpec = {
  key: "loss",
  scale: 1,
  higherIsBetter: false,
  floor: 0,
  ceil: Infinity,
  // Differences well under 0.01 nats/token are noise: don't let them fill the whole plot.
  minSpan: 0.02,
  axisTitle: "held-out loss (nats/token)",
  show: (v) => `${v.toFixed(4)} nats/token`,
  showStat: (s) => `${s.seeds > 1 ? `${s.mean.loss.toFixed(4)} ± ${s.std.loss.toFixed(4)}` : s.mean.loss.toFixed(4)} nats/token`,
  barValue: (v) => v.toFixed(3),
  barNote: (start) => `lower is better; y axis starts at ${start}, not 0`,
  barLabel: "Held-out loss per run",
  tradeoffLabel: "Held-out loss against parameter count",
};

/** Bars of the mean metric per run, ±std error bars, one dot per seed. */
function barChart(summary: Summary[], runs: RunRecord[], spec: MetricSpec): string {
  const W = 500;
  const H = 360;
  const label = spec.barLabel;
  if (summary.length === 0) return emptyChart(W, H, label, "no runs");
  const { key, scale } = spec;
  const f: Frame = { x: 58, y: 24, w: W - 58 - 12, h: H - 24 - 62 };
  const values = [
    ...runs.map((r) => r.metrics[key] * scale),
    ...summary.flatMap((s) => [(s.mean[key] - s.std[key]) * scale, (s.mean[key] + s.std[key]) * scale]),
  ];
  const axis = zoomedAxis(values, spec.floor, spec.ceil, spec.minSpan);
  const y = linearScale(axis.domain, [f.y + f.h, f.y]);
  const dec = decimalsFor(axis.step);
  const out = yAxis(f, y, axis.ticks, (v) => v.toFixed(dec), spec.axisTitle);

  const band = f.w / summary.length;
  const bw = Math.min(band * 0.62, 72);
  const bottom = f.y + f.h;
  summary.forEach((s, i) => {
    const cx = f.x + band * (i + 0.5);
    const color = ROLE_COLOR[s.role] ?? "#6b7280";
    const m = s.mean[key] * scale;
    const sd = s.std[key] * scale;
    const top = Math.min(y(m), bottom);
    out.push(
      `<rect x="${n(cx - bw / 2)}" y="${n(top)}" width="${n(bw)}" height="${n(bottom - top)}" fill="${color}" fill-opacity="0.85">` +
        `<title>${esc(`${s.name} (${s.role}): ${spec.showStat(s)} over ${s.seeds} seed${s.seeds > 1 ? "s" : ""}`)}</title></rect>`,
    );
    if (s.seeds > 1) {
      const cap = Math.min(8, bw / 4);
      out.push(line(cx, y(m - sd), cx, y(m + sd), `class="errbar"`));
      out.push(line(cx - cap, y(m - sd), cx + cap, y(m - sd), `class="errbar"`));
      out.push(line(cx - cap, y(m + sd), cx + cap, y(m + sd), `class="errbar"`));
    }
    const own = runs.filter((r) => r.name === s.name).sort((a, b) => a.seed - b.seed);
    const gap = Math.min(10, bw / (own.length + 1));
    own.forEach((r, k) => {
      const dx = (k - (own.length - 1) / 2) * gap;
      const v = r.metrics[key] * scale;
      out.push(
        `<circle cx="${n(cx + dx)}" cy="${n(y(v))}" r="3.5" class="seed-dot"><title>${esc(`${s.name} seed ${r.seed}: ${spec.show(v)}`)}</title></circle>`,
      );
    });
    const highest = Math.max(m + sd, ...own.map((r) => r.metrics[key] * scale));
    out.push(text(cx, y(highest) - 8, spec.barValue(m), `class="value" text-anchor="middle"`));
    const maxChars = Math.max(4, Math.floor(band / 7.2));
    out.push(text(cx, bottom + 18, truncate(s.name, maxChars), `class="cat" text-anchor="middle"`));
    if (s.role !== s.name) out.push(text(cx, bottom + 34, s.role, `class="tick" text-anchor="middle"`));
  });
  out.push(line(f.x, bottom, f.x + f.w, bottom, `class="axis"`));

  // The bar to beat: a distilled student is worth it only past the best scratch student.
  const scratch = summary.filter((s) => s.role === "scratch");
  if (scratch.length > 0 && summary.some((s) => s.role === "distilled")) {
    const best = bestScratch(scratch, spec);
    const yb = y(best.mean[key] * scale);
    out.push(line(f.x, yb, f.x + f.w, yb, `class="ref"`));
    // Its key sits above the plot, where it cannot cover a bar or a value.
    const key_ = `best scratch: ${best.name}, ${spec.show(best.mean[key] * scale)}`;
    out.push(line(f.x + f.w - 8 - key_.length * 6 - 30, f.y - 12, f.x + f.w - 8 - key_.length * 6 - 6, f.y - 12, `class="ref"`));
    out.push(text(f.x + f.w, f.y - 8, key_, `class="ref-label" text-anchor="end"`));
  }
  out.push(text(f.x, H - 6, spec.barNote(axis.domain[0].toFixed(dec)), `class="note"`));
  return svg(W, H, label, out);
}

/** The best scratch student by the chart's metric (the first of equals). */
function bestScratch(scratch: Summary[], spec: MetricSpec): Summary {
  const k = spec.key;
  return scratch.reduce((a, b) => ((spec.higherIsBetter ? b.mean[k] > a.mean[k] : b.mean[k] < a.mean[k]) ? b : a));
}

/** The mean metric against parameter count (log x): what each extra parameter buys. */
function tradeoffChart(summary: Summary[], spec: MetricSpec): string {
  const W = 500;
  const H = 360;
  const label = spec.tradeoffLabel;
  const { key, scale } = spec;
  const shown = summary.filter((s) => s.params > 0 && Number.isFinite(s.mean[key]));
  if (shown.length === 0) return emptyChart(W, H, label, "no runs");
  const f: Frame = { x: 58, y: 24, w: W - 58 - 130, h: H - 24 - 62 };
  const ps = shown.map((s) => s.params);
  const xDomain: Domain = [Math.min(...ps) / 1.6, Math.max(...ps) * 1.6];
  const x = logScale(xDomain, [f.x, f.x + f.w]);
  const axis = zoomedAxis(
    shown.flatMap((s) => [(s.mean[key] - s.std[key]) * scale, (s.mean[key] + s.std[key]) * scale]),
    spec.floor,
    spec.ceil,
    spec.minSpan,
  );
  const y = linearScale(axis.domain, [f.y + f.h, f.y]);
  const dec = decimalsFor(axis.step);
  const out = [
    ...yAxis(f, y, axis.ticks, (v) => v.toFixed(dec), spec.axisTitle),
    ...xAxis(f, x, logTicks(xDomain), shortCount, "parameters (log scale)"),
  ];

  // Runs of the same size (a scratch and a distilled student) are dodged sideways a little so
  // both stay visible. Labels sit right of their point; ones that would overlap are pushed
  // down, with a leader line.
  const dodge = (s: Summary) => {
    const same = shown.filter((t) => t.params === s.params);
    return { dx: (same.indexOf(s) - (same.length - 1) / 2) * 9, right: ((same.length - 1) / 2) * 9 };
  };
  const labels = shown
    .map((s) => ({ s, px: x(s.params) + dodge(s).dx, lx: x(s.params) + dodge(s).right + 12, py: y(s.mean[key] * scale), ly: y(s.mean[key] * scale) + 4 }))
    .sort((a, b) => a.py - b.py || a.px - b.px);
  labels.forEach((l, i) => {
    for (const prev of labels.slice(0, i)) {
      if (Math.abs(prev.px - l.px) < 110 && l.ly - prev.ly < 15) l.ly = prev.ly + 15;
    }
  });
  for (const l of shown.map((s) => labels.find((q) => q.s === s)!)) {
    const { s, px, py, lx } = l;
    const color = ROLE_COLOR[s.role] ?? "#6b7280";
    if (s.seeds > 1) {
      const m = s.mean[key] * scale;
      const sd = s.std[key] * scale;
      out.push(line(px, y(m - sd), px, y(m + sd), `stroke="${color}" stroke-width="2"`));
    }
    out.push(
      `<circle cx="${n(px)}" cy="${n(py)}" r="6" fill="${color}" stroke="#fff" stroke-width="1.5">` +
        `<title>${esc(`${s.name}: ${thousands(s.params)} params, ${spec.showStat(s)}`)}</title></circle>`,
    );
    if (Math.abs(l.ly - 4 - py) > 3 || lx - px > 13) out.push(line(px + 6, py, lx - 2, l.ly - 4, `class="leader"`));
    out.push(text(lx, l.ly, truncate(s.name, 18), `class="cat"`));
  }
  out.push(text(f.x, H - 6, tradeoffNote(summary, !spec.higherIsBetter), `class="note"`));
  return svg(W, H, label, out);
}

/**
 * Training loss against step, one colour per run name; the first seed thick, others thin. With
 * a validation set, each run's validation loss per epoch is drawn in its colour with ○ marks.
 */
function lossChart(summary: Summary[], curves: LossCurve[], styles: Map<string, RunStyle>, markLonePoints = false): string {
  const W = 960;
  const H = 380;
  const hasVal = curves.some((c) => (c.validation?.length ?? 0) > 0);
  const label = hasVal ? "Training and validation loss curves" : "Training loss curves";
  const order = [...summary.map((s) => s.name), ...curves.map((c) => c.name)];
  const nameRank = (name: string) => order.indexOf(name);
  const usable = curves
    .map((c) => ({ ...c, points: c.points.filter((p) => Number.isFinite(p.step) && Number.isFinite(p.loss)) }))
    .filter((c) => c.points.length > 0)
    .sort((a, b) => nameRank(a.name) - nameRank(b.name) || a.seed - b.seed);
  if (usable.length === 0) return emptyChart(W, H, label, "no training logs found");

  const f: Frame = { x: 62, y: 20, w: W - 62 - 210, h: H - 20 - 58 };
  const all = [...usable.flatMap((c) => c.points), ...usable.flatMap((c) => validLoss(c))];
  const maxStep = Math.max(...all.map((p) => p.step));
  const xStep = niceStep(maxStep, 8);
  const xDomain: Domain = [0, clean(Math.max(xStep, Math.ceil(maxStep / xStep) * xStep))];
  const x = linearScale(xDomain, [f.x, f.x + f.w]);
  const losses = all.map((p) => p.loss);
  const lo = Math.min(...losses);
  const hi = Math.max(...losses);
  // Log y when it can be: losses fall by an order of magnitude, and on a linear axis the end of
  // training, where runs differ, would be squashed into a few pixels at the bottom.
  const useLog = lo > 0 && hi / lo >= 3;
  let y: Scale;
  let yTicks: number[];
  let yFmt: (v: number) => string;
  if (useLog) {
    const d: Domain = [lo / 1.15, hi * 1.15];
    y = logScale(d, [f.y + f.h, f.y]);
    yTicks = logTicks(d);
    yFmt = (v) => String(parseFloat(v.toPrecision(3)));
  } else {
    const step = niceStep(hi - Math.min(0, lo), 5);
    const d: Domain = [clean(Math.floor(Math.min(0, lo) / step) * step), clean(Math.max(step, Math.ceil(hi / step) * step))];
    y = linearScale(d, [f.y + f.h, f.y]);
    yTicks = linearTicks(d, step);
    const dec = decimalsFor(step);
    yFmt = (v) => v.toFixed(dec);
  }
  const out = [
    ...yAxis(f, y, yTicks, yFmt, `${hasVal ? "loss" : "training loss"} (nats${useLog ? ", log scale" : ""})`),
    ...xAxis(f, x, linearTicks(xDomain, xStep), shortCount, "training step"),
  ];

  const firstSeed = new Map<string, number>();
  for (const c of usable) if (!firstSeed.has(c.name)) firstSeed.set(c.name, c.seed);
  const isMain = (c: LossCurve) => firstSeed.get(c.name) === c.seed;
  // Thin lines first so the thick ones are drawn over them.
  for (const c of [...usable.filter((c) => !isMain(c)), ...usable.filter(isMain)]) {
    const st = styles.get(c.name) ?? { color: "#6b7280", dash: "" };
    const pts = [...c.points].sort((a, b) => a.step - b.step);
    const stride = Math.ceil(pts.length / 1000);
    const kept = pts.filter((_, i) => i % stride === 0 || i === pts.length - 1);
    const d = kept.map((p, i) => `${i === 0 ? "M" : "L"}${n(x(p.step))} ${n(y(p.loss))}`).join(" ");
    const width = isMain(c) ? 2.2 : 1;
    const opacity = isMain(c) ? 1 : 0.45;
    out.push(
      `<path d="${d}" fill="none" stroke="${st.color}" stroke-width="${width}" stroke-opacity="${opacity}"${dashAttr(st.dash)} stroke-linejoin="round">` +
        `<title>${esc(`${c.name} seed ${c.seed}`)}</title></path>`,
    );
    // A log with one record (a short run logging every N steps) draws no line: show the point.
    if (markLonePoints && kept.length === 1) {
      out.push(
        `<circle cx="${n(x(kept[0].step))}" cy="${n(y(kept[0].loss))}" r="${isMain(c) ? 4 : 2.5}" fill="${st.color}" fill-opacity="${opacity}">` +
          `<title>${esc(`${c.name} seed ${c.seed}: step ${kept[0].step}, loss ${kept[0].loss.toFixed(4)}`)}</title></circle>`,
      );
    }
    const val = validLoss(c);
    if (val.length > 0) {
      const vd = val.map((p, i) => `${i === 0 ? "M" : "L"}${n(x(p.step))} ${n(y(p.loss))}`).join(" ");
      out.push(`<path d="${vd}" fill="none" stroke="${st.color}" stroke-width="${width * 0.7}" stroke-opacity="${opacity}"${dashAttr(st.dash)}/>`);
      // Marks on at most ~40 epochs per run, so 150 epochs stay readable; every point has its title.
      const every = Math.ceil(val.length / 40);
      val.forEach((p, i) => {
        if (i % every !== 0 && i !== val.length - 1) return;
        out.push(
          `<circle cx="${n(x(p.step))}" cy="${n(y(p.loss))}" r="${isMain(c) ? 3 : 2}" fill="#fff" stroke="${st.color}" stroke-width="1.4" stroke-opacity="${opacity}">` +
            `<title>${esc(`${c.name} seed ${c.seed}: epoch ${p.epoch}, validation loss ${p.loss.toFixed(4)} nats`)}</title></circle>`,
        );
      });
    }
  }

  // Legend, right of the plot.
  const lx = f.x + f.w + 22;
  let ly = f.y + 10;
  const names = [...new Set(usable.map((c) => c.name))];
  for (const name of names) {
    const st = styles.get(name) ?? { color: "#6b7280", dash: "" };
    out.push(line(lx, ly - 4, lx + 30, ly - 4, `stroke="${st.color}" stroke-width="2.5"${dashAttr(st.dash)}`));
    out.push(text(lx + 38, ly, truncate(name, 22), `class="cat"`));
    ly += 20;
  }
  const seeds = [...new Set(usable.map((c) => c.seed))];
  if (seeds.length > 1) {
    const main = [...new Set(firstSeed.values())];
    ly += 6;
    out.push(text(lx, ly, `thick: seed ${main.join(", ")}`, `class="note"`));
    out.push(text(lx, ly + 16, "thin: other seeds", `class="note"`));
    ly += 32;
  }
  if (hasVal) {
    ly += 6;
    out.push(text(lx, ly, "line: training loss", `class="note"`));
    out.push(`<circle cx="${n(lx + 4)}" cy="${n(ly + 12)}" r="3" fill="#fff" stroke="#6b7280" stroke-width="1.4"/>`);
    out.push(text(lx + 12, ly + 16, "validation loss, per epoch", `class="note"`));
  }
  return svg(W, H, label, out);
}

/** A curve's finite validation-loss points. */
function validLoss(c: LossCurve): { epoch: number; step: number; loss: number }[] {
  return (c.validation ?? []).filter((p) => Number.isFinite(p.step) && Number.isFinite(p.loss));
}

/**
 * Validation accuracy against epoch, one colour per run name (first seed thick, others thin);
 * a filled mark shows the epoch a keep: best-validation run kept.
 */
function validationAccuracyChart(runs: RunRecord[], curves: LossCurve[], styles: Map<string, RunStyle>): string {
  const W = 960;
  const H = 340;
  const label = "Validation accuracy per epoch";
  const usable = curves
    .map((c) => ({ ...c, val: (c.validation ?? []).filter((p) => Number.isFinite(p.epoch) && Number.isFinite(p.accuracy)) }))
    .filter((c) => c.val.length > 0);
  if (usable.length === 0) return emptyChart(W, H, label, "no validation logs found");
  const f: Frame = { x: 62, y: 20, w: W - 62 - 210, h: H - 20 - 58 };
  const maxEpoch = Math.max(...usable.flatMap((c) => c.val.map((p) => p.epoch)));
  const xStep = Math.max(1, niceStep(maxEpoch, 8));
  const xDomain: Domain = [0, clean(Math.max(xStep, Math.ceil(maxEpoch / xStep) * xStep))];
  const x = linearScale(xDomain, [f.x, f.x + f.w]);
  const axis = zoomedAxis(usable.flatMap((c) => c.val.map((p) => p.accuracy * 100)), 0, 100, 2);
  const y = linearScale(axis.domain, [f.y + f.h, f.y]);
  const dec = decimalsFor(axis.step);
  const out = [
    ...yAxis(f, y, axis.ticks, (v) => v.toFixed(dec), "validation accuracy, %"),
    ...xAxis(f, x, linearTicks(xDomain, xStep), (v) => String(v), "epoch"),
  ];
  const firstSeed = new Map<string, number>();
  for (const c of usable) if (!firstSeed.has(c.name)) firstSeed.set(c.name, c.seed);
  const isMain = (c: LossCurve) => firstSeed.get(c.name) === c.seed;
  for (const c of [...usable.filter((c) => !isMain(c)), ...usable.filter(isMain)]) {
    const st = styles.get(c.name) ?? { color: "#6b7280", dash: "" };
    const opacity = isMain(c) ? 1 : 0.45;
    const d = c.val.map((p, i) => `${i === 0 ? "M" : "L"}${n(x(p.epoch))} ${n(y(p.accuracy * 100))}`).join(" ");
    out.push(
      `<path d="${d}" fill="none" stroke="${st.color}" stroke-width="${isMain(c) ? 2.2 : 1}" stroke-opacity="${opacity}"${dashAttr(st.dash)} stroke-linejoin="round">` +
        `<title>${esc(`${c.name} seed ${c.seed}`)}</title></path>`,
    );
    const kept = runs.find((r) => r.name === c.name && r.seed === c.seed)?.keptEpoch;
    const k = c.val.find((p) => p.epoch === kept);
    if (k) {
      out.push(
        `<circle cx="${n(x(k.epoch))}" cy="${n(y(k.accuracy * 100))}" r="${isMain(c) ? 5 : 3.5}" fill="${st.color}" fill-opacity="${opacity}" stroke="#fff" stroke-width="1.5">` +
          `<title>${esc(`${c.name} seed ${c.seed}: kept epoch ${k.epoch} (lowest validation loss), validation accuracy ${(k.accuracy * 100).toFixed(2)}%`)}</title></circle>`,
      );
    }
  }
  const lx = f.x + f.w + 22;
  let ly = f.y + 10;
  for (const name of [...new Set(usable.map((c) => c.name))]) {
    const st = styles.get(name) ?? { color: "#6b7280", dash: "" };
    out.push(line(lx, ly - 4, lx + 30, ly - 4, `stroke="${st.color}" stroke-width="2.5"${dashAttr(st.dash)}`));
    out.push(text(lx + 38, ly, truncate(name, 22), `class="cat"`));
    ly += 20;
  }
  if (usable.some((c) => runs.some((r) => r.name === c.name && r.seed === c.seed && r.keptEpoch !== undefined))) {
    out.push(text(lx, ly + 6, "●: the epoch kept", `class="note"`));
  }
  return svg(W, H, label, out);
}

// ---------------------------------------------------------------- page

const CSS = `
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f7f9; color: #1f2937;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1140px; margin: 0 auto; padding: 24px 24px 40px; }
h1 { font-size: 26px; margin: 0 0 2px; overflow-wrap: anywhere; }
h2 { font-size: 17px; margin: 0 0 10px; }
.sub { color: #4b5563; margin: 0; }
.card { background: #fff; border: 1px solid #e3e6ea; border-radius: 10px; padding: 16px 20px; margin: 18px 0; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); gap: 18px; }
.grid .card { margin: 0; }
.verdict { display: flex; gap: 16px; align-items: center; padding: 14px 16px; border-radius: 10px; border: 2px solid; margin: 12px 0 0; }
.verdict.good { border-color: #15803d; background: #f0fdf4; }
.verdict.bad { border-color: #b91c1c; background: #fef2f2; }
.verdict.even { border-color: #4b5563; background: #f9fafb; }
.even .badge { background: #4b5563; }
.verdict p + p { margin-top: 4px; }
.verdict .gen { font-size: 14px; }
.badge { flex: none; min-width: 210px; text-align: center; color: #fff; border-radius: 8px; padding: 8px 14px; line-height: 1.2; }
.badge b { display: block; font-size: 24px; font-variant-numeric: tabular-nums; }
.badge span { font-size: 13px; font-weight: 600; letter-spacing: 0.02em; }
.good .badge { background: #15803d; }
.bad .badge { background: #b91c1c; }
.verdict p { margin: 0; overflow-wrap: anywhere; }
.muted { color: #6b7280; font-size: 13px; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { padding: 7px 10px; border-bottom: 1px solid #e8eaee; text-align: left; white-space: nowrap; }
th { font-weight: 600; color: #374151; border-bottom: 2px solid #d1d5db; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; vertical-align: baseline; }
svg { display: block; width: 100%; height: auto; font-family: inherit; }
svg text { fill: #374151; font-size: 12px; }
svg .tick { fill: #6b7280; font-size: 11px; }
svg .axis-title { fill: #374151; font-size: 12px; font-weight: 600; }
svg .cat { fill: #111827; font-size: 12px; }
svg .value { fill: #111827; font-size: 12px; font-weight: 600; }
svg .note, svg .muted-text { fill: #6b7280; font-size: 11px; }
svg .muted-text { font-size: 14px; }
svg .grid { stroke: #eceef1; stroke-width: 1; }
svg .axis { stroke: #9ca3af; stroke-width: 1; }
svg .errbar { stroke: #111827; stroke-width: 1.5; }
svg .seed-dot { fill: #111827; fill-opacity: 0.8; stroke: #fff; stroke-width: 1; }
svg .ref { stroke: #b45309; stroke-width: 1.2; stroke-dasharray: 5 4; }
svg .ref-label { fill: #b45309; font-size: 11px; }
svg .leader { stroke: #9ca3af; stroke-width: 1; }
footer { color: #6b7280; font-size: 13px; margin-top: 24px; }
`.trim();

/** One block per verdict: the badge, the verdict line, what each run was given, the gap and size. */
function verdictBlock(v: Verdict, badge: string): string {
  const cls = v.word === "helped" ? "good" : v.word === "hurt" ? "bad" : "even";
  const label = v.word === "helped" || v.word === "hurt" ? `distillation ${v.word}` : v.word;
  const rest = [v.budget, v.gap].filter(Boolean).map((t) => `<p class="muted">${esc(t)}</p>`).join("");
  const gen = v.generation ? `<p class="gen">${esc(v.generation.line)}</p>` : "";
  return [
    `<div class="verdict ${cls}">`,
    `<div class="badge"><b>${esc(badge)}</b><span>${esc(label)}</span></div>`,
    `<div><p><strong>${esc(v.head)}</strong></p>${rest}${gen}</div>`,
    `</div>`,
  ].join("");
}

function noVerdict(runs: RunRecord[]): string {
  const why = runs.some((r) => r.role === "distilled") ? "no scratch student to compare the distilled ones with" : "no distilled student in these results";
  return `<p class="muted">No verdict: ${esc(why)}.</p>`;
}

function verdictBlocks(runs: RunRecord[]): string {
  const vs = verdicts(runs);
  if (vs.length === 0) return noVerdict(runs);
  return vs.map((v) => verdictBlock(v, `${signed(v.diff)} pts`)).join("\n");
}

export type Cell = [html: string, cls: string];

/** The columns every results table starts with: run, role (with its colour), model, size. */
const RUN_HEAD: Cell[] = [
  ["run", ""],
  ["role", ""],
  ["model", ""],
  ["params", "num"],
  ["size MB (float32)", "num"],
];

function runCells(s: Summary): Cell[] {
  return [
    [esc(s.name), ""],
    [`<span class="swatch" style="background:${ROLE_COLOR[s.role] ?? "#6b7280"}"></span>${esc(s.role)}`, ""],
    [esc(s.model), ""],
    [thousands(s.params), "num"],
    [((s.params * 4) / 1e6).toFixed(2), "num"],
  ];
}

/** A table of `head` (plain text) over rows of already-escaped cells. */
export function table(head: Cell[], rows: Cell[][]): string {
  const cls = (c: string) => (c ? ` class="${c}"` : "");
  return [
    `<div class="table-wrap"><table>`,
    `<thead><tr>${head.map(([h, c]) => `<th${cls(c)}>${esc(h)}</th>`).join("")}</tr></thead>`,
    `<tbody>`,
    ...rows.map((r) => `<tr>${r.map(([v, c]) => `<td${cls(c)}>${v}</td>`).join("")}</tr>`),
    `</tbody></table></div>`,
  ].join("\n");
}

function summaryTable(summary: Summary[]): string {
  const f1 = summary.some((s) => Number.isFinite(s.mean.macroF1));
  const head: Cell[] = [
    ...RUN_HEAD,
    ["accuracy %", "num"],
    ...(f1 ? [["macro-F1 %", "num"] as Cell] : []),
    ["agreement %", "num"],
    ["ECE", "num"],
    ["test loss", "num"],
    ["train s", "num"],
  ];
  const rows = summary.map((s): Cell[] => [
    ...runCells(s),
    [pct(s.mean.accuracy, s.std.accuracy, s.seeds), "num"],
    ...(f1 ? [[pct(s.mean.macroF1 ?? NaN, s.std.macroF1 ?? NaN, s.seeds), "num"] as Cell] : []),
    [pct(s.mean.agreement, s.std.agreement, s.seeds), "num"],
    [s.mean.ece.toFixed(4), "num"],
    [s.mean.loss.toFixed(4), "num"],
    [s.seconds.toFixed(1), "num"],
  ]);
  return table(head, rows);
}

/** The sections both kinds of report end with: calibration, deployment, environment. */
function closingSections(results: Results, summary: Summary[], lm: boolean): string[] {
  return [
    `<section class="card">`,
    `<h2>Calibration</h2>`,
    calibrationSection(results, summary, lm),
    `</section>`,
    ...deploymentSection(results),
    `<section class="card">`,
    `<h2>Environment</h2>`,
    environmentSection(results),
    `</section>`,
  ];
}

/** The sections of a classification report, between the header and the footer. */
/**
 * Text classification: examples per class in each split, the share of the largest class in the
 * test split (what always predicting it would score: the accuracy floor imbalance sets), and
 * how many texts were cut to the model's maximum length.
 */
function dataSection(results: Results): string[] {
  const d = results.data;
  if (!d) return [];
  const classes = results.classes ?? [];
  const splits = Object.keys(d.classCounts);
  const head: Cell[] = [["class", ""], ...splits.map((s): Cell => [s, "num"])];
  const rows = classes.map((c, i): Cell[] => [[esc(c), ""], ...splits.map((s): Cell => [String(d.classCounts[s][i] ?? 0), "num"])]);
  rows.push([["total", ""], ...splits.map((s): Cell => [String(d.classCounts[s].reduce((a, b) => a + b, 0)), "num"])]);
  if (d.truncated) rows.push([[`truncated to ${d.maxLength ?? "?"} tokens`, ""], ...splits.map((s): Cell => [String(d.truncated![s] ?? 0), "num"])]);
  const test = d.classCounts.test ?? [];
  const total = test.reduce((a, b) => a + b, 0);
  const major = total > 0 ? Math.max(...test) / total : NaN;
  const majorName = classes[test.indexOf(Math.max(...test))] ?? "?";
  return [
    `<section class="card">`,
    `<h2>Data</h2>`,
    `<p class="muted">${esc(d.description)}</p>`,
    table(head, rows),
    Number.isFinite(major) ? `<p class="muted">Always answering the largest class (${esc(majorName)}) would score ${(major * 100).toFixed(2)}% test accuracy and a macro-F1 of ${((2 * major) / (1 + major) / Math.max(classes.length, 1) * 100).toFixed(2)}%: the floor any run must clear.</p>` : "",
    `</section>`,
  ];
}

function classificationSections(results: Results, summary: Summary[], curves: LossCurve[], styles: Map<string, RunStyle>, stat: string): string[] {
  const hasDistilled = summary.some((s) => s.role === "distilled");
  return [
    `<section class="card">`,
    `<h2>Did distillation help?</h2>`,
    hasDistilled
      ? `<p class="muted">Each distilled student against the best student trained from scratch, in points of test accuracy.</p>`
      : "",
    verdictBlocks(results.runs),
    `</section>`,
    `<section class="card">`,
    `<h2>Summary</h2>`,
    summaryTable(summary),
    `<p class="muted">${esc(stat)}. Size is parameters × 4 bytes (float32). Macro-F1: the mean over classes of each class's F1, so a rare class counts as much as a common one. Agreement: how often the run's top-1 prediction matches the teacher's on the test set. ECE: expected calibration error (15 equal-width confidence bins; see Calibration). Test loss: mean cross-entropy in nats per ${results.data ? "text" : "image"}. Train s: mean training time per seed.</p>`,
    `</section>`,
    ...dataSection(results),
    `<section class="card">`,
    `<h2>What each run was given</h2>`,
    settingsSection(results, summary, false),
    `</section>`,
    `<div class="grid">`,
    `<section class="card">`,
    `<h2>Test accuracy</h2>`,
    barChart(summary, results.runs, ACCURACY),
    `<p class="muted">${esc(barCaption(summary, false))}</p>`,
    `</section>`,
    `<section class="card">`,
    `<h2>Size against accuracy</h2>`,
    tradeoffChart(summary, ACCURACY),
    `<p class="muted">Up and to the left is better: more accuracy for fewer parameters.</p>`,
    `</section>`,
    `</div>`,
    `<section class="card">`,
    `<h2>${curves.some((c) => (c.validation?.length ?? 0) > 0) ? "Training and validation loss" : "Training loss"}</h2>`,
    `<div class="chart-scroll">`,
    lossChart(summary, curves, styles),
    `</div>`,
    lossNotes(results, curves, styles),
    `<p class="muted">Each run's own training objective as logged. A distilled student's loss includes the distillation term, so its level is not comparable with a scratch student's; compare shapes, not heights.</p>`,
    `</section>`,
    ...validationSection(results.runs, curves, styles),
    `<section class="card">`,
    `<h2>Classes</h2>`,
    classesSection(results, summary),
    `</section>`,
    ...closingSections(results, summary, false),
  ];
}

/**
 * Per run and seed: the lowest validation loss and its epoch against the last epoch's (a last
 * loss well above the lowest is overfitting, in numbers), and the epoch kept.
 */
function validationTable(runs: RunRecord[], curves: LossCurve[]): string {
  const head: Cell[] = [["run", ""], ["seed", "num"], ["lowest validation loss (epoch)", "num"], ["last epoch: loss", "num"], ["accuracy %", "num"], ["kept epoch", "num"]];
  const order = [...new Set(curves.map((c) => c.name))];
  const rows = curves
    .filter((c) => (c.validation?.length ?? 0) > 0)
    .sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name) || a.seed - b.seed)
    .map((c): Cell[] => {
      const v = c.validation!;
      const best = v.reduce((a, b) => (b.loss < a.loss ? b : a));
      const last = v[v.length - 1];
      const kept = runs.find((r) => r.name === c.name && r.seed === c.seed)?.keptEpoch;
      return [
        [esc(c.name), ""],
        [String(c.seed), "num"],
        [`${best.loss.toFixed(4)} (${best.epoch})`, "num"],
        [`${last.loss.toFixed(4)} (${last.epoch})`, "num"],
        [(last.accuracy * 100).toFixed(2), "num"],
        [kept === undefined ? "last" : String(kept), "num"],
      ];
    });
  return table(head, rows);
}

/** With data.validation: what the loss chart's validation marks mean, and accuracy per epoch. */
function validationSection(runs: RunRecord[], curves: LossCurve[], styles: Map<string, RunStyle>): string[] {
  if (!curves.some((c) => (c.validation?.length ?? 0) > 0)) return [];
  return [
    `<section class="card">`,
    `<h2>Validation</h2>`,
    validationAccuracyChart(runs, curves, styles),
    validationTable(runs, curves),
    `<p class="muted">Held-out training images (data.validation), never trained on, evaluated after every epoch; the test set is read only at the end. The ○ marks on the loss chart are the validation loss (cross-entropy against the true labels, nats), comparable across runs: a validation loss rising while the training loss falls is overfitting.</p>`,
    `</section>`,
  ];
}

// ---------------------------------------------------------------- language models

/** A seeded sample of a language-model run (pipeline-lm's `samples`). */
export interface ReportSample {
  name: string;
  seed: number;
  prompt: string;
  text: string;
}

/** Results as the report reads them: language-model results also carry samples. */
export type ReportResults = Results & { samples?: ReportSample[] };

/** A metric beyond RunMetrics (perplexity, bitsPerChar), when the run has a finite one. */
function extraMetric(r: RunRecord, key: string): number | undefined {
  const v = (r.metrics as unknown as Record<string, unknown>)[key];
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

/** Language-model results: every run has a finite held-out perplexity. */
export function isLMResults(results: Results): boolean {
  return results.runs.length > 0 && results.runs.every((r) => extraMetric(r, "perplexity") !== undefined);
}

/** Mean of an extra metric over the seeds of run `name` that have it; NaN when none do. */
function extraMean(runs: RunRecord[], name: string, key: string): number {
  const xs = runs.filter((r) => r.name === name).map((r) => extraMetric(r, key)).filter((v): v is number => v !== undefined);
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}

const LM_CSS = `
th { white-space: normal; vertical-align: bottom; }
th, td { padding: 7px 7px; }
h3 { font-size: 15px; margin: 16px 0 6px; display: flex; align-items: center; gap: 8px; }
h3 .muted { font-weight: 400; }
.sample { display: grid; grid-template-columns: 58px 1fr; gap: 8px; align-items: start; margin: 4px 0; }
.sample-seed { color: #6b7280; font-size: 12px; padding-top: 6px; white-space: nowrap; }
pre.sample-text { margin: 0; padding: 5px 10px; background: #f9fafb; border: 1px solid #eceef1; border-radius: 6px;
  white-space: pre-wrap; overflow-wrap: anywhere; color: #111827;
  font: 13px/1.5 ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", "Liberation Mono", monospace; }
pre.sample-text .prompt { color: #6b7280; background: #eceef1; border-radius: 3px; }
pre.sample-text .ctl { color: #92400e; background: #fde68a; border-radius: 3px; padding: 0 1px; }
`.trim();

// C escapes where there is one; \xNN otherwise. Plain ASCII, so every font can show them (the
// Unicode control pictures, U+2400 on, are missing from common monospace fonts).
const CONTROL_ESCAPES: Record<number, [string, string]> = {
  0: ["\\0", "null"],
  7: ["\\a", "bell"],
  8: ["\\b", "backspace"],
  9: ["\\t", "tab"],
  10: ["\\n", "line feed"],
  11: ["\\v", "vertical tab"],
  12: ["\\f", "form feed"],
  13: ["\\r", "carriage return"],
  27: ["\\x1B", "escape"],
  127: ["\\x7F", "delete"],
};

/**
 * Generated text for a <pre>: HTML-escaped, and every control character (C0, DEL, C1) made
 * visible as a highlighted escape (\t, \n, \b, \x9D, ...) titled with its code point, so
 * that it cannot be mistaken for a literal backslash in the text. A line feed still breaks the
 * line after its escape.
 */
export function showText(s: string): string {
  return s.replace(/[&<>"']|[\u0000-\u001f\u007f-\u009f]/g, (c) => {
    const entity = ENTITIES[c];
    if (entity) return entity;
    const code = c.charCodeAt(0);
    const hex = code.toString(16).toUpperCase().padStart(4, "0");
    const [shown, what] = CONTROL_ESCAPES[code] ?? [`\\x${hex.slice(2)}`, "control character"];
    return `<span class="ctl" title="U+${hex} ${what}">${shown}</span>${c === "\n" ? "\n" : ""}`;
  });
}

function lmVerdictBlocks(runs: RunRecord[]): string {
  const vs = lmVerdicts(runs);
  if (vs.length === 0) return noVerdict(runs);
  // The change in held-out loss, "−" when the student's is lower (better).
  return vs.map((v) => verdictBlock(v, `${v.diff >= 0 ? "+" : "−"}${Math.abs(v.diff).toFixed(4)} nats/tok`)).join("\n");
}

function lmTable(summary: Summary[], runs: RunRecord[]): string {
  const hasBits = runs.some((r) => extraMetric(r, "bitsPerChar") !== undefined);
  const fixed = (v: number, d: number) => (Number.isFinite(v) ? v.toFixed(d) : "–");
  const head: Cell[] = [
    ...RUN_HEAD,
    ["held-out loss (nats/token)", "num"],
    ["perplexity", "num"],
    ...(hasBits ? [["bits/char", "num"] as Cell] : []),
    ["agreement %", "num"],
    ["next-token accuracy %", "num"],
    ["train s", "num"],
  ];
  const rows = summary.map((s): Cell[] => [
    ...runCells(s),
    [s.seeds > 1 ? `${s.mean.loss.toFixed(4)} ± ${s.std.loss.toFixed(4)}` : s.mean.loss.toFixed(4), "num"],
    [fixed(extraMean(runs, s.name, "perplexity"), 3), "num"],
    ...(hasBits ? [[fixed(extraMean(runs, s.name, "bitsPerChar"), 3), "num"] as Cell] : []),
    // Means only beside the loss: eleven columns with "± std" in three no longer fit a page.
    [pct(s.mean.agreement, 0, 1), "num"],
    [(s.mean.accuracy * 100).toFixed(2), "num"],
    [s.seconds.toFixed(1), "num"],
  ]);
  return table(head, rows);
}

/**
 * Generation quality per run: the teacher's NLL of the run's own sampled continuations and
 * their distinct-n, beside held-out loss; nothing when no run has it.
 */
function generationSection(summary: Summary[], runs: RunRecord[]): string[] {
  const withGen = runs.filter((r) => r.generation);
  if (withGen.length === 0) return [];
  const g = withGen[0].generation!;
  const avg = (name: string, f: (x: NonNullable<RunRecord["generation"]>) => number) => {
    const xs = withGen.filter((r) => r.name === name).map((r) => f(r.generation!));
    return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
  };
  const fixed = (v: number, d: number) => (Number.isFinite(v) ? v.toFixed(d) : "–");
  const head: Cell[] = [
    ["run", ""],
    ["held-out loss (nats/token)", "num"],
    ["teacher NLL of its samples (nats/token)", "num"],
    ["distinct-1", "num"],
    ["distinct-2", "num"],
    ["distinct-3", "num"],
  ];
  const rows = summary.map((s): Cell[] => [
    [esc(s.name), ""],
    [s.mean.loss.toFixed(4), "num"],
    [fixed(avg(s.name, (x) => x.teacherNLL), 4), "num"],
    [fixed(avg(s.name, (x) => x.distinct1), 3), "num"],
    [fixed(avg(s.name, (x) => x.distinct2), 3), "num"],
    [fixed(avg(s.name, (x) => x.distinct3), 3), "num"],
  ]);
  return [
    `<section class="card">`,
    `<h2>Generation quality</h2>`,
    table(head, rows),
    `<p class="muted">What sequence-level and on-policy distillation aim at. Each run continues the same ${g.prompts} held-out prompts (${g.promptLength} tokens each) by ${g.tokens} sampled tokens, with the sampling settings of the recipe's samples; the teacher then scores those continuations. Lower teacher NLL: text the teacher finds more plausible. Distinct-n: unique n-grams over all n-grams of the continuations; a run that repeats itself scores low here even when its NLL is low. Means over seeds; – : not measured (no teacher to score it).</p>`,
    `</section>`,
  ];
}

/** Each run's seeded samples, runs in table order: prompt muted, continuation plain. */
function samplesBlock(samples: ReportSample[], summary: Summary[]): string {
  if (samples.length === 0) return `<p class="muted">No samples in these results.</p>`;
  const names = [...new Set([...summary.map((s) => s.name), ...samples.map((s) => s.name)])];
  const out: string[] = [];
  for (const name of names) {
    const own = samples.filter((s) => s.name === name).sort((a, b) => a.seed - b.seed);
    if (own.length === 0) continue;
    const run = summary.find((s) => s.name === name);
    const color = (run && ROLE_COLOR[run.role]) ?? "#6b7280";
    const role = run && run.role !== name ? ` <span class="muted">${esc(run.role)}</span>` : "";
    out.push(`<h3><span><span class="swatch" style="background:${color}"></span>${esc(name)}</span>${role}</h3>`);
    for (const s of own) {
      out.push(
        `<div class="sample"><span class="sample-seed">seed ${esc(String(s.seed))}</span>` +
          `<pre class="sample-text"><span class="prompt">${showText(s.prompt)}</span>${showText(s.text)}</pre></div>`,
      );
    }
  }
  return out.join("\n");
}

/** The sections of a language-model report, between the header and the footer. */
function lmSections(results: ReportResults, summary: Summary[], curves: LossCurve[], styles: Map<string, RunStyle>, stat: string): string[] {
  const hasDistilled = summary.some((s) => s.role === "distilled");
  const hasBits = results.runs.some((r) => extraMetric(r, "bitsPerChar") !== undefined);
  const seeds = new Set(results.runs.map((r) => r.seed)).size;
  return [
    `<section class="card">`,
    `<h2>Did distillation help?</h2>`,
    hasDistilled
      ? `<p class="muted">Each distilled student against the best student trained from scratch, by held-out loss in nats/token. Lower loss is better: a negative change means the distilled student predicts held-out text better. Where recorded, a second line compares generation quality: the teacher's NLL of each run's own samples.</p>`
      : "",
    lmVerdictBlocks(results.runs),
    `</section>`,
    `<section class="card">`,
    `<h2>Summary</h2>`,
    lmTable(summary, results.runs),
    `<p class="muted">${esc(stat)}${seeds > 1 ? " for the held-out loss; the other columns are means over seeds" : ""}. Size is parameters × 4 bytes (float32). Held-out loss: mean next-token cross-entropy on held-out text, in nats per token (lower is better); perplexity: e to that loss${hasBits ? "; bits/char: the loss in bits per character" : ""}. Agreement: how often the run's top-1 next-token prediction matches the teacher's. Next-token accuracy: how often its top-1 prediction is the actual next token. Train s: mean training time per seed.</p>`,
    `</section>`,
    `<section class="card">`,
    `<h2>What each run was given</h2>`,
    settingsSection(results, summary, true),
    `</section>`,
    `<div class="grid">`,
    `<section class="card">`,
    `<h2>Held-out loss (lower is better)</h2>`,
    barChart(summary, results.runs, HELD_OUT_LOSS),
    `<p class="muted">${esc(barCaption(summary, true))}</p>`,
    `</section>`,
    `<section class="card">`,
    `<h2>Size against held-out loss</h2>`,
    tradeoffChart(summary, HELD_OUT_LOSS),
    `<p class="muted">Down and to the left is better: lower held-out loss for fewer parameters.</p>`,
    `</section>`,
    `</div>`,
    `<section class="card">`,
    `<h2>Training loss</h2>`,
    `<div class="chart-scroll">`,
    lossChart(summary, curves, styles, true),
    `</div>`,
    lossNotes(results, curves, styles),
    `<p class="muted">Each run's own training objective as logged. A distilled student's loss includes the distillation term, so its level is not comparable with a scratch student's; compare shapes, not heights. The held-out loss above is the comparable measure.</p>`,
    `</section>`,
    ...generationSection(summary, results.runs),
    `<section class="card">`,
    `<h2>Samples</h2>`,
    `<p class="muted">Grey: the prompt, from the held-out text; after it, the run's sampled continuation. Control characters are shown as highlighted escapes (\\t tab, \\n line feed, \\b backspace, \\xNN others); hover one for its code point.</p>`,
    samplesBlock(results.samples ?? [], summary),
    `</section>`,
    ...closingSections(results, summary, true),
  ];
}

/**
 * The whole report page for one results.json and its training-loss logs. Language-model results
 * (every run has a held-out perplexity) are judged by held-out loss and show their samples.
 */
export function renderHtmlReport(results: ReportResults, curves: LossCurve[], opts: HtmlReportOptions = {}): string {
  const lm = isLMResults(results);
  const summary = summarize(results.runs);
  const seeds = [...new Set(results.runs.map((r) => r.seed))];
  const seedText = `seed${seeds.length === 1 ? "" : "s"} ${seeds.join(", ")}`;
  const title = opts.title ?? `${results.recipe} — ${results.device}, ${seedText}`;
  const stat = seeds.length > 1 ? `mean ± sample std over ${seeds.length} seeds` : "one seed";
  const styles = runStyles(summary);

  return [
    `<!doctype html>`,
    `<html lang="en">`,
    `<head>`,
    `<meta charset="utf-8">`,
    `<meta name="viewport" content="width=device-width, initial-scale=1">`,
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`,
    `<title>${esc(title)}</title>`,
    `<style>\n${lm ? `${CSS}\n${LM_CSS}` : CSS}\n${PAGE_CSS}\n</style>`,
    `</head>`,
    `<body>`,
    `<main>`,
    `<header>`,
    `<h1>${esc(title)}</h1>`,
    `<p class="sub">distill report: recipe <strong>${esc(results.recipe)}</strong> on ${esc(results.device)}, ${esc(seedText)} (${esc(stat)})</p>`,
    `</header>`,
    ...(lm ? lmSections(results, summary, curves, styles, stat) : classificationSections(results, summary, curves, styles, stat)),
    `<footer>distill${opts.generated ? ` · generated ${esc(opts.generated)}` : ""}</footer>`,
    `</main>`,
    `</body>`,
    `</html>`,
    ``,
  ].join("\n");
}
