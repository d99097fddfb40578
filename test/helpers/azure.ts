// Shared wiring for the Azure tests: the ARM twin over real HTTPS, the unchanged SDK clients trusting the twin's CA,
// a recording credential, and a raw HTTPS client for ARM-level requests the daemon itself must never make.
import { request } from "node:https";
import type { AccessToken, TokenCredential } from "@azure/core-auth";
import { type AzureClients, createAzureClients, DedicatedHsmGateway } from "../../src/azure/index.ts";
import { type ArmTwin, type ArmTwinOptions, startArmTwin } from "../../src/sim/arm/index.ts";

export const SUB = "00000000-1111-2222-3333-444444444444";
export const RG = "rg-hsm-weu";
export const LUNA_ID = `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.HardwareSecurityModules/dedicatedHSMs/luna-weu-1`;
export const PAYSHIELD_ID = `/subscriptions/${SUB}/resourceGroups/rg-pay/providers/Microsoft.HardwareSecurityModules/dedicatedHSMs/pay-1`;

export interface RecordingCredential extends TokenCredential {
  scopes: string[][];
}

export function recordingCredential(): RecordingCredential {
  const scopes: string[][] = [];
  return {
    scopes,
    getToken: async (s: string | string[]): Promise<AccessToken> => {
      scopes.push(Array.isArray(s) ? s : [s]);
      return { token: "test-token", expiresOnTimestamp: Date.now() + 3_600_000 };
    },
  };
}

/** A twin with one Luna HSM (zeroized flag controlled by the test) and one payShield HSM. */
export async function startTestTwin(
  zeroized: { value: boolean },
  extra: Partial<ArmTwinOptions> = {},
): Promise<ArmTwin> {
  return startArmTwin({
    subscriptionId: SUB,
    resourceGroups: [RG, "rg-pay", "rg-empty"],
    hsms: [
      { resourceId: LUNA_ID, location: "westeurope", zeroized: () => zeroized.value, privateIp: "10.0.2.4" },
      {
        resourceId: PAYSHIELD_ID,
        location: "westeurope",
        sku: "payShield10K_LMK1_CPS60",
        zeroized: () => false,
      },
    ],
    asyncPolls: 2,
    ...extra,
  });
}

export function clientsFor(
  twin: ArmTwin,
  opts: { retries?: boolean; credential?: TokenCredential; pollIntervalMs?: number } = {},
): AzureClients {
  return createAzureClients({
    subscriptionId: SUB,
    endpoint: twin.endpoint,
    tokenScope: "https://management.azure.com/.default",
    pollIntervalMs: opts.pollIntervalMs ?? 2,
    credential: opts.credential ?? recordingCredential(),
    tls: { ca: twin.caPem },
    ...(opts.retries ? {} : { retryOptions: { maxRetries: 0 } }),
  });
}

export function gatewayFor(twin: ArmTwin, opts: Parameters<typeof clientsFor>[1] = {}): DedicatedHsmGateway {
  return new DedicatedHsmGateway(clientsFor(twin, opts));
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One raw HTTPS request to the twin (test-only: what a careless operator's `az` call would send). */
export function rawRequest(
  twin: ArmTwin,
  method: string,
  pathOrUrl: string,
  opts: { token?: string | null } = {},
): Promise<RawResponse> {
  // Host and port always come from the twin: `new URL("//subscriptions/…", base)` would read a host from the path.
  const base = new URL(twin.endpoint);
  const url = pathOrUrl.startsWith("https:") ? new URL(pathOrUrl) : undefined;
  const headers: Record<string, string> = {};
  if (opts.token !== null) headers.authorization = `Bearer ${opts.token ?? "raw-token"}`;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: base.hostname,
        port: base.port,
        // keep the path verbatim (a leading `//` must reach the server as sent)
        path: url ? url.pathname + url.search : pathOrUrl,
        method,
        headers,
        ca: twin.caPem,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          body += c;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}
