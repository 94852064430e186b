// Losses beyond logits for encoders (TinyBERT, MiniLM, DistilBERT, FitNets): pure functions of
// the student's and teacher's EncoderFeatures, one file per loss, looked up by name. The trainer
// adds Σ weight · term to the logit loss (ce, hinton, soft-kd).
//
// Conventions (each file says its source): blocks are 1-based (hidden[m] is block m's output,
// hidden[0] the embeddings'); every term averages over unpadded tokens (or, for the attention
// KLs, unpadded query rows and heads, summing over unpadded keys); a layer-wise term averages over
// its layer pairs; the teacher side is always a constant; projections map the STUDENT onto the
// teacher's width and exist only where the widths differ.
import type { Arr } from "../../engine/index.js";
import type { BertSpec, EncoderFeatures } from "../../nn/bert.js";
import type { Params } from "../../nn/models.js";
import { UserError } from "../../util/errors.js";
import { hiddenMSE } from "./hidden-mse.js";
import { embeddingMSE } from "./embedding-mse.js";
import { attentionKL } from "./attention-kl.js";
import { valueRelation } from "./value-relation.js";
import { hiddenCosine } from "./hidden-cosine.js";
import type { Projection } from "./common.js";

export { hiddenMSE, embeddingMSE, attentionKL, valueRelation, hiddenCosine };
export type { Projection };

export const INTERMEDIATE_LOSSES = ["hidden-mse", "attention-kl", "value-relation", "embedding-mse", "hidden-cosine"] as const;
export type IntermediateLossName = (typeof INTERMEDIATE_LOSSES)[number];

export interface IntermediateTerm {
  name: IntermediateLossName;
  /** Added to the logit loss as weight × term. */
  weight: number;
  /** value-relation: relation heads both models' values are regrouped into (default: the student's heads). */
  relationHeads?: number;
}

export interface IntermediateSpec {
  /** [studentLayer, teacherLayer] pairs, 1-based blocks; default uniform (TinyBERT: m → m·N/M). */
  layerMap?: [number, number][];
  terms: IntermediateTerm[];
}

/** What the terms read of a model's features (the logits go to the logit loss). */
export type LayerFeatures = Pick<EncoderFeatures, "hidden" | "attentions" | "values" | "mask">;

/** Parameter-name prefix of the learned projections: trained with the student, never exported. */
export const PROJ_PREFIX = "distill.proj.";

/**
 * TinyBERT's uniform map: student block m (1..M) learns from teacher block round(m·N/M), so the
 * last blocks meet. With M > N several student blocks share a teacher block.
 */
export function defaultLayerMap(studentLayers: number, teacherLayers: number): [number, number][] {
  return Array.from({ length: studentLayers }, (_, i) => [i + 1, Math.max(1, Math.round(((i + 1) * teacherLayers) / studentLayers))]);
}

/** The recipe's layer map checked against both models, or the default. */
export function resolveLayerMap(spec: IntermediateSpec, student: BertSpec, teacher: BertSpec, where = "intermediate"): [number, number][] {
  if (spec.layerMap === undefined) return defaultLayerMap(student.layers, teacher.layers);
  if (!Array.isArray(spec.layerMap) || spec.layerMap.length === 0) throw new UserError(`${where}.layerMap: must list at least one [studentLayer, teacherLayer] pair`);
  const seen = new Set<number>();
  spec.layerMap.forEach((pair, i) => {
    const at = `${where}.layerMap[${i}]`;
    if (!Array.isArray(pair) || pair.length !== 2 || !pair.every(Number.isInteger)) throw new UserError(`${at}: must be [studentLayer, teacherLayer], two integers, got ${JSON.stringify(pair)}`);
    const [s, t] = pair;
    if (s < 1 || s > student.layers) throw new UserError(`${at}: student layer ${s} is outside 1..${student.layers}`);
    if (t < 1 || t > teacher.layers) throw new UserError(`${at}: teacher layer ${t} is outside 1..${teacher.layers}`);
    if (seen.has(s)) throw new UserError(`${at}: student layer ${s} is mapped twice`);
    seen.add(s);
  });
  return spec.layerMap.map(([s, t]) => [s, t]);
}

/** The pair with the deepest student block: MiniLM's and DistilBERT's "last layer". */
const lastPair = (map: [number, number][]): [number, number] => map.reduce((a, b) => (b[0] > a[0] ? b : a));

/** The layer pairs a term reads (block indices into hidden[]; 0 = the embeddings). */
function pairsOf(name: IntermediateLossName, map: [number, number][]): [number, number][] {
  switch (name) {
    case "hidden-mse":
    case "attention-kl":
      return map;
    case "value-relation":
    case "hidden-cosine":
      return [lastPair(map)];
    case "embedding-mse":
      return [[0, 0]];
  }
}

/** Name stem of a term's projection for one layer pair, or null when the term has none. */
function projName(name: IntermediateLossName, studentLayer: number): string | null {
  if (name === "hidden-mse") return `${PROJ_PREFIX}hidden-mse.${studentLayer}`;
  if (name === "embedding-mse" || name === "hidden-cosine") return `${PROJ_PREFIX}${name}`;
  return null;
}

