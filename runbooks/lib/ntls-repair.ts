// The state of an (appliance, client) pair around an NTLS repair, and what to say when a repair is interrupted.
//
// Neither half of the repair can be made additive with the documented CLI (reference/luna-cli.md §8.4, §8.5):
//   client side:    `vtl addServer -n <server>` refuses a server already in the list (the twin: "already in the server
//                   list. Use 'vtl deleteServer' first"; the real wording is not captured), and an entry under a second
//                   name would change the server name the client's slots and HA members are known by;
//   appliance side: there is no command that replaces a registered client's certificate, `client register` refuses a
//                   name already registered, and the partitions belong to the client *name*, so a registration under
//                   a temporary name is not the client's registration (the real behaviour of two registrations of
//                   one certificate is not documented, so it is not relied on).
// So each half stays delete-then-add, with the additive part first (the certificate staged or uploaded before the
// delete), and is self-healing instead: the job checkpoints the pair's state before its first destructive command
// (`repair-snapshot`), an interruption after it fails the job with this module's error (the recorded state, what was
// done, what the pair looks like now), and the same job resumed re-reads both sides and finishes from the snapshot.
// Pure: no I/O here; the runbook does the reads.
import { markNonRetryable } from "../../src/engine/errors.ts";

/** One pair's state just before the repair (checkpointed by `repair-snapshot` before any change). */
export interface PairSnapshot {
  device: string;
  host: string;
  clientName: string;
  /** The client side, when it is to be repaired: its server entry and what CAFile.pem trusts. */
  client: {
    /** The name the appliance is listed under (`vtl listServers`), or the fleet's address when it was not listed. */
    serverName: string;
    listed: boolean;
    servers: string[];
    /** SHA-256 of the certificates CAFile.pem held for the appliance's subject. */
    trustedFingerprints: string[];
    /** SHA-256 of the certificate the appliance presents (what the repair makes the client trust). */
    serverFingerprint256: string;
  } | null;
  /** The appliance side, when it is to be repaired: the client's registration and what the repair registers. */
  appliance: {
    registered: boolean;
    hostname: string | null;
    /** `client fingerprint` of the registration (MD5 form), null when not registered. */
    fingerprint: string | null;
    partitions: string[];
    /** The hostname the repair registers the client with. */
    registerHostname: string;
    /** Exactly these partitions are assigned again: the registration's, or the fleet file's when it had none. */
    restorePartitions: string[];
    /** MD5 form of the client's own certificate (what the registration must hold afterwards). */
    clientFingerprint: string;
  } | null;
}

export interface RepairSnapshot {
  pairs: PairSnapshot[];
  reason?: string;
}

/** The client side as re-read now, or the error the re-read ended with. */
export type ClientSideNow = { listed: boolean; serverName: string; trusts: boolean } | { error: string };
/** The appliance side as re-read now, or the error the re-read ended with. */
export type ApplianceSideNow =
  | { registered: boolean; fingerprint: string | null; partitions: string[] }
  | { error: string };

/**
 * A repair stopped after its first destructive command: the pair may be half-repaired until the job is resumed. A
 * retry (which resumes from the snapshot) may help exactly when the interruption itself was retryable (a lost
 * connection before anything was answered); otherwise it is NonRetryable.
 */
export class RepairInterrupted extends Error {
  override name = "RepairInterrupted";
  constructor(
    message: string,
    readonly device: string,
    readonly host: string,
    readonly command: string,
    readonly retryable: boolean,
    /** as-before | repaired | half-repaired | unknown */
    readonly pairState: PairState,
  ) {
    super(message);
    if (!retryable) markNonRetryable(this);
  }
}

export type PairState = "as-before" | "repaired" | "half-repaired" | "unknown";

/** The commands a repair sent, in order: which were answered, and the one that was interrupted. */
export class RepairProgress {
  readonly done: string[] = [];
  current: string | undefined;

  /** Send one command through `send`; it counts as done only once its reply was read. */
  async run<T>(command: string, send: () => Promise<T>): Promise<T> {
    this.current = command;
    const out = await send();
    this.done.push(command);
    this.current = undefined;
    return out;
  }

  /** Whether a destructive command has been sent (answered or not): from here on, a failure may leave a half-done pair. */
  get started(): boolean {
    return this.done.length > 0 || this.current !== undefined;
  }
}

const list = (xs: string[]) => `[${xs.join(", ")}]`;
const short = (fp: string) => `${fp.slice(0, 23)}…`;

/** The pair's client side now, in words, with its classification. */
export function clientStateNow(
  snap: PairSnapshot & { client: NonNullable<PairSnapshot["client"]> },
  now: ClientSideNow,
): { state: PairState; text: string } {
  const { device, host } = snap;
  if ("error" in now)
    return {
      state: "unknown",
      text: `unknown: re-reading ${host} failed too (${now.error}); treat the pair as half-repaired`,
    };
  if (now.listed && now.trusts)
    return {
      state: "repaired",
      text: `repaired: ${host} lists ${device} as '${now.serverName}' and trusts its current certificate (the interrupted command took effect; only its reply was lost)`,
    };
  if (now.listed)
    return {
      state: "as-before",
      text: `as before the repair: ${host} lists ${device} as '${now.serverName}' and still does not trust its current certificate`,
    };
  return {
    state: "half-repaired",
    text: `half-repaired: ${host} has no server entry for ${device} (deleted, not yet added again), so it reaches no partition on ${device} until the repair finishes`,
  };
}

