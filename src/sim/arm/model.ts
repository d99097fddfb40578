// Over 400 lines: the rules of deprovisioning as ARM applies them (what it refuses, what it orphans) are meant to
//  read in one place, as said below.
// The ARM twin's state: resource groups, Dedicated HSM resources, other resources, and the long-running
// operations that delete them. No HTTP here: `server.ts` maps requests onto these methods, so the rules of
// deprovisioning (what ARM refuses, what it orphans) read in one place.
//
// Rules reproduced (reference/azure.md §6, Microsoft's "HSM Deprovisioning" troubleshooting page):
// - an HSM resource cannot be deleted unless its appliance is zeroized. Azure documents the rule but not the wire
//   shape of the refusal; the twin's default is the ASYNC shape (DELETE accepted with 202, the operation then ends
//   `Failed` with `HsmNotZeroized`), because the resource provider can only learn the device's state from the stamp,
//   after it has accepted the request. The synchronous shape (`409 Conflict` on the DELETE itself) is available
//   with `notZeroizedRefusal: "sync"` or the `refuse-not-zeroized` fault. A daemon must survive both.
// - deleting a resource group that still holds an HSM removes the group but NOT the HSM: the HSM becomes orphaned,
//   still listed in the subscription and still billed, and every request under its old group now answers
//   `404 ResourceGroupNotFound` (which is not proof that the HSM is gone).

export const HSM_API_VERSION = "2021-11-30";
/** api-versions the twin accepts on resource-group and generic-resource routes (arm-resources 7.x sends 2025-04-01). */
export const RESOURCES_API_VERSIONS: readonly string[] = [
  "2025-04-01",
  "2024-11-01",
  "2024-03-01",
  "2021-04-01",
];
export const HSM_RESOURCE_TYPE = "Microsoft.HardwareSecurityModules/dedicatedHSMs";
export const LUNA_SKU = "SafeNet Luna Network HSM A790";
export const NOT_ZEROIZED_CODE = "HsmNotZeroized";
export const NOT_ZEROIZED_MESSAGE =
  "The Dedicated HSM cannot be deleted unless the HSM is in a zeroized state. Zeroize the HSM and retry the delete.";

export interface ArmTwinHsmSpec {
  resourceId: string;
  location: string;
  /** Default: the Luna 7 SKU. Payment HSMs (payShield…) share the resource type. */
  sku?: string;
  /** Linked to the appliance twin: asked at the moment the delete would release the device. */
  zeroized: () => boolean;
  /** Default: 10.0.2.<n>. */
  privateIp?: string;
}

export interface ArmTwinOtherResource {
  resourceGroup: string;
  /** e.g. "Microsoft.Network/virtualNetworks" */
  type: string;
  name: string;
  location?: string;
}

export type RefusalShape = "async" | "sync";

export type ArmFault =
  /** The next DELETE of this kind fails: `async` = 202 then `Failed`, `sync` = an error status on the DELETE itself. */
  | {
      kind: "fail-next-delete";
      on?: "hsm" | "resource-group";
      shape: RefusalShape;
      code?: string;
      message?: string;
      /** Only for `sync`; default 500. */
      statusCode?: number;
    }
  /** The next `requests` requests (any route) answer 429 with this Retry-After. */
  | { kind: "throttle"; requests: number; retryAfterSeconds: number }
  /**
   * Every request waits, and is then answered as usual, until the faults are cleared: an ARM that is slow to answer,
   * for exactly as long as a test needs (it awaits `heldRequests`, then clears).
   */
  | { kind: "hold" }
  /** Every status poll is answered only after `delayMs`. */
  | { kind: "slow-polls"; delayMs: number }
  /** Switches the shape in which a delete of a non-zeroized HSM is refused. */
  | { kind: "refuse-not-zeroized"; shape: RefusalShape }
  /** The generic `resources` list omits Dedicated HSMs (the portal calls it a hidden type): only the typed list sees them. */
  | { kind: "hide-hsms-from-generic-list" };

