// The twin's state of one simulated Luna appliance and its partitions. Pure data plus the few rules that must behave
// exactly like the appliance (login counters, zeroization). Both the lunash interpreter (appliance) and the lunacm
// interpreter (client hosts) act on these objects; nothing outside src/sim imports them.

export type PartitionRole = "po" | "so" | "co" | "cu";

export interface PartitionState {
  label: string;
  serial: string;
  /** The cloning domain the partition really has (the twin's truth, not what the fleet file declares). */
  cloningDomain: string;
  objects: number;
  /** Partition SO ("so"/"po") and Crypto Officer / Crypto User passwords; undefined = role not initialized. */
  passwords: Partial<Record<"so" | "co" | "cu", string>>;
  /** Consecutive failed logins per role since the last success. */
  failures: Record<"so" | "co" | "cu", number>;
  /** Partition policy 20: max failed CO/CU logins (default 10, can be lowered). */
  policy20: number;
  /** Partition SO reached 10 failures: the partition is zeroized (objects gone, roles uninitialized). */
  zeroized: boolean;
  /** CO/CU locked out; `permanent` when HSM policy 15 = 0 at the time of lockout. */
  coLockout: "none" | "locked" | "permanent";
  loggedIn?: PartitionRole;
}

export interface RegisteredClient {
  name: string;
  hostname: string;
  /** PEM of the client certificate the appliance trusts for this client. */
  certPem: string;
  partitions: string[];
}

export type PowerState = "on" | "rebooting" | "hung";

/** Faults injected into an appliance; mutable at run time (tests and `lunafleet sim` flip them). */
export interface ApplianceFaults {
  /** Delay before each command's output, in milliseconds. */
  slowReplyMs?: number;
  /** Command prefix (e.g. "hsm show") whose output is corrupted: labels mangled, bytes dropped. */
  garbleCommand?: string;
  /** Command prefix whose output is cut halfway by an abrupt connection drop. */
  dropMidCommand?: string;
  /** Hang on reboot even when the KB0019789 patch is installed. */
  hangReboot?: boolean;
}

/** An appliance account as `user list` shows it. */
export interface ApplianceUser {
  name: string;
  role: string;
  status: "enabled" | "disabled";
  radius: boolean;
}

export interface ApplianceState {
  /** Fleet device name. */
  name: string;
  /** Prompt hostname (`[hostname] lunash:>`). */
  hostname: string;
  serial: string;
  label: string;
  softwareVersion: string;
  firmware: string;
  model: string;
  hsmSoPassword: string;
  /** Consecutive failed HSM SO logins (0..2); the third zeroizes. */
  soFailures: number;
  soLoggedIn: boolean;
  zeroized: boolean;
  /** HSM policies by code (15 = SO can reset partition PIN; 0 means CO lockout is permanent). */
  policies: Map<number, number>;
  partitions: PartitionState[];
  packages: { system: string[]; software: string[] };
  rebootPatch: boolean;
  clients: Map<string, RegisteredClient>;
  ntls: {
    certPem: string;
    keyPem: string;
    notAfter: Date;
    listening: boolean;
    /** Network device NTLS is bound to (`ntls show`). */
    bindDevice: string;
    /** IP address of the bound device (the fleet's `host`). */
    bindAddress: string;
    port: number;
    /** Bumped by `sysconf regenCert`: a client holding an older copy of server.pem no longer trusts this appliance. */
    certGeneration: number;
  };
  power: PowerState;
  /** The appliance (SSH) user and its password: the twin's SSH carrier authenticates against these. */
  applianceUser: string;
  appliancePassword: string;
  /** Appliance accounts for `user list`. */
  users: ApplianceUser[];
  /** Credentials the twin generated because the fleet file had none it could read (name -> value, e.g. "hsmSo"). */
  generatedCredentials: Record<string, string>;
  /** Files in the admin user's scp area (name -> content), e.g. client certificates before `client register`. */
  scpFiles: Map<string, string>;
  faults: ApplianceFaults;
  /** Appliance syslog (`messages`), newest last. */
  syslog: string[];
  /** Every command line the appliance received, for tests ("no synchronize was sent") and the session log. */
  commandLog: { at: number; session: number; user: string; command: string }[];
  /** SSH sessions: open/close times, for overlap checks. */
  sessionLog: { session: number; user: string; openedAt: number; closedAt?: number }[];
}

