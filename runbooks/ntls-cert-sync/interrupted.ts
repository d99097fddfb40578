// ntls-cert-sync: what to say when a repair is interrupted after its first destructive command. The pair is re-read
// (reads only, through fresh sessions where the old one is gone) so the error names the recorded state, what was
// done, what the pair looks like now and what is left to send; the same job resumed finishes from the snapshot.
import { describeError, isRetryable } from "../../src/engine/errors.ts";
import {
  type ApplianceSideNow,
  applianceBefore,
  applianceStateNow,
  type ClientSideNow,
  clientBefore,
  clientStateNow,
  interruptedMessage,
  type PairSnapshot,
  RepairInterrupted,
  type RepairProgress,
} from "../lib/ntls-repair.ts";
import { type Ctx, readApplianceSide, readClientSide } from "./model.ts";

/** The command a failed re-read was sending (typed shell errors carry it). */
const commandOf = (err: unknown) => describeError(err).command ?? "the re-read after the change";

const causeOf = (err: unknown) => {
  const info = describeError(err);
  return `${info.type}: ${info.message}`;
};

/**
 * The client-side repair stopped after its first destructive command: re-read the client (a fresh session; a read
 * only) to say what the pair looks like now, and fail with everything an operator needs.
 */
export async function clientRepairInterrupted(
  ctx: Ctx,
  snap: PairSnapshot & { client: NonNullable<PairSnapshot["client"]> },
  progress: RepairProgress,
  err: unknown,
  serverPem: string,
  staged: string,
): Promise<RepairInterrupted> {
  let now: ClientSideNow;
  try {
    const side = await readClientSide(ctx, snap.device, snap.host, serverPem);
    now = { listed: side.server.listed, serverName: side.server.name, trusts: side.trusts };
  } catch (e) {
    now = { error: causeOf(e) };
  }
  const state = clientStateNow(snap, now);
  const command = progress.current ?? commandOf(err);
  return new RepairInterrupted(
    interruptedMessage({
      side: "client",
      snap,
      on: snap.host,
      command,
      reread: progress.current === undefined,
      cause: causeOf(err),
      done: progress.done,
      before: clientBefore(snap),
      now: state.text,
      finish:
        state.state === "repaired"
          ? `nothing left to send on ${snap.host}; the link is verified`
          : `'vtl addServer -n ${snap.client.serverName} -c ${staged}' on ${snap.host} (after 'vtl deleteServer' if the old entry is still there), then the link is verified`,
      jobId: ctx.jobId,
    }),
    snap.device,
    snap.host,
    command,
    isRetryable(err),
    state.state,
  );
}

/** The appliance-side repair stopped after its first destructive command: as above, for the registration. */
export async function applianceRepairInterrupted(
  ctx: Ctx,
  snap: PairSnapshot & { appliance: NonNullable<PairSnapshot["appliance"]> },
  progress: RepairProgress,
  err: unknown,
): Promise<RepairInterrupted> {
  let now: ApplianceSideNow;
  try {
    const view = await readApplianceSide(ctx, snap.device, snap.host);
    now = { registered: view.registered, fingerprint: view.fingerprint, partitions: view.partitions };
  } catch (e) {
    now = { error: causeOf(e) };
  }
  const state = applianceStateNow(snap, now);
  const command = progress.current ?? commandOf(err);
  const a = snap.appliance;
  return new RepairInterrupted(
    interruptedMessage({
      side: "appliance",
      snap,
      on: snap.device,
      command,
      reread: progress.current === undefined,
      cause: causeOf(err),
      done: progress.done,
      before: applianceBefore(snap),
      now: state.text,
      finish:
        state.state === "repaired"
          ? `nothing left to send on ${snap.device}; the link is verified`
          : `'${snap.clientName}' registered on ${snap.device} (hostname ${a.registerHostname}) with ${snap.host}'s current certificate ${a.clientFingerprint} and exactly the partitions [${a.restorePartitions.join(", ")}], then the link is verified`,
      jobId: ctx.jobId,
    }),
    snap.device,
    snap.host,
    command,
    isRetryable(err),
    state.state,
  );
}
