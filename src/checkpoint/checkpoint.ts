/**
 * A checkpoint is a pair of files: `<name>.safetensors` with the tensors and `<name>.json` with
 * `{ config, state, tensorsSha256 }`. The JSON records the sha256 of the safetensors bytes, so a
 * pair that does not belong together (an interrupted save, a file copied from elsewhere) is
 * rejected on load rather than silently mixing weights and training state.
 */
import { createHash } from "node:crypto";
import { constants } from "node:buffer";
import { existsSync } from "node:fs";
import { UserError } from "../util/errors.js";
import { readFileBounded, writeFileAtomic } from "../util/fs.js";
import { decodeSafetensors, encodeSafetensors, type HostTensor } from "./safetensors.js";

export interface Checkpoint {
  tensors: Record<string, HostTensor>;
  config: unknown;
  state?: unknown;
}

const EXT = ".safetensors";

function jsonPathFor(path: string): string {
  if (!path.endsWith(EXT) || path.length === EXT.length) {
    throw new UserError(`${path}: checkpoint path must end in ${EXT}`);
  }
  return path.slice(0, -EXT.length) + ".json";
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * Saves `ckpt` to `path` (which must end in `.safetensors`) and its companion `.json`.
 *
 * Everything that can fail on bad input (encoding the tensors, serializing config/state) runs
 * before anything is written, so a failed save leaves an earlier checkpoint untouched. Each file
 * is written atomically; two files cannot be replaced in one step, so the order matters:
 * the tensors go first and the JSON, which holds their sha256, goes last as the commit record.
 * An interruption while writing the (large, slow) tensors leaves the old pair intact; only an
 * interruption in the short window between the two renames leaves new tensors beside the old
 * JSON, and loadCheckpoint detects that through the hash instead of loading a mixed pair.
 */
export function saveCheckpoint(path: string, ckpt: Checkpoint): void {
  const jsonPath = jsonPathFor(path);
  const bytes = encodeSafetensors(ckpt.tensors);
  const json =
    JSON.stringify({ config: ckpt.config, state: ckpt.state, tensorsSha256: sha256(bytes) }, null, 2) + "\n";
  writeFileAtomic(path, bytes);
  writeFileAtomic(jsonPath, json);
}

function readOrFail(path: string, what: string): Buffer {
  // A regular file only (a device would be read forever), up to the largest Buffer Node makes.
  return readFileBounded(path, constants.MAX_LENGTH, what);
}

/** Loads a checkpoint saved by saveCheckpoint; every problem with the files is a UserError naming one. */
export function loadCheckpoint(path: string): Checkpoint {
  const jsonPath = jsonPathFor(path);
  const bytes = readOrFail(path, "checkpoint");
  const { tensors } = decodeSafetensors(bytes, path);

  const text = readOrFail(jsonPath, "checkpoint JSON").toString("utf8");
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new UserError(`${jsonPath}: corrupt checkpoint JSON (not valid JSON)`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new UserError(`${jsonPath}: corrupt checkpoint JSON (not an object)`);
  }
  const meta = parsed as Record<string, unknown>;
  if (typeof meta.tensorsSha256 !== "string") {
    throw new UserError(`${jsonPath}: checkpoint JSON has no "tensorsSha256" string`);
  }
  if (meta.tensorsSha256 !== sha256(bytes)) {
    throw new UserError(`${path}: checkpoint and ${jsonPath} do not match (interrupted save?)`);
  }

  const ckpt: Checkpoint = { tensors, config: meta.config };
  if (meta.state !== undefined) ckpt.state = meta.state;
  return ckpt;
}

/** True when both files of the checkpoint exist (their contents are checked only by loadCheckpoint). */
export function checkpointExists(path: string): boolean {
  return existsSync(path) && existsSync(jsonPathFor(path));
}
