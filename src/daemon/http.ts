// The daemon's local HTTP endpoint: GET /metrics (Prometheus text) and GET /healthz (Redis reachable, worker running).
// Bound to loopback only: it is for the local Prometheus agent and health checks, not for the network.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

export interface HealthReport {
  ok: boolean;
  [k: string]: unknown;
}

export interface DaemonHttp {
  server: Server;
  port: number;
  close(): Promise<void>;
}

export async function startDaemonHttp(opts: {
  port: number;
  host?: string;
  registry: Registry;
  health: () => Promise<HealthReport>;
}): Promise<DaemonHttp> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET") {
      res.writeHead(405, { allow: "GET" }).end();
      return;
    }
    if (path === "/metrics") {
      opts.registry
        .metrics()
        .then((text) => res.writeHead(200, { "content-type": opts.registry.contentType }).end(text))
        .catch((err: Error) => res.writeHead(500).end(`metrics: ${err.message}\n`));
      return;
    }
    if (path === "/healthz") {
      opts
        .health()
        .then((h) =>
          res
            .writeHead(h.ok ? 200 : 503, { "content-type": "application/json" })
            .end(`${JSON.stringify(h)}\n`),
        )
        .catch((err: Error) =>
          res
            .writeHead(503, { "content-type": "application/json" })
            .end(`${JSON.stringify({ ok: false, error: err.message })}\n`),
        );
      return;
    }
    res.writeHead(404).end("not found\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
