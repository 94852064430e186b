// `distill cache RECIPE`: the recipe's teacher (trained here or reused, a checkpoint, a file, a
// server) scores the recipe's aligned training windows and its held-out windows once, into the
// soft-label cache of the recipe's `cache:` block (src/cache/index.ts stores it). Sharded runs
// (`--shard i/N`) fill disjoint chunks; `--merge` checks them and writes one manifest.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Device } from "../engine/index.js";
import type { LMRecipe } from "../recipe/recipe.js";
import { configHash, Interrupted, prepareOut, withOpened, type RunOptions } from "../pipeline.js";
import { lmTeacher, loadLMCorpus } from "../pipeline-lm.js";
import { lmLogits } from "../eval/lm-metrics.js";
import { disposeParams } from "../checkpoint/params.js";
import { cacheWindows } from "../teachers/cache.js";
import type { ExternalTeacher, SoftLabels } from "../teachers/types.js";
import { inferenceWorkers } from "../parallel/pool.js";
import { ownModelOnOnnx } from "../teachers/own-onnx.js";
import { UserError } from "../util/errors.js";
import { buildCache, mergeCache, type BuildCacheResult } from "./index.js";
import type { CacheManifest } from "./types.js";

/** Ctrl-C or SIGTERM while filling: the CLI's exit code of an interrupted run, with what to do next. */
class CacheInterrupted extends Interrupted {
  constructor(dir: string) {
    super(dir);
    this.message = `interrupted: the chunks of ${dir} written so far are kept; run the same command to continue`;
  }
}

/** `--shard i/N`: 0 ≤ i < N. */
export function parseShard(v: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(v.trim());
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || !Number.isSafeInteger(index) || !Number.isSafeInteger(count) || count < 1 || index >= count) {
    throw new UserError(`--shard ${v}: expected i/N with 0 ≤ i < N (e.g. 0/4)`);
  }
  return { index, count };
}

export interface CacheCommandOptions extends RunOptions {
  device: Device;
  /** The cache folder (default: the recipe's cache.dir). */
  cacheDir?: string;
  shard?: { index: number; count: number };
  merge?: boolean;
}

export type CacheCommandResult = { merged: CacheManifest } | ({ dir: string } & BuildCacheResult);

export async function cacheRecipe(recipe: LMRecipe, opts: CacheCommandOptions): Promise<CacheCommandResult> {
  if ("cache" in recipe.teacher) throw new UserError(`teacher.cache: the teacher is already a cache; distill cache fills one from a model, a file or a server`);
  // Merging needs only the folder (the shards' plan says the rest).
  if (opts.merge && (opts.cacheDir ?? recipe.cache?.dir)) return { merged: mergeCache(opts.cacheDir ?? recipe.cache!.dir) };
  if (!recipe.cache) throw new UserError(`${recipe.name}: no cache block (add cache: { dir, topK } to say where and how many of the teacher's probabilities to keep)`);
  const dir = opts.cacheDir ?? recipe.cache.dir;
  const k = recipe.cache.topK;
  const c = loadLMCorpus(recipe, opts);
  const vocab = c.tokenizer.vocabSize;
  if (k > vocab) throw new UserError(`cache.topK: ${k} is larger than the vocabulary of ${vocab} tokens`);
  // The students' windows: the longest student's context (every student reading it must use it).
  const context = Math.max(...recipe.students.map((s) => s.model.context));
  const w = cacheWindows(c.trainIds, c.heldIds, context, recipe.data.evalWindows);
  // A teacher trained here goes where `distill run` puts it (OUT/seed-0), so each reuses the other's.
  if ("model" in recipe.teacher) {
    prepareOut(opts, recipe.name);
    mkdirSync(join(opts.out, "seed-0"), { recursive: true });
  }
  return withOpened(async (opened) => {
    // The teacher as `distill run` uses it (seed 0): trained here or reused from OUT/seed-0.
    const t = await lmTeacher(recipe, c.tokenizer, c.tokJSON, c.data, c.trainIds, c.heldIds, 0, join(opts.out, "seed-0"), opts, opened);
    if (t.server && !t.server.scores) throw new UserError(`teacher.server: ${t.server.source} only generates (no prompt log-probabilities); a cache needs a teacher that scores text`);
    if (t.cache) throw new Error("unreachable: a cache teacher");
    // --inference onnxruntime: distill's own Llama scores through its ONNX export. Its numbers
    // differ from the engine's in the last bits, so the cache's teacher identity says so (shards
    // scored one way do not merge with shards scored the other).
    let own: ExternalTeacher | undefined;
    if (opts.inference === "onnxruntime" && t.model) {
      opened.push((own = await ownModelOnOnnx(t.model, t.params!, inferenceWorkers(opts.workers))));
    }
    const scorer = t.external ?? own;
    const score = async (x: Int32Array, shape: [number, number]): Promise<SoftLabels> => {
      // A turn of the event loop per batch: distill's own forward resolves without one, and signals
      // are delivered only there. Ctrl-C / SIGTERM then stops scoring; the chunks written so far
      // are whole files, and the same command continues.
      await new Promise((resolve) => setImmediate(resolve));
      if (opts.stop.requested) throw new CacheInterrupted(dir);
      if (scorer) return scorer.softLabels(x, shape);
      // distill's own Llama: dense logits over the windows, cut to k by the store.
      const logits = await lmLogits(t.model!, t.params!, x, shape[1]);
      return { kind: "dense", rows: shape[0] * shape[1], classes: vocab, logits };
    };
    const total = w.train.windows + w.heldout.windows;
    opts.progress.start(`cache ${dir}${opts.shard ? ` shard ${opts.shard.index}/${opts.shard.count}` : ""}`, total);
    try {
      const r = await buildCache({
        dir,
        identity: { teacher: own ? `${t.hash}+onnxruntime` : t.hash, tokenizer: configHash(c.tokJSON), corpus: w.corpus },
        k,
        vocab,
        context,
        precision: recipe.cache!.precision ?? "quantized",
        train: w.train.x,
        heldout: w.heldout.x,
        score,
        shard: opts.shard,
        // A server answers many requests at once (its own limit applies inside the client too).
        concurrency: "server" in recipe.teacher ? (recipe.teacher.server.concurrency ?? 4 * [recipe.teacher.server.url].flat().length) : 1,
        progress: (done) => opts.progress.update(done, NaN),
      });
      return { dir, ...r };
    } finally {
      opts.progress.stop();
      if (t.params) disposeParams(t.params);
    }
  });
}
