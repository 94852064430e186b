/**
 * An error the user can fix: a bad file, field or value. The CLI prints only its message, on
 * one line, and exits non-zero; anything else is a bug and gets a stack trace.
 */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UserError";
  }
}

const FS_REASONS: Record<string, string> = {
  ENOSPC: "no space left on the device",
  EDQUOT: "disk quota exceeded",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EROFS: "read-only file system",
  EEXIST: "already exists",
  ENOTDIR: "a part of the path is a file, not a folder",
  EISDIR: "is a folder",
  ENOENT: "no such file or folder",
  EMFILE: "too many open files",
  ENAMETOOLONG: "name too long",
  EIO: "input/output error",
};

/** A file-system error's reason in words ("no space left on the device"), or null if `e` is not one. */
export function fsReason(e: unknown): string | null {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  if (typeof code !== "string" || !(e instanceof Error) || typeof (e as NodeJS.ErrnoException).syscall !== "string") return null;
  return Object.hasOwn(FS_REASONS, code) ? `${FS_REASONS[code]}, ${code}` : code;
}

/**
 * A file-system error (ENOSPC, EACCES, ...) as the one line a user sees, naming the path; null
 * for anything else. The CLI treats it as a user error: there is nothing to debug in a full disk.
 */
export function fsErrorLine(e: unknown): string | null {
  const reason = fsReason(e);
  if (reason === null) return null;
  const { path, dest, syscall } = e as NodeJS.ErrnoException & { dest?: string };
  const where = dest ?? path;
  return where ? `${where}: cannot ${syscall} (${reason})` : `${syscall}: ${reason}`;
}
