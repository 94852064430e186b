import { closeSync, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, readSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, basename, join } from "node:path";
import { UserError, fsReason } from "./errors.js";

/** The temporary name writeFileAtomic uses beside `path`: `.NAME.PID.tmp`. */
const TEMP_RE = /^\..+\.(\d+)\.tmp$/;

/**
 * Writes a whole file or nothing: data goes to a temporary file beside the target, then is
 * renamed over it, so an interrupted run never leaves a half-written output and the previous
 * version stays intact until the new one is complete. A target that exists and is not a regular
 * file (a folder, a device such as /dev/full, a pipe) is refused: renaming over it would replace
 * it rather than write into it.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    st = null;
  }
  if (st && !st.isFile() && !st.isSymbolicLink()) throw new UserError(`${path}: exists and is not a regular file; not replaced`);
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    removeQuietly(tmp);
    // Name the file the user asked for, not our temporary one.
    const reason = fsReason(e);
    if (reason !== null) throw new UserError(`${path}: cannot write (${reason}); ${st ? "the previous version is unchanged" : "nothing was written"}`);
    throw e;
  }
}

/**
 * Makes the output folder and checks that files can be written in it, before any training:
 * a command should not train for an hour and then find it cannot save. One line naming the
 * folder otherwise (an existing file of that name, permission denied, a read-only disk).
 */
export function ensureWritableDir(dir: string): void {
  let st;
  try {
    st = statSync(dir);
  } catch {
    st = null;
  }
  if (st && !st.isDirectory()) throw new UserError(`${dir}: exists and is not a folder; choose another --out`);
  const probe = join(dir, `.distill-probe.${process.pid}.tmp`);
  try {
    mkdirSync(dir, { recursive: true });
    writeFileSync(probe, "");
    rmSync(probe, { force: true });
  } catch (e) {
    removeQuietly(probe);
    const reason = fsReason(e);
    if (reason !== null) throw new UserError(`${dir}: cannot write the output folder (${reason})`);
    throw e;
  }
}

/** Removes a file we may have half-written; its folder may not even exist. */
function removeQuietly(path: string): void {
  try {
    rmSync(path, { force: true });
  } catch {
    // nothing there to remove
  }
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes temporary files of writeFileAtomic's naming left in `dir` and its `seed-*` folders by
 * a process that no longer runs (killed between write and rename). Files of a live process are
 * left alone: it may still rename them. Returns the paths removed.
 */
export function removeStaleTemps(dir: string): string[] {
  const removed: string[] = [];
  const sweep = (d: string, depth: number) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const name of names) {
      const p = join(d, name);
      const m = TEMP_RE.exec(name);
      if (m && !alive(Number(m[1]))) {
        try {
          if (lstatSync(p).isFile()) {
            rmSync(p, { force: true });
            removed.push(p);
          }
        } catch {
          // gone already
        }
      } else if (depth === 0 && name.startsWith("seed-")) {
        try {
          if (lstatSync(p).isDirectory()) sweep(p, 1);
        } catch {
          // gone already
        }
      }
    }
  };
  sweep(dir, 0);
  return removed;
}

/** A size for people: bytes, MiB or GiB. */
export function sizeText(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)} GiB` : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${n} bytes`;
}

/**
 * Reads a regular file of at most `maxBytes` bytes. A device, pipe or socket (e.g. /dev/zero,
 * which never ends) is refused before anything is read, and reading stops at `maxBytes` + 1
 * whatever the size the file reports (files under /proc report 0). `what` names the file's role
 * and `limitName` the setting that raises the cap, in the error. Errors never quote the content.
 */
export function readFileBounded(path: string, maxBytes: number, what: string, limitName?: string): Buffer {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`${path}: ${code === "ENOENT" ? `${what} not found` : `cannot read ${what} (${code ?? "error"})`}`);
  }
  if (st.isDirectory()) throw new UserError(`${path}: is a folder, expected a ${what} file`);
  if (!st.isFile()) throw new UserError(`${path}: not a regular file (a device, pipe or socket); refusing to read it as a ${what}`);
  const tooBig = () =>
    new UserError(`${path}: ${what} is larger than ${sizeText(maxBytes)}${limitName ? ` (raise ${limitName} to read it)` : ""}`);
  if (st.size > maxBytes) throw tooBig();
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new UserError(`${path}: cannot read ${what} (${(e as NodeJS.ErrnoException).code ?? "error"})`);
  }
  try {
    if (!fstatSync(fd).isFile()) throw new UserError(`${path}: not a regular file; refusing to read it as a ${what}`);
    const chunks: Buffer[] = [];
    let total = 0;
    const chunk = Math.min(Math.max(st.size + 1, 64 * 1024), 64 * 2 ** 20, maxBytes + 1);
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(chunk, maxBytes + 1 - total));
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        throw new UserError(`${path}: cannot read ${what} (${(e as NodeJS.ErrnoException).code ?? "error"})`);
      }
      if (n === 0) break;
      chunks.push(n === buf.length ? buf : buf.subarray(0, n));
      total += n;
      if (total > maxBytes) throw tooBig();
    }
    return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, total);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes a whole folder or nothing: `fill` writes into a temporary folder beside `dir`
 * (`.NAME.PID.tmp`), which is renamed to `dir` only once complete. A failure removes the
 * temporary folder and leaves `dir` as it was. An existing `dir` (other than an empty one) is refused unless `replace`,
 * since replacing a folder deletes whatever the user put in it; with `replace` the old folder is
 * moved aside, the new one renamed in, and the old one removed (if the second rename fails, the
 * old folder is moved back).
 */
export async function writeDirAtomic(dir: string, fill: (tmp: string) => void | Promise<void>, opts: { replace?: boolean } = {}): Promise<void> {
  let st;
  try {
    st = lstatSync(dir);
  } catch {
    st = null;
  }
  if (st && !st.isDirectory()) throw new UserError(`${dir}: exists and is not a folder; not replaced`);
  if (st && !opts.replace && readdirSync(dir).length > 0) throw new UserError(`${dir}: already exists; not replaced (use --force to replace it)`);
  const parent = dirname(dir);
  const tmp = join(parent, `.${basename(dir)}.${process.pid}.tmp`);
  const old = join(parent, `.${basename(dir)}.${process.pid}.old`);
  const fail = (e: unknown): never => {
    rmSync(tmp, { recursive: true, force: true });
    const reason = fsReason(e);
    if (reason !== null) throw new UserError(`${dir}: cannot write (${reason}); ${st ? "the previous version is unchanged" : "nothing was written"}`);
    throw e;
  };
  try {
    mkdirSync(parent, { recursive: true });
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
    await fill(tmp);
  } catch (e) {
    fail(e);
  }
  if (!st) {
    try {
      renameSync(tmp, dir);
    } catch (e) {
      fail(e);
    }
    return;
  }
  try {
    rmSync(old, { recursive: true, force: true });
    renameSync(dir, old);
  } catch (e) {
    fail(e);
  }
  try {
    renameSync(tmp, dir);
  } catch (e) {
    renameSync(old, dir);
    fail(e);
  }
  rmSync(old, { recursive: true, force: true });
}
