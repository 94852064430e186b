// `distill export`: one finished checkpoint to one format. Each exporter builds its bytes in
// memory (or its folder in a temporary folder); nothing reaches the output path until it is whole.
import { existsSync, readdirSync, statSync } from "node:fs";
import { EXPORT_FORMATS, type ExportFormat } from "../recipe/recipe.js";
import { UserError } from "../util/errors.js";
import { writeFileAtomic } from "../util/fs.js";
import { bytesOnDisk } from "./deploy.js";
import { loadExportable } from "./exportable.js";
import { exportGguf } from "./gguf.js";
import { writeHfFolder } from "./hf.js";
import { exportOnnx } from "./onnx.js";
import { writeWebFolder } from "./web.js";

export { EXPORT_FORMATS, type ExportFormat };
export const EXPORT_DTYPES = ["f32", "f16"] as const;

export interface ExportOptions {
  /** Output file (onnx, gguf) or folder (hf, web); default beside the checkpoint, see defaultOutput. */
  out?: string;
  /** GGUF weight type (default f32); the other formats are f32 only. */
  dtype?: string;
  /** Replace an existing output (default: refuse, so a user's file or folder is never lost by accident). */
  force?: boolean;
}

export function isExportFormat(f: string): f is ExportFormat {
  return (EXPORT_FORMATS as readonly string[]).includes(f);
}

/** `<stem>.onnx`, `<stem>-hf/`, `<stem>.gguf` (`<stem>-f16.gguf`), `<stem>-web/` beside `<stem>.safetensors`. */
export function defaultOutput(checkpoint: string, format: ExportFormat, dtype: "f32" | "f16" = "f32"): string {
  const stem = checkpoint.replace(/\.safetensors$/, "");
  switch (format) {
    case "onnx":
      return `${stem}.onnx`;
    case "hf":
      return `${stem}-hf`;
    case "gguf":
      return dtype === "f16" ? `${stem}-f16.gguf` : `${stem}.gguf`;
    case "web":
      return `${stem}-web`;
  }
}

/** An existing output (other than an empty folder) is the user's: replaced only with --force. */
function refuseExisting(out: string, force: boolean | undefined): void {
  if (!force && existsSync(out) && !(statSync(out).isDirectory() && readdirSync(out).length === 0)) throw new UserError(`${out}: already exists; not replaced (use --force to replace it)`);
}

/**
 * Exports the checkpoint at `path` (`X.safetensors` with `X.json` beside it) as `format`.
 * Returns what was written and its size in bytes. Every problem is a UserError naming the
 * file, format or value; the output is written whole or not at all.
 */
export async function exportCheckpoint(path: string, format: string, opts: ExportOptions = {}): Promise<{ path: string; bytes: number }> {
  if (!isExportFormat(format)) throw new UserError(`--format ${JSON.stringify(format)}: unknown format (known: ${EXPORT_FORMATS.join(", ")})`);
  const dtype = opts.dtype ?? "f32";
  if (dtype !== "f32" && dtype !== "f16") throw new UserError(`--dtype ${JSON.stringify(dtype)}: expected ${EXPORT_DTYPES.join(" or ")}`);
  if (dtype === "f16" && format !== "gguf") throw new UserError(`--dtype f16: only the gguf format has f16 weights (${format} is f32)`);
  const out = opts.out ?? defaultOutput(path, format, dtype);
  const m = loadExportable(path);
  switch (format) {
    case "onnx":
      refuseExisting(out, opts.force);
      writeFileAtomic(out, exportOnnx(m));
      break;
    case "gguf":
      if (m.family !== "lm") throw new UserError(`${path}: a classifier; GGUF holds llama.cpp language models only (export it with --format onnx or hf)`);
      refuseExisting(out, opts.force);
      writeFileAtomic(out, exportGguf(m, dtype));
      break;
    case "hf":
      await writeHfFolder(m, out, { replace: opts.force });
      break;
    case "web":
      // writeWebFolder builds its folder beside `out` and renames it in; with --force it still
      // replaces only a folder it wrote before (or an empty one).
      refuseExisting(out, opts.force);
      await writeWebFolder(m, out);
      break;
  }
  return { path: out, bytes: bytesOnDisk(out) };
}