export interface HsmState {
  resourceId: string;
  /** A GET of the resource answers 200. */
  exists: boolean;
  /** The resource was really deleted (a GET answers 404 ResourceNotFound; billing stopped). */
  deleted: boolean;
  /** Its resource group was deleted around it: unreachable under its id, yet still listed and billed. */
  orphaned: boolean;
  billed: boolean;
  provisioningState: string;
  statusMessage: string;
  resourceGroupExists: boolean;
}

export class ArmError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ArmError";
  }
}

interface HsmRecord {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  location: string;
  sku: string;
  zeroized: () => boolean;
  privateIp: string;
  provisioningState: string;
  statusMessage: string;
  deleted: boolean;
  orphaned: boolean;
}

interface GroupRecord {
  name: string;
  location: string;
  provisioningState: "Succeeded" | "Deleting";
}

type OperationOutcome = { status: "Succeeded" } | { status: "Failed"; code: string; message: string };

export interface Operation {
  id: string;
  kind: "hsm-delete" | "group-delete";
  /** HSM key or resource-group key. */
  target: string;
  location: string;
  pollsLeft: number;
  /** Decided in advance by a fault; otherwise decided when the operation completes. */
  forcedFailure?: { code: string; message: string };
  /** Set when the operation completes; later polls repeat it. */
  outcome?: OperationOutcome;
}

const FUNCTIONAL = "DedicatedHsm device is functional.";

/** Another provider's resources in the twin's groups (the Key Vault twin): listed generically, affected by group deletes. */
export interface ArmResourceProvider {
  genericResources(resourceGroup: string): { id: string; name: string; type: string; location: string }[];
  groupDeleted(resourceGroup: string): void;
}

export class ArmModel {
  readonly providers: ArmResourceProvider[] = [];
  private readonly hsms = new Map<string, HsmRecord>();
  private readonly groups = new Map<string, GroupRecord>();
  private readonly others: ArmTwinOtherResource[] = [];
  private readonly operations = new Map<string, Operation>();
  private faults: ArmFault[] = [];
  private hold: { released: Promise<void>; release: () => void; waiting: number } | undefined;
  private opCounter = 0;

  constructor(
    readonly subscriptionId: string,
    private readonly asyncPolls: number,
    private notZeroizedRefusal: RefusalShape,
  ) {}

  addGroup(name: string, location = "westeurope"): void {
    if (!this.groups.has(key(name)))
      this.groups.set(key(name), { name, location, provisioningState: "Succeeded" });
  }

  addHsm(spec: ArmTwinHsmSpec, index: number): void {
    const parts = parseHsmId(spec.resourceId);
    if (!parts) throw new Error(`ARM twin: not a dedicatedHSMs resource id: ${spec.resourceId}`);
    if (key(parts.subscriptionId) !== key(this.subscriptionId))
      throw new Error(`ARM twin: ${spec.resourceId} is not in subscription ${this.subscriptionId}`);
    this.addGroup(parts.resourceGroup, spec.location);
    this.hsms.set(hsmKey(parts.resourceGroup, parts.name), {
      ...parts,
      location: spec.location,
      sku: spec.sku ?? LUNA_SKU,
      zeroized: spec.zeroized,
      privateIp: spec.privateIp ?? `10.0.2.${4 + index}`,
      provisioningState: "Succeeded",
      statusMessage: FUNCTIONAL,
      deleted: false,
      orphaned: false,
    });
  }

  addOther(resource: ArmTwinOtherResource): void {
    this.addGroup(resource.resourceGroup, resource.location);
    this.others.push(resource);
  }

  // ---- faults ----