/** Checks every term against the two models; one-line UserErrors naming the field. */
export function checkIntermediate(spec: IntermediateSpec, student: BertSpec, teacher: BertSpec, where = "intermediate"): void {
  if (!spec || !Array.isArray(spec.terms) || spec.terms.length === 0) throw new UserError(`${where}.terms: must list at least one term`);
  resolveLayerMap(spec, student, teacher, where);
  const names = new Set<string>();
  spec.terms.forEach((t, i) => {
    const at = `${where}.terms[${i}]`;
    if (!(INTERMEDIATE_LOSSES as readonly string[]).includes(t.name)) throw new UserError(`${at}.name: unknown term "${t.name}" (known: ${INTERMEDIATE_LOSSES.join(", ")})`);
    if (names.has(t.name)) throw new UserError(`${at}.name: "${t.name}" is listed twice`);
    names.add(t.name);
    if (typeof t.weight !== "number" || !Number.isFinite(t.weight) || t.weight < 0) throw new UserError(`${at}.weight: must be a finite number ≥ 0, got ${t.weight}`);
    if (t.name === "attention-kl" && student.heads !== teacher.heads) {
      throw new UserError(`${at}: attention-kl compares heads one to one, but the student has ${student.heads} heads and the teacher ${teacher.heads}`);
    }
    if (t.relationHeads !== undefined && t.name !== "value-relation") throw new UserError(`${at}.relationHeads: only value-relation has relation heads`);
    if (t.name === "value-relation") {
      const r = t.relationHeads ?? student.heads;
      if (!Number.isInteger(r) || r < 1 || student.hidden % r !== 0 || teacher.hidden % r !== 0) {
        throw new UserError(`${at}.relationHeads: ${r} must be a positive integer dividing both hidden sizes (${student.hidden}, ${teacher.hidden})`);
      }
    }
  });
}

/**
 * The learned projections the terms need, as [name, shape] under `distill.proj.`: `.weight`
 * [Ht, Hs] and `.bias` [Ht] per hidden-mse layer pair, one for embedding-mse and one for
 * hidden-cosine; none when the widths are equal.
 */
export function projectionShapes(spec: IntermediateSpec, student: BertSpec, teacher: BertSpec): [string, number[]][] {
  if (student.hidden === teacher.hidden) return [];
  const map = resolveLayerMap(spec, student, teacher);
  const out: [string, number[]][] = [];
  for (const t of spec.terms) {
    for (const [s] of pairsOf(t.name, map)) {
      const stem = projName(t.name, s);
      if (stem) out.push([`${stem}.weight`, [teacher.hidden, student.hidden]], [`${stem}.bias`, [teacher.hidden]]);
    }
  }
  return out;
}

/**
 * Σ weight · term over the spec's terms, as a function of both models' features and the
 * projection parameters. Consumes the features' hidden/attentions/values/mask (not the logits)
 * and `proj`.
 */
export function intermediateLoss(spec: IntermediateSpec, student: BertSpec, teacher: BertSpec): (s: LayerFeatures, t: LayerFeatures, proj: Params) => Arr {
  checkIntermediate(spec, student, teacher);
  const map = resolveLayerMap(spec, student, teacher);
  return (s, t, proj) => {
    const mask = s.mask;
    const projOf = (name: IntermediateLossName, layer: number): Projection | undefined => {
      const stem = projName(name, layer);
      if (!stem || !Object.hasOwn(proj, `${stem}.weight`)) return undefined;
      return { weight: proj[`${stem}.weight`].ref, bias: proj[`${stem}.bias`].ref };
    };
    let total: Arr | null = null;
    for (const term of spec.terms) {
      if (term.weight === 0) continue;
      const pairs = pairsOf(term.name, map);
      let sum: Arr | null = null;
      for (const [ls, lt] of pairs) {
        let v: Arr;
        switch (term.name) {
          case "hidden-mse":
            v = hiddenMSE(s.hidden[ls].ref, t.hidden[lt].ref, mask.ref, projOf(term.name, ls));
            break;
          case "embedding-mse":
            v = embeddingMSE(s.hidden[0].ref, t.hidden[0].ref, mask.ref, projOf(term.name, 0));
            break;
          case "hidden-cosine":
            v = hiddenCosine(s.hidden[ls].ref, t.hidden[lt].ref, mask.ref, projOf(term.name, ls));
            break;
          case "attention-kl":
            v = attentionKL(s.attentions[ls - 1].ref, t.attentions[lt - 1].ref, mask.ref);
            break;
          case "value-relation":
            v = valueRelation(s.values[ls - 1].ref, t.values[lt - 1].ref, mask.ref, term.relationHeads ?? student.heads);
            break;
        }
        sum = sum ? sum.add(v) : v;
      }
      const weighted = sum!.mul(term.weight / pairs.length);
      total = total ? total.add(weighted) : weighted;
    }
    // Every weight 0: still a scalar for the caller to add.
    total ??= mask.ref.sum().mul(0);
    for (const f of [s, t]) for (const a of [...f.hidden, ...f.attentions, ...f.values, f.mask]) a.dispose();
    for (const a of Object.values(proj)) a.dispose();
    return total;
  };
}
