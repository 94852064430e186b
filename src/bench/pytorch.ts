// The PyTorch side of `distill bench`: the same workloads in bench/pytorch_baseline.py, run by
// a Python that has torch (Debian's python3-torch installs for /usr/bin/python3, which need not
// be the first python3 on PATH), with 1 and with 2 threads; the faster of the two is the baseline.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

export interface TorchResult {
  workload: string;
  msPerStep: number;
  throughput: number;
  peakRssMB: number;
  threads: number;
  device: string;
  torch: string;
}

/** The script, found from this module in both the source tree and the built package. */
export function baselineScript(): string {
  return fileURLToPath(new URL("../../bench/pytorch_baseline.py", import.meta.url));
}

/**
 * The first Python that imports torch, with its version; null when none does. DISTILL_PYTHON,
 * when set, is the only candidate.
 */
export function findTorchPython(candidates = process.env.DISTILL_PYTHON ? [process.env.DISTILL_PYTHON] : ["/usr/bin/python3", "python3"]): { python: string; torch: string } | null {
  for (const python of candidates) {
    const r = spawnSync(python, ["-c", "import torch; print(torch.__version__)"], { encoding: "utf8" });
    if (r.status === 0) return { python, torch: r.stdout.trim() };
  }
  return null;
}

/** Whether that Python's torch sees a CUDA GPU. */
export function torchHasCuda(python: string): boolean {
  const r = spawnSync(python, ["-c", "import torch; print(torch.cuda.is_available())"], { encoding: "utf8" });
  return r.status === 0 && r.stdout.trim() === "True";
}

/** Runs the workloads once per thread count and keeps, per workload, the fastest. */
export function runTorchBaseline(
  python: string,
  workloads: string[],
  opts: { steps: (w: string) => number; threads: number[]; device: "cpu" | "cuda"; batch?: number },
): { best: TorchResult[]; all: TorchResult[]; errors: string[] } {
  const script = baselineScript();
  if (!existsSync(script)) return { best: [], all: [], errors: [`PyTorch baseline script not found at ${script}`] };
  const all: TorchResult[] = [];
  const errors: string[] = [];
  for (const threads of opts.threads) {
    for (const w of workloads) {
      const args = [script, "--threads", String(threads), "--steps", String(opts.steps(w)), "--device", opts.device];
      if (opts.batch) args.push("--batch", String(opts.batch));
      const r = spawnSync(python, [...args, w], { encoding: "utf8", maxBuffer: 1 << 24 });
      if (r.status !== 0) {
        errors.push(`${w} (${threads} thread${threads > 1 ? "s" : ""}): ${(r.stderr || r.stdout).trim().split("\n").pop()}`);
        continue;
      }
      for (const line of r.stdout.trim().split("\n")) {
        const o = JSON.parse(line) as TorchResult & { skipped?: string };
        if (!o.skipped) all.push(o);
      }
    }
  }
  const best = new Map<string, TorchResult>();
  for (const r of all) {
    const b = best.get(r.workload);
    if (!b || r.throughput > b.throughput) best.set(r.workload, r);
  }
  return { best: workloads.flatMap((w) => best.get(w) ?? []), all, errors };
}