  setFault(fault: ArmFault): void {
    if (fault.kind === "hold") {
      if (!this.hold) {
        let release = () => {};
        const released = new Promise<void>((r) => {
          release = r;
        });
        this.hold = { released, release, waiting: 0 };
      }
      return;
    }
    if (fault.kind === "refuse-not-zeroized") {
      this.notZeroizedRefusal = fault.shape;
      return;
    }
    this.faults.push(fault.kind === "throttle" ? { ...fault } : fault);
  }

  clearFaults(): void {
    this.faults = [];
    this.hold?.release();
    this.hold = undefined;
  }

  /** Resolves once no hold fault keeps requests back (at once when there is none). */
  async waitWhileHeld(): Promise<void> {
    const h = this.hold;
    if (!h) return;
    h.waiting += 1;
    try {
      await h.released;
    } finally {
      h.waiting -= 1;
    }
  }

  /** Requests a hold fault keeps back right now. */
  heldRequests(): number {
    return this.hold?.waiting ?? 0;
  }

  /** Consumes one throttled request if a throttle fault is active; returns its Retry-After. */
  takeThrottle(): number | undefined {
    const f = this.faults.find((x) => x.kind === "throttle");
    if (f?.kind !== "throttle") return undefined;
    f.requests -= 1;
    if (f.requests <= 0) this.faults = this.faults.filter((x) => x !== f);
    return f.retryAfterSeconds;
  }

  pollDelayMs(): number {
    const f = this.faults.find((x) => x.kind === "slow-polls");
    return f?.kind === "slow-polls" ? f.delayMs : 0;
  }

  private hideHsmsFromGenericList(): boolean {
    return this.faults.some((x) => x.kind === "hide-hsms-from-generic-list");
  }

  private takeDeleteFailure(on: "hsm" | "resource-group") {
    const f = this.faults.find((x) => x.kind === "fail-next-delete" && (x.on ?? "hsm") === on);
    if (f?.kind !== "fail-next-delete") return undefined;
    this.faults = this.faults.filter((x) => x !== f);
    return f;
  }

  // ---- reads ----

  checkSubscription(subscriptionId: string): void {
    if (key(subscriptionId) !== key(this.subscriptionId))
      throw new ArmError(
        404,
        "SubscriptionNotFound",
        `The subscription '${subscriptionId}' could not be found.`,
      );
  }

  getGroup(rg: string): GroupRecord {
    const g = this.groups.get(key(rg));
    if (!g) throw new ArmError(404, "ResourceGroupNotFound", `Resource group '${rg}' could not be found.`);
    return g;
  }

  /** GET of one HSM: the group is checked first, as ARM's front door does. */
  getHsm(rg: string, name: string): HsmRecord {
    this.getGroup(rg);
    const h = this.hsms.get(hsmKey(rg, name));
    if (!h || h.deleted || h.orphaned)
      throw new ArmError(
        404,
        "ResourceNotFound",
        `The Resource '${HSM_RESOURCE_TYPE}/${name}' under resource group '${rg}' was not found.`,
      );
    return h;
  }

  listHsmsInGroup(rg: string): HsmRecord[] {
    this.getGroup(rg);
    return [...this.hsms.values()].filter(
      (h) => key(h.resourceGroup) === key(rg) && !h.deleted && !h.orphaned,
    );
  }

  /** The subscription-wide list still shows orphaned HSMs: they exist and are billed. */
  listHsmsInSubscription(): HsmRecord[] {
    return [...this.hsms.values()].filter((h) => !h.deleted);
  }

  listGenericInGroup(
    rg: string,
  ): { id: string; name: string; type: string; location: string; sku?: string }[] {
    this.getGroup(rg);
    const hsms = this.hideHsmsFromGenericList()
      ? []
      : this.listHsmsInGroup(rg).map((h) => ({
          id: hsmId(h),
          name: h.name,
          type: HSM_RESOURCE_TYPE,
          location: h.location,
          sku: h.sku,
        }));
    const others = this.others
      .filter((o) => key(o.resourceGroup) === key(rg))
      .map((o) => ({
        id: `/subscriptions/${this.subscriptionId}/resourceGroups/${o.resourceGroup}/providers/${o.type}/${o.name}`,
        name: o.name,
        type: o.type,
        location: o.location ?? this.getGroup(rg).location,
      }));
    return [...hsms, ...others, ...this.providers.flatMap((p) => p.genericResources(rg))];
  }

