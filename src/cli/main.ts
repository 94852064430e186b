// The `distill` command line. Every user-fixable problem is a UserError: one line on stderr,
// exit code 2, and no output file is touched (files are written whole, by rename).
import { join } from "node:path";
import { Command, InvalidArgumentError, Option } from "commander";
import { initDevice, type Device } from "../engine/index.js";
import { loadRecipe } from "../recipe/recipe.js";
import { Interrupted, runRecipe, type RunOptions } from "../pipeline.js";
import { formatTable } from "../report/results.js";
import { makeProgress } from "./progress.js";
import { UserError } from "../util/errors.js";
import { evalCheckpoint } from "./eval.js";

function parseSeeds(v: string): number[] {
  const seeds = v.split(",").map((s) => Number(s.trim()));
  if (seeds.length === 0 || seeds.some((s) => !Number.isInteger(s) || s < 0)) {
    throw new InvalidArgumentError(`expected comma-separated non-negative integers, got "${v}"`);
  }
  return seeds;
}

const collect = (v: string, prev: string[]) => [...prev, v];

interface CommonFlags {
  out?: string;
  seeds: number[];
  device: Device;
  data?: string;
  resume?: boolean;
  fresh?: boolean;
  set: string[];
  quiet?: boolean;
}

function withCommon(cmd: Command): Command {
  return cmd
    .option("--out <dir>", "output directory (default: runs/<recipe name>)")
    .option("--seeds <list>", "comma-separated seeds", parseSeeds, [0])
    .addOption(new Option("--device <device>", "compute device").choices(["wasm", "webgpu"]).default("wasm"))
    .option("--data <dir>", "dataset directory (overrides the recipe and DISTILL_DATA)")
    .option("--resume", "continue interrupted runs from their checkpoints")
    .option("--fresh", "retrain even when a finished checkpoint with the same config exists")
    .option("--set <path=value>", "override a recipe field, e.g. --set teacher.train.epochs=2", collect, [])
    .option("-q, --quiet", "no progress output");
}

/** SIGINT asks the trainer to checkpoint and stop; a second Ctrl-C exits at once. */
function stopOnSigint(): { requested: boolean } {
  const stop = { requested: false };
  process.on("SIGINT", () => {
    if (stop.requested) process.exit(130);
    stop.requested = true;
    process.stderr.write("\nCtrl-C: saving a checkpoint after this step (press again to quit now)\n");
  });
  return stop;
}

async function runCommand(recipePath: string, flags: CommonFlags, only?: string[]): Promise<void> {
  const recipe = loadRecipe(recipePath, flags.set);
  const device = await initDevice(flags.device);
  const out = flags.out ?? join("runs", recipe.name);
  const opts: RunOptions = {
    out,
    seeds: flags.seeds,
    device,
    dataDir: flags.data,
    resume: flags.resume,
    fresh: flags.fresh,
    only,
    progress: makeProgress(flags.quiet),
    stop: stopOnSigint(),
  };
  const results = await runRecipe(recipe, opts);
  console.log(formatTable(results));
  console.log(`results: ${join(out, "results.json")}`);
}

export function buildCli(): Command {
  // exitOverride and configureOutput must come before the subcommands: commander copies them
  // into each subcommand when it is created. A usage error (bad option value, unknown option)
  // is then one line, `distill: error: ...`, like every other user error, and main() sees it.
  const program = new Command("distill")
    .description("Knowledge distillation: train a teacher, distil a small student, and report honestly what it bought")
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`distill: ${str.trimEnd().replace(/\s*\n\s*/g, " ")}\n`) });

  withCommon(program.command("run <recipe>"))
    .description("teacher → scratch student → distilled student for each seed, then the report")
    .action((recipe: string, flags: CommonFlags) => runCommand(recipe, flags));

  withCommon(program.command("train <recipe>"))
    .description("train the recipe's teacher, or with --student NAME a student from scratch")
    .option("--student <name>", "a scratch student of the recipe")
    .action(async (recipe: string, flags: CommonFlags & { student?: string }) => {
      if (flags.student) {
        const r = loadRecipe(recipe, flags.set);
        const s = r.students.find((x) => x.name === flags.student);
        if (!s) throw new UserError(`${recipe}: no student named "${flags.student}" (have: ${r.students.map((x) => x.name).join(", ")})`);
        if (s.role !== "scratch") throw new UserError(`${recipe}: student "${s.name}" is distilled; use \`distill distill\``);
      }
      await runCommand(recipe, flags, [flags.student ?? "teacher"]);
    });

  withCommon(program.command("distill <recipe>"))
    .description("distil the recipe's students from its teacher (trained first if missing)")
    .option("--student <name>", "only this distilled student")
    .action(async (recipe: string, flags: CommonFlags & { student?: string }) => {
      const r = loadRecipe(recipe, flags.set);
      const names = r.students.filter((s) => s.role === "distilled" && (!flags.student || s.name === flags.student)).map((s) => s.name);
      if (names.length === 0) throw new UserError(`${recipe}: no distilled student${flags.student ? ` named "${flags.student}"` : ""}`);
      await runCommand(recipe, flags, names);
    });

  program
    .command("eval <checkpoint>")
    .description("evaluate a checkpoint on the test set (accuracy, agreement, ECE, loss)")
    .option("--teacher <checkpoint>", "teacher checkpoint for the agreement metric")
    .option("--data <dir>", "dataset directory")
    .addOption(new Option("--device <device>", "compute device").choices(["wasm", "webgpu"]).default("wasm"))
    .action(async (ckpt: string, flags: { teacher?: string; data?: string; device: Device }) => {
      await initDevice(flags.device);
      console.log(JSON.stringify(await evalCheckpoint(ckpt, flags.teacher, flags.data), null, 2));
    });
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildCli();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof UserError) {
      process.stderr.write(`distill: error: ${e.message}\n`);
      return 2;
    }
    if (e instanceof Interrupted) {
      process.stderr.write(`distill: ${e.message}\n`);
      return 130;
    }
    const ce = e as { code?: string; exitCode?: number };
    if (typeof ce.code === "string" && ce.code.startsWith("commander.")) {
      if (ce.code === "commander.helpDisplayed" || ce.code === "commander.version") return 0;
      // Help printed because no command was given keeps commander's code; usage errors are 2.
      return ce.code === "commander.help" ? (ce.exitCode ?? 1) : 2;
    }
    throw e;
  }
}
