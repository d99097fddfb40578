// A daemon serving the HTTPS API for tests: the demo fleet (no twin: nothing here needs devices to answer) with an
// identity section pointing at a real OIDC provider on loopback, its own data dir and embedded Redis.
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { type ApiClient, createApiClient } from "../../src/cli/api-client.ts";
import { identitySchema } from "../../src/config/identity-schema.ts";
import { loadFleet } from "../../src/config/load.ts";
import type { Fleet } from "../../src/config/schema.ts";
import { type Daemon, startDaemon } from "../../src/daemon/daemon.ts";
import { startOidcProvider, type TestClient, type TestOidcProvider } from "./oidc-provider.ts";
import { tempDir } from "./ssh-signing.ts";

export const DEMO_FLEET = join(import.meta.dirname, "../../config/demo.yaml");

export interface ApiHarness {
  daemon: Daemon;
  idp: TestOidcProvider;
  dataDir: string;
  fleet: Fleet;
  /** A client with the given bearer token (or none). */
  client(token?: string): ApiClient;
  stop(): Promise<void>;
}

export async function startApiHarness(opts: {
  clients: TestClient[];
  identity?: (idp: TestOidcProvider) => Record<string, unknown>;
  fleet?: Fleet;
}): Promise<ApiHarness> {
  const dir = tempDir("lf-api-");
  const dataDir = join(dir, "data");
  const idp = await startOidcProvider(dir, opts.clients);
  const base = opts.fleet ?? loadFleet(DEMO_FLEET);
  const identity = identitySchema.parse({
    ...(opts.identity?.(idp) ?? {}),
    oidc: {
      issuer: idp.issuer,
      audience: idp.audience,
      principalClaim: "preferred_username",
      caFile: idp.caFile,
    },
  });
  const fleet: Fleet = {
    ...base,
    identity: {
      ...identity,
      principals: identity.principals.length ? identity.principals : base.identity.principals,
    },
  };
  const daemon = await startDaemon({
    fleet,
    dataDir,
    httpPort: null,
    schedules: false,
    concurrency: 2,
    api: { port: 0 },
  });
  const ca = readFileSync(join(dataDir, "api-cert.pem"), "utf8");
  return {
    daemon,
    idp,
    dataDir,
    fleet,
    client: (token) => createApiClient({ url: daemon.api!.url, token, ca }),
    async stop() {
      await daemon.stop();
      await idp.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
