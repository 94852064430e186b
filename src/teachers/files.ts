// Teachers from files named in a recipe (`teacher: { onnx | hf | gguf }`): their identity for
// checkpoint hashes. A student's config names its teacher by the SHA-256 of the file's bytes
// (a Hugging Face folder: of its model.safetensors), not by its path: replacing the file
// retrains the students, and the same file under another name reuses them.
import { createHash } from "node:crypto";
import { closeSync, openSync, readSync, statSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../util/errors.js";

/** SHA-256 (hex) of a file, read in chunks (a GGUF teacher may be gigabytes). */
export function fileSha256(path: string, field: string): string {
  let fd: number;
  try {
    if (!statSync(path).isFile()) throw new UserError(`${field}: ${path} is not a file`);
    fd = openSync(path, "r");
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${field}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const h = createHash("sha256");
  const buf = Buffer.allocUnsafe(1 << 22);
  try {
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest("hex");
}

export type FileTeacherSpec = { onnx: string } | { hf: string } | { gguf: string; topK: number };

/** The teacher's identity in a student's config: its kind and the digest of its weights. */
export function fileTeacherId(spec: FileTeacherSpec): string {
  if ("onnx" in spec) return `onnx:${fileSha256(spec.onnx, "teacher.onnx")}`;
  if ("hf" in spec) return `hf:${fileSha256(join(spec.hf, "model.safetensors"), "teacher.hf")}`;
  return `gguf:${fileSha256(spec.gguf, "teacher.gguf")}:top${spec.topK}`;
}
