// Child process of test/cache-resume.test.ts: builds the test's cache in argv[2] with a slow
// deterministic fake teacher, printing a line per scored batch so the test can kill it mid-work.
import { buildCache } from "../../src/cache/index.js";
import { RESUME_CACHE } from "./cache.js";

const o = RESUME_CACHE.options(process.argv[2], 10);
await buildCache({
  ...o,
  score: async (x, shape) => {
    const s = await o.score(x, shape);
    process.stdout.write(`scored ${shape[0]} windows\n`);
    return s;
  },
});
process.stdout.write("done\n");
