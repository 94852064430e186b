import cliProgress from "cli-progress";
import type { ProgressSink } from "../pipeline.js";
import type { ValidationMetrics } from "../train/trainer.js";

/** The latest epoch's validation loss and accuracy, or nothing before the first (or without one). */
function valText(v: ValidationMetrics | undefined): string {
  return v ? `, validation loss ${v.loss.toFixed(4)} accuracy ${(v.accuracy * 100).toFixed(2)}%` : "";
}

/**
 * Progress on stderr: a live bar on a terminal; on a pipe or in CI, a line every 10% so logs
 * stay readable.
 */
export function makeProgress(quiet = false): ProgressSink {
  const tty = process.stderr.isTTY === true;
  let bar: cliProgress.SingleBar | null = null;
  let label = "";
  let total = 0;
  let lastDecile = -1;
  let started = 0;
  return {
    start(l, t) {
      label = l;
      total = t;
      lastDecile = -1;
      started = performance.now();
      if (quiet) return;
      if (tty) {
        bar = new cliProgress.SingleBar(
          {
            format: `${l} [{bar}] {percentage}% | {value}/{total} steps | loss {loss}{val} | {rate} steps/s | eta {eta_formatted}`,
            stream: process.stderr,
            hideCursor: true,
            clearOnComplete: false,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(t, 0, { loss: "-", val: "", rate: "-" });
      } else {
        process.stderr.write(`${l}: ${t} steps\n`);
      }
    },
    update(done, loss, validation) {
      if (quiet) return;
      const rate = (done / Math.max(1e-9, (performance.now() - started) / 1000)).toFixed(1);
      const lossText = Number.isFinite(loss) ? loss.toFixed(4) : "-";
      if (bar) bar.update(done, { loss: lossText, val: valText(validation), rate });
      else {
        const decile = Math.floor((done / total) * 10);
        if (decile > lastDecile) {
          lastDecile = decile;
          process.stderr.write(`${label}: ${decile * 10}% (${done}/${total} steps, loss ${lossText}${valText(validation)}, ${rate} steps/s)\n`);
        }
      }
    },
    stop() {
      bar?.stop();
      bar = null;
    },
    info(line) {
      if (!quiet) process.stderr.write(line + "\n");
    },
  };
}