const HSM_SO_THRESHOLD = 3;
export const PARTITION_SO_THRESHOLD = 10;

export type SoLoginOutcome = "success" | "wrong" | "zeroized-now" | "already-zeroized";

/** One HSM SO password attempt with the appliance's counter semantics (3 consecutive failures zeroize). */
export function attemptHsmSoLogin(state: ApplianceState, password: string): SoLoginOutcome {
  if (state.zeroized) return "already-zeroized";
  if (password === state.hsmSoPassword) {
    state.soFailures = 0;
    state.soLoggedIn = true;
    return "success";
  }
  state.soFailures += 1;
  if (state.soFailures >= HSM_SO_THRESHOLD) {
    zeroizeHsm(state);
    return "zeroized-now";
  }
  return "wrong";
}

/** HSM SO attempts left before zeroization, as `hsm show` prints it (0 when zeroized). */
export function hsmSoAttemptsLeft(state: ApplianceState): number {
  return state.zeroized ? 0 : HSM_SO_THRESHOLD - state.soFailures;
}

/** Zeroization destroys the KEK: partitions and their objects are gone, policies are kept. */
export function zeroizeHsm(state: ApplianceState): void {
  state.zeroized = true;
  state.soLoggedIn = false;
  state.soFailures = 0;
  state.label = "";
  state.partitions = [];
  for (const client of state.clients.values()) client.partitions = [];
}

export type RoleLoginOutcome =
  | "success"
  | "wrong"
  | "not-initialized"
  | "locked-out"
  | "locked-out-now"
  | "partition-zeroized"
  | "partition-zeroized-now";

/** One partition role login (lunacm `role login -name <r>`), with Luna 7 counter semantics. */
export function attemptPartitionLogin(
  appliance: ApplianceState,
  partition: PartitionState,
  role: PartitionRole,
  password: string,
): RoleLoginOutcome {
  const r = role === "po" ? "so" : role;
  if (partition.zeroized) return "partition-zeroized";
  const expected = partition.passwords[r];
  if (expected === undefined) return "not-initialized";
  if ((r === "co" || r === "cu") && partition.coLockout !== "none") return "locked-out";
  if (password === expected) {
    partition.failures[r] = 0;
    partition.loggedIn = role;
    return "success";
  }
  partition.failures[r] += 1;
  if (r === "so") {
    if (partition.failures.so >= PARTITION_SO_THRESHOLD) {
      partition.zeroized = true;
      partition.objects = 0;
      partition.passwords = {};
      partition.failures = { so: 0, co: 0, cu: 0 };
      return "partition-zeroized-now";
    }
    return "wrong";
  }
  if (partition.failures[r] >= partition.policy20) {
    // HSM policy 15 = 0 (the Luna 7 default): nobody may reset the CO PIN, so the lockout is for good.
    partition.coLockout = (appliance.policies.get(15) ?? 0) === 0 ? "permanent" : "locked";
    return "locked-out-now";
  }
  return "wrong";
}

/** Attempts left for a partition role before its threshold (what lunacm/lunash counters show). */
export function partitionAttemptsLeft(partition: PartitionState, role: "so" | "co" | "cu"): number {
  if (partition.zeroized) return 0;
  if (role === "so") return PARTITION_SO_THRESHOLD - partition.failures.so;
  if (partition.coLockout !== "none") return 0;
  return partition.policy20 - partition.failures[role];
}
