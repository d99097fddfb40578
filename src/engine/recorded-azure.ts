// ARM calls as a step makes them: each is recorded (`azure` records: what was asked, then the outcome or the error);
// a change (a delete) is refused when the job is cancelled or no longer holds its device locks.
import { describeError, JobCancelled } from "./errors.ts";
import type { AzurePort, StepRecorder } from "./ports.ts";
import type { ShellGate } from "./recorded-shell.ts";

export function recordedAzure(azure: AzurePort, record: StepRecorder, gate: ShellGate): AzurePort {
  const call = async <T>(
    operation: string,
    on: string,
    change: boolean,
    fn: () => Promise<T>,
  ): Promise<T> => {
    if (change) {
      if (gate.signal.aborted) throw new JobCancelled(`job cancelled before ${operation} ${on}`);
      gate.assertLocked();
    }
    await record("azure", { via: "azure", on, operation, event: "request" });
    try {
      const result = await fn();
      await record("azure", { via: "azure", on, operation, event: "result", result: result ?? null });
      return result;
    } catch (err) {
      await record("azure", { via: "azure", on, operation, event: "error", error: describeError(err) });
      throw err;
    }
  };
  return {
    getHsm: (id, o) => call("get-hsm", id, false, () => azure.getHsm(id, o)),
    deleteHsm: (id, o) => call("delete-hsm", id, true, () => azure.deleteHsm(id, o)),
    verifyHsmGone: (id, o) => call("verify-hsm-gone", id, false, () => azure.verifyHsmGone(id, o)),
    listDedicatedHsms: (rg, o) =>
      call("list-hsms", `resourceGroups/${rg}`, false, () => azure.listDedicatedHsms(rg, o)),
    resourceGroupHoldsDedicatedHsms: (rg, o) =>
      call("resource-group-holds-hsms", `resourceGroups/${rg}`, false, () =>
        azure.resourceGroupHoldsDedicatedHsms(rg, o),
      ),
    resourceGroupContents: (rg, o) =>
      call("resource-group-contents", `resourceGroups/${rg}`, false, () =>
        azure.resourceGroupContents(rg, o),
      ),
    deleteResourceGroup: (rg, o) =>
      call("delete-resource-group", `resourceGroups/${rg}`, true, () => azure.deleteResourceGroup(rg, o)),
  };
}
