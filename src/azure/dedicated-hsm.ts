// The Azure half of deprovisioning, as the runbook needs it: read a Dedicated HSM, delete it (long-running), prove it
// is gone, and delete its resource group only when nothing billable could be orphaned by doing so.
//
// Rules kept here (reference/azure.md §5–6, DESIGN.md "Deprovisioning order"):
// - only a 404 on the HSM itself proves deletion. A 404 whose code says the resource GROUP or subscription is
//   missing (`ResourceGroupNotFound`, `SubscriptionNotFound`) is what an ORPHANED HSM answers: still billed;
// - a failed delete is never taken for "gone": it is followed by a re-read whose state is reported;
// - a resource group is deleted only if, right before, both the typed HSM list and the generic resource list
//   (filtered on the dedicatedHSMs type) are empty. Deleting it otherwise orphans the HSM.
import type { DedicatedHsm } from "@azure/arm-hardwaresecuritymodules";
import type { FullOperationResponse } from "@azure/core-client";
import { isRestError } from "@azure/core-rest-pipeline";
import type { AzureClients } from "./clients.ts";
import {
  AzureOperationError,
  describeFailure,
  type HsmAfterFailure,
  HsmDeleteFailedError,
  HsmNotGoneError,
  InvalidResourceIdError,
  ResourceGroupDeleteRefusedError,
} from "./errors.ts";
import { HSM_RESOURCE_TYPE, type HsmResourceId, LUNA_SKU, parseHsmResourceId } from "./resource-id.ts";

export interface DedicatedHsmInfo {
  id: string;
  name: string;
  resourceGroup: string;
  subscriptionId: string;
  location: string;
  /** `sku.name`, e.g. "SafeNet Luna Network HSM A790" or "payShield10K_LMK1_CPS60". */
  sku: string | undefined;
  /** True only for the Luna 7 SKU: payment HSMs share the resource type and must never get Luna logic. */
  isLuna: boolean;
  provisioningState: string | undefined;
  statusMessage: string | undefined;
  /** Private IP of the HSM's NIC (`networkProfile.networkInterfaces[0].privateIpAddress`). */
  privateIp: string | undefined;
  nicId: string | undefined;
  subnetId: string | undefined;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export interface HsmDeleteResult {
  resourceId: string;
  /** `x-ms-request-id` of every answer: the DELETE, then each poll. */
  requestIds: string[];
}

/** Evidence that an HSM resource no longer exists. */
export interface HsmGoneProof {
  resourceId: string;
  statusCode: 404;
  code: string | undefined;
  requestId: string | undefined;
  checkedAt: string;
}

export interface ResourceGroupHsmScan {
  /** Ids from the typed `dedicatedHsmOperations.listByResourceGroup`. */
  typed: string[];
  /** Ids from the generic `resources.listByResourceGroup` filtered on the dedicatedHSMs type. */
  generic: string[];
}

export interface ResourceGroupDeleteResult {
  resourceGroup: string;
  requestIds: string[];
}

/** 404 codes that mean a parent is missing: the HSM may still exist (orphaned) and be billed. */
const PARENT_MISSING_CODES = new Set(["resourcegroupnotfound", "subscriptionnotfound"]);
const HSM_TYPE_FILTER = `resourceType eq '${HSM_RESOURCE_TYPE}'`;

export class DedicatedHsmGateway {
  constructor(private readonly clients: AzureClients) {}

  private get pollIntervalMs(): number {
    return this.clients.settings.pollIntervalMs;
  }

  /** The HSM, or null when ARM answers 404 for the resource itself. */
  async getHsm(resourceId: string, options: CallOptions = {}): Promise<DedicatedHsmInfo | null> {
    const id = this.parse(resourceId);
    const read = await this.read(id, options);
    if (read.found) return read.hsm;
    if (read.parentMissing)
      throw new AzureOperationError(
        "get-hsm",
        id.id,
        read.failure,
        "its resource group or subscription is missing: the HSM may be orphaned and still billed (contact Microsoft Support)",
      );
    return null;
  }

