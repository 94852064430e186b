// Preloaded into a CLI child process by the reliability tests (NODE_OPTIONS=--import) to make
// file writes fail as a full disk or a denied permission would, without needing either: the
// tests run as root, where chmod denies nothing, and filling a disk is not something a test
// should do. DISTILL_TEST_FAULT is the errno code (ENOSPC, EACCES), DISTILL_TEST_FAULT_PATH a
// substring of the paths whose writes fail.
import fs from "node:fs";
import { syncBuiltinESMExports } from "node:module";

const code = process.env.DISTILL_TEST_FAULT;
const match = process.env.DISTILL_TEST_FAULT_PATH;
if (code && match) {
  const wrap = (name, syscall) => {
    const orig = fs[name];
    fs[name] = function (path, ...rest) {
      if (typeof path === "string" && path.includes(match)) {
        const e = new Error(`${code}: injected by the test, ${syscall} '${path}'`);
        Object.assign(e, { code, syscall, path });
        throw e;
      }
      return orig.call(this, path, ...rest);
    };
  };
  wrap("writeFileSync", "open");
  wrap("appendFileSync", "open");
  wrap("mkdirSync", "mkdir");
  syncBuiltinESMExports();
}
