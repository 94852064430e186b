// `distill serve MODEL`: starts the server, prints one line with its address and model, and
// serves until Ctrl-C or SIGTERM, then closes it (requests in flight finish first).
import { startServer, type ServeOptions } from "./server.js";

export async function serveCommand(model: string, o: ServeOptions): Promise<void> {
  const server = await startServer(model, o);
  console.log(`distill serve: ${server.url} model ${server.model}${o.generateOnly ? " (generate only)" : ""}`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  process.stderr.write(`distill serve: ${signal}, stopping\n`);
  await server.close();
}
