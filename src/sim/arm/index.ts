// The digital twin's Azure Resource Manager: an HTTPS server with a generated CA that the unchanged Azure SDK
// clients talk to. Clients trust it through their per-client TLS option (`tlsOptions: { ca: caPem }`, which
// core-rest-pipeline turns into the https.Agent's CA list — see `createAzureClients({ tls: { ca } })`), never by
// turning certificate checks off.
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import {
  type ArmFault,
  ArmModel,
  type ArmResourceProvider,
  type ArmTwinHsmSpec,
  type ArmTwinOtherResource,
  type HsmState,
  type RefusalShape,
} from "./model.ts";
import { type ArmExtension, ArmFrontDoor, type ArmRequestLogEntry } from "./server.ts";
import { generateArmTwinTls } from "./tls.ts";

export type { ArmResourceProvider } from "./model.ts";
export {
  HSM_API_VERSION,
  HSM_RESOURCE_TYPE,
  LUNA_SKU,
  NOT_ZEROIZED_CODE,
  NOT_ZEROIZED_MESSAGE,
  RESOURCES_API_VERSIONS,
} from "./model.ts";
export type { ArmExtension, Reply as ArmReply } from "./server.ts";
export type { ArmFault, ArmRequestLogEntry, ArmTwinHsmSpec, ArmTwinOtherResource, HsmState, RefusalShape };

export interface ArmTwinOptions {
  subscriptionId: string;
  hsms: ArmTwinHsmSpec[];
  /** Groups that exist at start (each HSM's group is added anyway). */
  resourceGroups: string[];
  /** Other resources (VNets, gateways…) living in the groups; listed by the generic `resources` list. */
  otherResources?: ArmTwinOtherResource[];
  /** `InProgress` answers before an operation completes. Default 2. */
  asyncPolls?: number;
  /** How a delete of a non-zeroized HSM is refused. Default "async" (202, then the operation fails). */
  notZeroizedRefusal?: RefusalShape;
  /** Shorthand for `setFault({ kind: "fail-next-delete", ... })` at start. */
  failNextDelete?: Omit<Extract<ArmFault, { kind: "fail-next-delete" }>, "kind">;
  /** Interface to bind; default 127.0.0.1 (port is always ephemeral). */
  host?: string;
  /**
   * Other resource providers on the same ARM (the Key Vault twin): their routes, their resources in the generic
   * list, and what a resource-group delete does to them. `groups` are created at start.
   */
  providers?: {
    routes: ArmExtension;
    resources: ArmResourceProvider;
    groups: string[];
  }[];
}

export interface ArmTwin {
  /** `https://127.0.0.1:<port>`: pass as the clients' `endpoint`. */
  endpoint: string;
  /** PEM of the CA that signed the twin's certificate: pass as `tls: { ca }`. */
  caPem: string;
  subscriptionId: string;
  /** Every request, in the order answered. */
  requestLog: ArmRequestLogEntry[];
  setFault(fault: ArmFault): void;
  /** Clears every fault (a hold lets its requests go). */
  clearFaults(): void;
  /** Requests a `hold` fault keeps back right now. */
  heldRequests(): number;
  hsmState(resourceId: string): HsmState;
  /** Someone creates a Dedicated HSM in the subscription meanwhile (its group is created if missing). */
  addHsm(spec: ArmTwinHsmSpec): void;
  /** Someone creates another resource (a VNet, a gateway…) in a group meanwhile. */
  addResource(resource: ArmTwinOtherResource): void;
  /** Whether a resource group exists right now. */
  groupExists(name: string): boolean;
  stop(): Promise<void>;
}

export async function startArmTwin(options: ArmTwinOptions): Promise<ArmTwin> {
  const model = new ArmModel(
    options.subscriptionId,
    options.asyncPolls ?? 2,
    options.notZeroizedRefusal ?? "async",
  );
  for (const rg of options.resourceGroups) model.addGroup(rg);
  options.hsms.forEach((h, i) => {
    model.addHsm(h, i);
  });
  for (const o of options.otherResources ?? []) model.addOther(o);
  let added = 0;
  for (const p of options.providers ?? []) {
    for (const g of p.groups) model.addGroup(g);
    model.providers.push(p.resources);
  }
  if (options.failNextDelete) model.setFault({ kind: "fail-next-delete", ...options.failNextDelete });

  const tls = await generateArmTwinTls();
  const frontDoor = new ArmFrontDoor(model);
  for (const p of options.providers ?? []) frontDoor.extensions.push(p.routes);
  const server: Server = createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
    frontDoor.handle(req, res).catch((e: unknown) => {
      // Only reachable if writing the answer failed (client gone); nothing left to tell anyone.
      res.destroy(e as Error);
    });
  });
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const endpoint = `https://${host.includes(":") ? `[${host}]` : host}:${port}`;
  frontDoor.base = endpoint;

  return {
    endpoint,
    caPem: tls.caPem,
    subscriptionId: options.subscriptionId,
    requestLog: frontDoor.requestLog,
    setFault: (fault) => model.setFault(fault),
    clearFaults: () => model.clearFaults(),
    heldRequests: () => model.heldRequests(),
    hsmState: (id) => model.hsmState(id),
    addHsm: (spec) => model.addHsm(spec, options.hsms.length + ++added),
    addResource: (resource) => model.addOther(resource),
    groupExists: (name) => {
      try {
        model.getGroup(name);
        return true;
      } catch {
        return false;
      }
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