/** The pair's appliance side now, in words, with its classification. */
export function applianceStateNow(
  snap: PairSnapshot & { appliance: NonNullable<PairSnapshot["appliance"]> },
  now: ApplianceSideNow,
): { state: PairState; text: string } {
  const { device, host, clientName } = snap;
  const was = snap.appliance;
  if ("error" in now)
    return {
      state: "unknown",
      text: `unknown: re-reading ${device} failed too (${now.error}); treat the pair as half-repaired`,
    };
  if (!now.registered)
    return was.registered
      ? {
          state: "half-repaired",
          text: `half-repaired: ${device} has no registration for '${clientName}' (deleted, not yet registered again), so ${host} reaches none of its partitions ${list(was.restorePartitions)} on ${device}`,
        }
      : {
          state: "as-before",
          text: `as before the repair: ${device} still has no client registered as '${clientName}'`,
        };
  const missing = was.restorePartitions.filter((p) => !now.partitions.includes(p));
  const extra = now.partitions.filter((p) => !was.restorePartitions.includes(p));
  if (now.fingerprint === was.clientFingerprint && missing.length === 0 && extra.length === 0)
    return {
      state: "repaired",
      text: `repaired: '${clientName}' is registered on ${device} with ${host}'s current certificate and partitions ${list(now.partitions)} (the interrupted command took effect; only its reply was lost)`,
    };
  if (now.fingerprint === was.clientFingerprint)
    return {
      state: "half-repaired",
      text: `half-repaired: '${clientName}' is registered on ${device} with ${host}'s current certificate but has partitions ${list(now.partitions)} instead of ${list(was.restorePartitions)}${missing.length > 0 ? ` (missing ${list(missing)})` : ""}`,
    };
  if (
    was.registered &&
    now.fingerprint === was.fingerprint &&
    now.partitions.length === was.partitions.length &&
    now.partitions.every((p) => was.partitions.includes(p))
  )
    return {
      state: "as-before",
      text: `as before the repair: '${clientName}' is still registered on ${device} with the old certificate (${now.fingerprint}) and partitions ${list(now.partitions)}`,
    };
  return {
    state: "unknown",
    text: `changed by someone else: '${clientName}' is registered on ${device} with certificate ${now.fingerprint} and partitions ${list(now.partitions)}, neither the recorded state nor the repair's`,
  };
}

/** The client side before the repair, in words (from the snapshot). */
export function clientBefore(snap: PairSnapshot & { client: NonNullable<PairSnapshot["client"]> }): string {
  const c = snap.client;
  const trusted =
    c.trustedFingerprints.length > 0
      ? `trusting ${c.trustedFingerprints.map(short).join(", ")} for it`
      : "trusting no certificate for it";
  return c.listed
    ? `${snap.host} listed ${snap.device} as '${c.serverName}' (servers ${list(c.servers)}), ${trusted}, not its current certificate ${short(c.serverFingerprint256)}`
    : `${snap.host} had no server entry for ${snap.device} (servers ${list(c.servers)})`;
}

/** The appliance side before the repair, in words (from the snapshot). */
export function applianceBefore(
  snap: PairSnapshot & { appliance: NonNullable<PairSnapshot["appliance"]> },
): string {
  const a = snap.appliance;
  return a.registered
    ? `${snap.device} had '${snap.clientName}' registered (hostname ${a.hostname ?? "-"}, certificate ${a.fingerprint}, partitions ${list(a.partitions)})`
    : `${snap.device} had no client registered as '${snap.clientName}' (the fleet file assigns ${list(a.restorePartitions)})`;
}

/** The whole error text: where, what was done, what the pair was, what it is now, and how it heals. */
export function interruptedMessage(opts: {
  side: "client" | "appliance";
  snap: PairSnapshot;
  on: string;
  command: string;
  /** The interrupted command was the re-read after the changes (they were all answered), not a change. */
  reread: boolean;
  cause: string;
  done: string[];
  before: string;
  now: string;
  finish: string;
  jobId: string;
}): string {
  const done = opts.done.length > 0 ? opts.done.map((c) => `'${c}'`).join(", ") : "nothing";
  return [
    `${opts.snap.device} / ${opts.snap.host}: the ${opts.side}-side repair was interrupted at '${opts.command}' on ${opts.on} (${opts.cause}).`,
    opts.reread
      ? `Answered before it: ${done}; the re-read that checks them failed.`
      : `Answered before it: ${done}; '${opts.command}' may or may not have taken effect.`,
    `Before the repair (checkpointed): ${opts.before}.`,
    `Now: ${opts.now}.`,
    `Resuming job ${opts.jobId} (same job id and checkpoints) re-reads both sides and finishes: ${opts.finish}.`,
  ].join(" ");
}