  hsmState(resourceId: string): HsmState {
    const parts = parseHsmId(resourceId);
    const h = parts ? this.hsms.get(hsmKey(parts.resourceGroup, parts.name)) : undefined;
    if (!h || !parts) throw new Error(`ARM twin: unknown HSM ${resourceId}`);
    const groupExists = this.groups.has(key(h.resourceGroup));
    return {
      resourceId: hsmId(h),
      exists: groupExists && !h.deleted && !h.orphaned,
      deleted: h.deleted,
      orphaned: h.orphaned,
      billed: !h.deleted,
      provisioningState: h.provisioningState,
      statusMessage: h.statusMessage,
      resourceGroupExists: groupExists,
    };
  }

  // ---- deletes (long-running) ----

  /** DELETE of an HSM. Returns the operation to poll, or undefined when there is nothing to delete (204). */
  deleteHsm(rg: string, name: string): Operation | undefined {
    this.getGroup(rg);
    const h = this.hsms.get(hsmKey(rg, name));
    if (!h || h.deleted || h.orphaned) return undefined;
    const running = this.runningOperationFor("hsm-delete", hsmKey(rg, name));
    if (running) return running;

    const fault = this.takeDeleteFailure("hsm");
    if (fault?.shape === "sync")
      throw new ArmError(
        fault.statusCode ?? 500,
        fault.code ?? "InternalServerError",
        fault.message ?? "Injected failure.",
      );
    if (this.notZeroizedRefusal === "sync" && !h.zeroized())
      throw new ArmError(409, NOT_ZEROIZED_CODE, NOT_ZEROIZED_MESSAGE);

    h.provisioningState = "Deleting";
    h.statusMessage = "DedicatedHsm device is being deleted.";
    return this.startOperation("hsm-delete", hsmKey(rg, name), h.location, fault);
  }

  /** DELETE of a resource group. */
  deleteGroup(rg: string): Operation {
    const g = this.getGroup(rg);
    const running = this.runningOperationFor("group-delete", key(rg));
    if (running) return running;
    const fault = this.takeDeleteFailure("resource-group");
    if (fault?.shape === "sync")
      throw new ArmError(
        fault.statusCode ?? 500,
        fault.code ?? "InternalServerError",
        fault.message ?? "Injected failure.",
      );
    g.provisioningState = "Deleting";
    return this.startOperation("group-delete", key(rg), g.location, fault);
  }

  getOperation(id: string): Operation {
    const op = this.operations.get(id);
    if (!op) throw new ArmError(404, "OperationNotFound", `The operation '${id}' could not be found.`);
    return op;
  }

  /** One status poll: advances the operation and, on its last poll, applies its effect. */
  poll(op: Operation): { running: true } | OperationOutcome {
    if (op.outcome) return op.outcome;
    if (op.pollsLeft > 0) {
      op.pollsLeft -= 1;
      return { running: true };
    }
    op.outcome = op.kind === "hsm-delete" ? this.completeHsmDelete(op) : this.completeGroupDelete(op);
    return op.outcome;
  }

  private completeHsmDelete(op: Operation): OperationOutcome {
    const h = this.hsms.get(op.target)!;
    if (op.forcedFailure) {
      h.provisioningState = "Failed";
      h.statusMessage = op.forcedFailure.message;
      return { status: "Failed", ...op.forcedFailure };
    }
    if (!h.zeroized()) {
      // Refused: nothing was released, the device keeps running.
      h.provisioningState = "Succeeded";
      h.statusMessage = FUNCTIONAL;
      return { status: "Failed", code: NOT_ZEROIZED_CODE, message: NOT_ZEROIZED_MESSAGE };
    }
    h.deleted = true;
    h.provisioningState = "Deleted";
    h.statusMessage = "";
    return { status: "Succeeded" };
  }

