// The learned projections of the intermediate-layer losses live in the trained parameter record
// beside the student's tensors (under `distill.proj.`), so the optimiser, the checkpoints and the
// data-parallel replicas treat them like any parameter; `splitProjections` separates them again.
import { np, random, type Arr } from "../../engine/index.js";
import type { EncoderModel } from "../../nn/bert.js";
import type { Params } from "../../nn/models.js";
import { PROJ_PREFIX } from "./index.js";

/** nn.Linear's init: weight and bias uniform in ±1/√in, in = the student's width (shape[1] of the weight). */
export function initProjections(shapes: [string, number[]][], key: Arr): Params {
  if (shapes.length === 0) {
    key.dispose();
    return {};
  }
  const keys = np.unstack(random.split(key, shapes.length));
  const fanIn = new Map<string, number>();
  for (const [name, shape] of shapes) if (name.endsWith(".weight")) fanIn.set(name.slice(0, -".weight".length), shape[1]);
  const out: Params = {};
  shapes.forEach(([name, shape], i) => {
    const bound = 1 / Math.sqrt(fanIn.get(name.replace(/\.(weight|bias)$/, ""))!);
    out[name] = random.uniform(keys[i], shape, { minval: -bound, maxval: bound });
  });
  return out;
}

/** A student plus projections, as the trainer trains it: the params record holds both. */
export interface ProjectedModel extends EncoderModel {
  student: EncoderModel;
  projections: [string, number[]][];
}

export function isProjected(m: unknown): m is ProjectedModel {
  return Array.isArray((m as ProjectedModel).projections) && typeof (m as ProjectedModel).student === "object";
}

/** Splits a params record (a finished run's, or a step's) into the student's tensors and the projections. */
export function splitProjections(params: Params): { student: Params; projections: Params } {
  const student: Params = {};
  const projections: Params = {};
  for (const [name, a] of Object.entries(params)) (name.startsWith(PROJ_PREFIX) ? projections : student)[name] = a;
  return { student, projections };
}

/**
 * The student with `projections` added to its shapes. Its spec is the student's and `init` gives
 * the student exactly the weights it would get alone (so a scratch and a distilled student of one
 * seed start equal); the projections draw from a key split off it. `apply` and `features` run the
 * student and dispose the projections.
 */
export function withProjections(student: EncoderModel, projections: [string, number[]][]): ProjectedModel {
  const strip = (p: Params): Params => {
    const { student: sp, projections: pp } = splitProjections(p);
    for (const a of Object.values(pp)) a.dispose();
    return sp;
  };
  return {
    ...student,
    student,
    projections,
    shapes: [...student.shapes, ...projections],
    init(key) {
      const [k0, pk] = np.unstack(random.split(key.ref, 2));
      k0.dispose();
      return { ...student.init(key), ...initProjections(projections, pk) };
    },
    apply: (p, x, ctx) => student.apply(strip(p), x, ctx),
    features: (p, x, ctx) => student.features(strip(p), x, ctx),
  };
}
