// An HTTP proxy (node:http) in front of one server that injects faults on a seeded schedule, so
// tests can show that a client survives what real inference servers and networks do: dropped
// connections, 429 (with Retry-After), 500, a 200 whose JSON body is cut off, and a reply that
// stalls past the client's timeout. Request n (in arrival order) gets the n-th fault of the
// schedule: the first ones are every kind once, in a seeded order, so a run of a few requests
// sees each; after that each is drawn with `rate` (else the request passes through).
import { createServer, request, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { Rng, deriveSeed } from "../../src/util/rng.js";

export const FAULTS = ["drop", "429", "500", "malformed", "stall"] as const;
export type Fault = (typeof FAULTS)[number] | "pass";

export interface FaultProxyOptions {
  seed: number;
  /** Chance that a request after the first FAULTS.length ones gets a fault (default 0.3). */
  rate?: number;
  /** How long a stalled request is held before its connection is dropped (default 2000 ms). */
  stallMs?: number;
  /** The Retry-After header of the 429s (default "0"). */
  retryAfter?: string;
  /** Faults only on paths this accepts (default: every path). */
  paths?: (path: string) => boolean;
  /** False: everything passes (uncounted) until arm() (default true). */
  armed?: boolean;
}

export interface FaultProxy {
  url: string;
  /** Scheduled requests per fault kind (and "pass"). */
  counts: Record<Fault, number>;
  /** Stalled requests whose client closed the connection before the proxy dropped it. */
  abandoned: { count: number };
  /** The fault of request n, as the schedule gives it. */
  schedule(n: number): Fault;
  /** Starts the schedule (with request 0) on a proxy started with `armed: false`. */
  arm(): void;
  close(): Promise<void>;
}

export async function startFaultProxy(target: string, o: FaultProxyOptions): Promise<FaultProxy> {
  const rate = o.rate ?? 0.3;
  const stallMs = o.stallMs ?? 2000;
  const first = new Rng(deriveSeed(o.seed, "fault-order")).permutation(FAULTS.length);
  const schedule = (n: number): Fault => {
    if (n < FAULTS.length) return FAULTS[first[n]];
    const r = new Rng(deriveSeed(o.seed, "fault", n));
    return r.nextU32() / 2 ** 32 < rate ? FAULTS[r.int(FAULTS.length)] : "pass";
  };
  const counts = Object.fromEntries([...FAULTS, "pass"].map((f) => [f, 0])) as Record<Fault, number>;
  const base = new URL(target);
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const abandoned = { count: 0 };
  let n = 0;
  let armed = o.armed ?? true;

  /** The target's reply to this request, whole. */
  const forward = (req: IncomingMessage, body: Buffer) =>
    new Promise<{ status: number; headers: IncomingMessage["headers"]; body: Buffer }>((resolve, reject) => {
      const up = request(
        { host: base.hostname, port: base.port, method: req.method, path: req.url, headers: { ...req.headers, host: base.host, connection: "close" } },
        (res) => {
          const parts: Buffer[] = [];
          res.on("data", (c: Buffer) => parts.push(c));
          res.on("end", () => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(parts) }));
          res.on("error", reject);
        },
      );
      up.on("error", reject);
      up.end(body);
    });

  const json = (res: ServerResponse, status: number, doc: unknown, extra: Record<string, string> = {}) => {
    const text = JSON.stringify(doc);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...extra });
    res.end(text);
  };

  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on("data", (c: Buffer) => parts.push(c));
    req.on("end", () => {
      const body = Buffer.concat(parts);
      const scheduled = armed && (!o.paths || o.paths(req.url ?? "/"));
      const fault: Fault = scheduled ? schedule(n++) : "pass";
      if (scheduled) counts[fault]++;
      const reply = async () => {
        switch (fault) {
          case "drop":
            req.socket.destroy();
            return;
          case "429":
            return json(res, 429, { object: "error", message: "rate limited by the fault proxy", code: 429 }, { "retry-after": o.retryAfter ?? "0" });
          case "500":
            return json(res, 500, { object: "error", message: "internal error injected by the fault proxy", code: 500 });
          case "stall": {
            const t = setTimeout(() => {
              timers.delete(t);
              req.socket.destroy();
            }, stallMs);
            timers.add(t);
            // The client gave up first (its timeout), not this proxy.
            req.socket.once("close", () => {
              if (timers.has(t)) abandoned.count++;
            });
            return;
          }
          case "malformed": {
            const up = await forward(req, body);
            const cut = up.body.subarray(0, Math.floor(up.body.length / 2));
            res.writeHead(200, { "content-type": "application/json", "content-length": cut.length });
            res.end(cut);
            return;
          }
          case "pass": {
            const up = await forward(req, body);
            const headers = { ...up.headers };
            delete headers["transfer-encoding"];
            delete headers.connection;
            res.writeHead(up.status, { ...headers, "content-length": up.body.length });
            res.end(up.body);
            return;
          }
        }
      };
      reply().catch((e: Error) => {
        if (!res.headersSent) json(res, 502, { object: "error", message: `fault proxy: target failed (${e.message})`, code: 502 });
        else res.destroy();
      });
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    abandoned,
    schedule,
    arm: () => {
      armed = true;
    },
    close: async () => {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