  private completeGroupDelete(op: Operation): OperationOutcome {
    const g = this.groups.get(op.target)!;
    if (op.forcedFailure) {
      g.provisioningState = "Succeeded";
      return { status: "Failed", ...op.forcedFailure };
    }
    this.groups.delete(op.target);
    for (const h of this.hsms.values())
      if (key(h.resourceGroup) === op.target && !h.deleted) h.orphaned = true; // the documented trap
    for (let i = this.others.length - 1; i >= 0; i--)
      if (key(this.others[i]!.resourceGroup) === op.target) this.others.splice(i, 1);
    for (const p of this.providers) p.groupDeleted(g.name);
    return { status: "Succeeded" };
  }

  private runningOperationFor(kind: Operation["kind"], target: string): Operation | undefined {
    return [...this.operations.values()].find((o) => o.kind === kind && o.target === target && !o.outcome);
  }

  private startOperation(
    kind: Operation["kind"],
    target: string,
    location: string,
    fault: { code?: string; message?: string } | undefined,
  ): Operation {
    this.opCounter += 1;
    const id = `${kind}-${this.opCounter.toString().padStart(4, "0")}-${Math.random().toString(16).slice(2, 10)}`;
    const op: Operation = { id, kind, target, location, pollsLeft: this.asyncPolls };
    if (fault)
      op.forcedFailure = {
        code: fault.code ?? "InternalServerError",
        message: fault.message ?? "Injected failure.",
      };
    this.operations.set(id, op);
    return op;
  }

  // ---- bodies ----

  hsmBody(h: HsmRecord): Record<string, unknown> {
    const sub = h.subscriptionId;
    const rg = h.resourceGroup;
    return {
      id: hsmId(h),
      name: h.name,
      type: HSM_RESOURCE_TYPE,
      location: h.location,
      sku: { name: h.sku },
      zones: ["1"],
      tags: {},
      properties: {
        networkProfile: {
          subnet: {
            id: `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.Network/virtualNetworks/${rg}-vnet/subnets/hsmsubnet`,
          },
          networkInterfaces: [
            {
              id: `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.Network/networkInterfaces/${h.name}_HSMnic`,
              privateIpAddress: h.privateIp,
            },
          ],
        },
        stampId: "stamp1",
        provisioningState: h.provisioningState,
        statusMessage: h.statusMessage,
      },
    };
  }

  groupBody(g: GroupRecord): Record<string, unknown> {
    return {
      id: `/subscriptions/${this.subscriptionId}/resourceGroups/${g.name}`,
      name: g.name,
      type: "Microsoft.Resources/resourceGroups",
      location: g.location,
      properties: { provisioningState: g.provisioningState },
    };
  }
}

function parseHsmId(id: string): { subscriptionId: string; resourceGroup: string; name: string } | undefined {
  const m =
    /^\/*subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.HardwareSecurityModules\/dedicatedHSMs\/([^/]+)$/i.exec(
      id,
    );
  if (!m) return undefined;
  return { subscriptionId: m[1]!, resourceGroup: m[2]!, name: m[3]! };
}

function hsmId(h: { subscriptionId: string; resourceGroup: string; name: string }): string {
  return `/subscriptions/${h.subscriptionId}/resourceGroups/${h.resourceGroup}/providers/${HSM_RESOURCE_TYPE}/${h.name}`;
}

/** ARM names are case-insensitive. */
function key(s: string): string {
  return s.toLowerCase();
}

function hsmKey(rg: string, name: string): string {
  return `${key(rg)}/${key(name)}`;
}