  /**
   * Deletes the HSM resource and waits for the long-running operation. Resolves when ARM reports success; that is
   * not yet proof of deletion: call `verifyHsmGone` next. On any failure the HSM is re-read and its state reported
   * in an `HsmDeleteFailedError`.
   */
  async deleteHsm(resourceId: string, options: CallOptions = {}): Promise<HsmDeleteResult> {
    const id = this.parse(resourceId);
    const requestIds: string[] = [];
    const onResponse = (raw: FullOperationResponse) => collectRequestId(raw, requestIds);
    try {
      const poller = await this.clients.hsm.dedicatedHsmOperations.beginDelete(id.resourceGroup, id.name, {
        updateIntervalInMs: this.pollIntervalMs,
        ...(options.signal ? { abortSignal: options.signal } : {}),
        onResponse,
      });
      await poller.pollUntilDone(options.signal ? { abortSignal: options.signal } : undefined);
    } catch (e) {
      const failure = describeFailure(e);
      if (failure.kind === "aborted" || options.signal?.aborted)
        throw new AzureOperationError(
          "delete-hsm",
          id.id,
          { ...failure, kind: "aborted" },
          "the delete may still be running in Azure; re-read the HSM before doing anything else",
        );
      if (!failure.requestId && requestIds.length > 0) failure.requestId = requestIds[requestIds.length - 1]!;
      throw new HsmDeleteFailedError(id.id, failure, await this.readAfterFailure(id), requestIds);
    }
    return { resourceId: id.id, requestIds };
  }

  /** Proves deletion by a 404 on the HSM itself; throws `HsmNotGoneError` in every other case. */
  async verifyHsmGone(resourceId: string, options: CallOptions = {}): Promise<HsmGoneProof> {
    const id = this.parse(resourceId);
    let read: ReadResult;
    try {
      read = await this.read(id, options);
    } catch (e) {
      if (e instanceof AzureOperationError)
        throw new HsmNotGoneError(id.id, e.failure, "the check itself failed: deletion is not proven");
      throw e;
    }
    if (read.found)
      throw new HsmNotGoneError(
        id.id,
        { kind: "other", message: "the HSM resource still exists" },
        `provisioningState=${read.hsm.provisioningState ?? "?"}, statusMessage=${JSON.stringify(read.hsm.statusMessage ?? "")}`,
      );
    if (read.parentMissing)
      throw new HsmNotGoneError(
        id.id,
        read.failure,
        "the 404 is for its resource group or subscription, not the HSM: it may be orphaned and still billed",
      );
    return {
      resourceId: id.id,
      statusCode: 404,
      code: read.failure.code,
      requestId: read.failure.requestId,
      checkedAt: new Date().toISOString(),
    };
  }

  /** The typed list of Dedicated HSMs in a resource group (Luna and payment HSMs alike). */
  async listDedicatedHsms(resourceGroup: string, options: CallOptions = {}): Promise<DedicatedHsmInfo[]> {
    const rgId = this.groupId(resourceGroup);
    const out: DedicatedHsmInfo[] = [];
    try {
      for await (const h of this.clients.hsm.dedicatedHsmOperations.listByResourceGroup(
        resourceGroup,
        abortOption(options),
      ))
        out.push(toInfo(h, undefined));
    } catch (e) {
      throw new AzureOperationError("list-hsms", rgId, describeFailure(e));
    }
    return out;
  }

  /** Every Dedicated HSM in the subscription, including orphaned ones whose group is gone. */
  async listDedicatedHsmsInSubscription(options: CallOptions = {}): Promise<DedicatedHsmInfo[]> {
    const subId = `/subscriptions/${this.clients.settings.subscriptionId}`;
    const out: DedicatedHsmInfo[] = [];
    try {
      for await (const h of this.clients.hsm.dedicatedHsmOperations.listBySubscription(abortOption(options)))
        out.push(toInfo(h, undefined));
    } catch (e) {
      throw new AzureOperationError("list-hsms", subId, describeFailure(e));
    }
    return out;
  }

  /** Both views of the HSMs in a group: the typed list and the generic, type-filtered resource list. */
  async scanResourceGroupForDedicatedHsms(
    resourceGroup: string,
    options: CallOptions = {},
  ): Promise<ResourceGroupHsmScan> {
    const typed = (await this.listDedicatedHsms(resourceGroup, options)).map((h) => h.id);
    const generic = (await this.listGenericResources(resourceGroup, HSM_TYPE_FILTER, options)).map(
      (r) => r.id,
    );
    return { typed, generic };
  }

