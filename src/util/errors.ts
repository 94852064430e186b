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
