// Ctrl-C during `distill run`: a checkpoint is saved, the exit code is 130, and --resume
// finishes the run with the same numbers as an uninterrupted one.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT, makeFashionFixture, runCli, writeTinyRecipe } from "./helpers/fixtures.js";
import { tempDir } from "./helpers/tmp.js";

function runUntilInterrupted(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env: Record<string, string | undefined> = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    delete env.DISTILL_DATA;
    const child = spawn(process.execPath, ["--import", "tsx", join(REPO_ROOT, "src/cli/bin.ts"), ...args], { cwd: REPO_ROOT, env });
    let stderr = "";
    let sent = false;
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.stderr.on("data", (d) => {
      stderr += d;
      // Interrupt the teacher once it is a fifth of the way through.
      if (!sent && /teacher seed 0 .*: 20%/.test(stderr)) {
        sent = true;
        child.kill("SIGINT");
      }
    });
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

test("Ctrl-C saves a checkpoint and exits 130; --resume completes it with identical results", async () => {
  const dir = tempDir("distill-sigint-");
  const data = makeFashionFixture(join(dir, "data"), { train: 320, test: 100 });
  const recipe = writeTinyRecipe(join(dir, "r.yaml"), (r) => {
    (r.teacher as { train: { epochs: number } }).train.epochs = 30;
  });
  const out = join(dir, "out");
  const common = [recipe, "--data", data, "--seeds", "0"];
  const r1 = await runUntilInterrupted(["run", ...common, "--out", out]);
  assert.equal(r1.code, 130, r1.stderr);
  assert.match(r1.stderr, /interrupted: checkpoint saved at .*teacher-[0-9a-f]+\.safetensors; rerun with --resume/);
  const seedDir = join(out, "seed-0");
  const json = readdirSync(seedDir).find((f) => /^teacher-.*\.json$/.test(f))!;
  const state = JSON.parse(readFileSync(join(seedDir, json), "utf8")).state;
  assert.equal(state.done, false);
  assert.ok(state.step > 0 && state.step < 300, `saved at step ${state.step}`);

  const r2 = runCli(["run", ...common, "--out", out, "--resume", "-q"]);
  assert.equal(r2.code, 0, r2.stderr);
  const resumed = JSON.parse(readFileSync(join(out, "results.json"), "utf8"));
  const r3 = runCli(["run", ...common, "--out", join(dir, "straight"), "-q"]);
  assert.equal(r3.code, 0, r3.stderr);
  const straight = JSON.parse(readFileSync(join(dir, "straight", "results.json"), "utf8"));
  const metrics = (r: { runs: { name: string; metrics: unknown }[] }) => r.runs.map((x) => [x.name, x.metrics]);
  assert.deepEqual(metrics(resumed), metrics(straight));
});