  /**
   * Everything a resource group holds: its Dedicated HSMs (typed and generic lists, merged) and every other resource.
   * What deleting the group would take with it — deprovision's preflight reads it before any approval.
   */
  async resourceGroupContents(
    resourceGroup: string,
    options: CallOptions = {},
  ): Promise<{ resourceGroup: string; hsms: string[]; others: string[] }> {
    const scan = await this.scanResourceGroupForDedicatedHsms(resourceGroup, options);
    const hsms = [...new Set([...scan.typed, ...scan.generic])].sort();
    const lower = new Set(hsms.map((h) => h.toLowerCase()));
    const others = (await this.listGenericResources(resourceGroup, undefined, options))
      .map((r) => r.id)
      .filter((id) => !lower.has(id.toLowerCase()))
      .sort();
    return { resourceGroup, hsms, others };
  }

  /** True unless BOTH the typed list and the generic filtered list are empty. */
  async resourceGroupHoldsDedicatedHsms(resourceGroup: string, options: CallOptions = {}): Promise<boolean> {
    const scan = await this.scanResourceGroupForDedicatedHsms(resourceGroup, options);
    return scan.typed.length > 0 || scan.generic.length > 0;
  }

  /**
   * Deletes a resource group, but only if right before it holds no Dedicated HSM (typed and generic lists both
   * empty) and, unless `allowOtherResources`, nothing else either. A refusal sends no DELETE.
   */
  async deleteResourceGroup(
    resourceGroup: string,
    options: CallOptions & { allowOtherResources?: boolean } = {},
  ): Promise<ResourceGroupDeleteResult> {
    const rgId = this.groupId(resourceGroup);
    const scan = await this.scanResourceGroupForDedicatedHsms(resourceGroup, options);
    const hsmIds = [...new Set([...scan.typed, ...scan.generic])];
    if (hsmIds.length > 0)
      throw new ResourceGroupDeleteRefusedError(
        rgId,
        hsmIds,
        [],
        `the group still holds Dedicated HSM(s) ${hsmIds.join(", ")}; deleting it would orphan them and keep billing. ` +
          "Zeroize and delete each HSM first.",
      );
    const others = (await this.listGenericResources(resourceGroup, undefined, options)).map((r) => r.id);
    if (others.length > 0 && !options.allowOtherResources)
      throw new ResourceGroupDeleteRefusedError(
        rgId,
        [],
        others,
        `the group still holds ${others.length} other resource(s) (${others.join(", ")}); pass allowOtherResources to delete them too`,
      );

    const requestIds: string[] = [];
    try {
      const poller = await this.clients.resources.resourceGroups.beginDelete(resourceGroup, {
        updateIntervalInMs: this.pollIntervalMs,
        ...abortOption(options),
        onResponse: (raw) => collectRequestId(raw, requestIds),
      });
      await poller.pollUntilDone(abortOption(options));
    } catch (e) {
      const failure = describeFailure(e);
      if (!failure.requestId && requestIds.length > 0) failure.requestId = requestIds[requestIds.length - 1]!;
      throw new AzureOperationError("delete-resource-group", rgId, failure);
    }
    return { resourceGroup, requestIds };
  }

  /** Parses and checks that the id is in this client's subscription (a foreign id is refused, not redirected). */
  parse(resourceId: string): HsmResourceId {
    const id = parseHsmResourceId(resourceId);
    if (id.subscriptionId.toLowerCase() !== this.clients.settings.subscriptionId.toLowerCase())
      throw new InvalidResourceIdError(
        resourceId,
        `subscription ${id.subscriptionId} is not the configured subscription ${this.clients.settings.subscriptionId}`,
      );
    return id;
  }

  private groupId(resourceGroup: string): string {
    if (!/^[-\w._()]{1,90}$/.test(resourceGroup) || resourceGroup.endsWith("."))
      throw new InvalidResourceIdError(resourceGroup, "not a valid resource group name");
    return `/subscriptions/${this.clients.settings.subscriptionId}/resourceGroups/${resourceGroup}`;
  }

  private async listGenericResources(
    resourceGroup: string,
    filter: string | undefined,
    options: CallOptions,
  ): Promise<{ id: string; type: string | undefined }[]> {
    const rgId = this.groupId(resourceGroup);
    const out: { id: string; type: string | undefined }[] = [];
    try {
      for await (const r of this.clients.resources.resources.listByResourceGroup(resourceGroup, {
        ...(filter ? { filter } : {}),
        ...abortOption(options),
      })) {
        if (!r.id) throw new Error("a listed resource has no id");
        out.push({ id: r.id, type: r.type });
      }
    } catch (e) {
      throw new AzureOperationError("list-resources", rgId, describeFailure(e));
    }
    return out;
  }

  /** One GET, classified. Errors other than 404 are thrown as `AzureOperationError("get-hsm")`. */
  private async read(id: HsmResourceId, options: CallOptions): Promise<ReadResult> {
    const requestIds: string[] = [];
    try {
      const hsm = await this.clients.hsm.dedicatedHsmOperations.get(id.resourceGroup, id.name, {
        ...abortOption(options),
        onResponse: (raw) => collectRequestId(raw, requestIds),
      });
      const found: ReadResult = { found: true, hsm: toInfo(hsm, id) };
      if (requestIds[0]) found.requestId = requestIds[0];
      return found;
    } catch (e) {
      const failure = describeFailure(e);
      if (isRestError(e) && e.statusCode === 404)
        return {
          found: false,
          parentMissing: PARENT_MISSING_CODES.has((failure.code ?? "").toLowerCase()),
          failure,
        };
      throw new AzureOperationError("get-hsm", id.id, failure);
    }
  }

  private async readAfterFailure(id: HsmResourceId): Promise<HsmAfterFailure> {
    try {
      const read = await this.read(id, {});
      if (read.found) {
        const after: HsmAfterFailure = { exists: true };
        if (read.hsm.provisioningState !== undefined) after.provisioningState = read.hsm.provisioningState;
        if (read.hsm.statusMessage !== undefined) after.statusMessage = read.hsm.statusMessage;
        if (read.requestId) after.requestId = read.requestId;
        return after;
      }
      const after: HsmAfterFailure = { exists: false };
      if (read.parentMissing) after.orphanSuspected = true;
      if (read.failure.requestId) after.requestId = read.failure.requestId;
      return after;
    } catch (e) {
      return { exists: true, readError: e instanceof Error ? e.message : String(e) };
    }
  }
}

type ReadResult =
  | { found: true; hsm: DedicatedHsmInfo; requestId?: string }
  | { found: false; parentMissing: boolean; failure: ReturnType<typeof describeFailure> };

function abortOption(options: CallOptions): { abortSignal?: AbortSignal } {
  return options.signal ? { abortSignal: options.signal } : {};
}

function collectRequestId(raw: FullOperationResponse, into: string[]): void {
  const id = raw.headers.get("x-ms-request-id");
  if (id) into.push(id);
}

function toInfo(h: DedicatedHsm, requested: HsmResourceId | undefined): DedicatedHsmInfo {
  let parsed: HsmResourceId | undefined = requested;
  if (h.id) {
    try {
      parsed = parseHsmResourceId(h.id);
    } catch {
      // keep the requested id: ARM answered for the URL we asked
    }
  }
  if (!parsed)
    throw new InvalidResourceIdError(h.id ?? "", "ARM returned a Dedicated HSM without a usable id");
  const nic = h.networkProfile?.networkInterfaces?.[0] as
    | { id?: string; resourceId?: string; privateIpAddress?: string }
    | undefined;
  const subnet = h.networkProfile?.subnet as { id?: string; resourceId?: string } | undefined;
  const sku = h.sku?.name;
  return {
    id: parsed.id,
    name: h.name ?? parsed.name,
    resourceGroup: parsed.resourceGroup,
    subscriptionId: parsed.subscriptionId,
    location: h.location,
    sku,
    isLuna: sku === LUNA_SKU,
    provisioningState: h.provisioningState,
    statusMessage: h.statusMessage,
    privateIp: nic?.privateIpAddress,
    // Newer API versions name the reference `resourceId` (azure.md §1): accept both.
    nicId: nic?.id ?? nic?.resourceId,
    subnetId: subnet?.id ?? subnet?.resourceId,
  };
}
