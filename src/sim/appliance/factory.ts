// Builds the twin's state of one appliance from its fleet-file entry and `sim:` block: the problems a twin fleet
// plants (missing reboot patch, expiring certificate, wrong cloning domain, failed-login counters) become real
// state the interpreter acts on.
import { randomBytes } from "node:crypto";
import { applianceHostname } from "../../config/model.ts";
import type { Device, Fleet, Partition } from "../../config/schema.ts";
import { deviceSimSchema } from "../../config/schema.ts";
import { registerSecretValue, secretRefKind } from "../../config/secret.ts";
import { generateSelfSignedCert } from "../certs.ts";
import {
  type ApplianceState,
  type ApplianceUser,
  PARTITION_SO_THRESHOLD,
  type PartitionState,
  zeroizeHsm,
} from "../state.ts";
import { syslogLine } from "./power.ts";
import { defaultPolicies } from "./render.ts";

export { type ClientRegistration, registerClient } from "./clients.ts";

export interface FactoryOptions {
  /** The twin's clock at creation (certificate validity counts from it). */
  now?: Date;
}

/** A random password that satisfies the appliance's rules (8+ characters, 3 of 4 character classes). */
function generatePassword(): string {
  return `Tw1n-${randomBytes(12).toString("base64url")}`;
}

/**
 * The value a twin appliance holds for a credential: the literal from a twin fleet file, else a generated one.
 * env:/file: references are not resolved here: the twin must not depend on the operator's secrets, and the daemon
 * resolving the same reference would then simply fail to log in (as against a real device with a wrong password).
 * Generated values are kept in `generated` so the launcher can hand them out.
 */
function credentialValue(
  ref: string | undefined,
  key: string,
  generated: Record<string, string>,
  literals = true,
): string {
  const useLiteral = literals && ref !== undefined && secretRefKind(ref) === "literal";
  const value = useLiteral ? ref : generatePassword();
  if (!useLiteral) generated[key] = value;
  registerSecretValue(value);
  return value;
}

/** The system RPMs of an appliance at `version` with firmware `firmware` (names modelled on Luna 7 components). */
function systemRpms(version: string, firmware: string): string[] {
  return [
    `configurator-${version}`,
    `fwupdateK7_RealCert-${firmware}`,
    `libcryptoki-${version}`,
    `lunacm-${version}`,
    `lunasa-hsm-${version}`,
    `lunasa-ntls-${version}`,
    `lunasa-snmp-${version}`,
    `lunasa-webserver-${version}`,
    `lush-base-${version}`,
    `oamp-${version}`,
    `vtl-${version}`,
  ];
}

/** The RPM the KB0019789 reboot patch installs. */
export const REBOOT_PATCH_RPM = "lunasa-reboot-patch-1-1";

const BUILT_IN_USERS: ApplianceUser[] = [
  { name: "admin", role: "admin", status: "enabled", radius: false },
  { name: "audit", role: "audit", status: "disabled", radius: false },
  { name: "monitor", role: "monitor", status: "disabled", radius: false },
  { name: "operator", role: "operator", status: "disabled", radius: false },
];

function partitionState(
  par: Partition,
  policy15: number,
  generated: Record<string, string>,
  literals: boolean,
): PartitionState {
  const sim = par.sim;
  const passwords: PartitionState["passwords"] = {
    so: credentialValue(par.credentials.partitionSo, `${par.label}.partitionSo`, generated, literals),
    co: credentialValue(par.credentials.co, `${par.label}.co`, generated, literals),
  };
  // The Crypto User exists only where the fleet declares it.
  if (par.credentials.cu !== undefined)
    passwords.cu = credentialValue(par.credentials.cu, `${par.label}.cu`, generated, literals);
  const policy20 = sim?.policy20 ?? 10;
  const state: PartitionState = {
    label: par.label,
    serial: par.serial,
    cloningDomain: sim?.actualCloningDomain ?? par.cloningDomain ?? "default-domain",
    objects: sim?.objects ?? 2,
    passwords,
    failures: { so: sim?.psoFailedLogins ?? 0, co: sim?.coFailedLogins ?? 0, cu: 0 },
    policy20,
    zeroized: false,
    coLockout: "none",
  };
  if (state.failures.so >= PARTITION_SO_THRESHOLD) {
    state.zeroized = true;
    state.objects = 0;
    state.passwords = {};
    state.failures = { so: 0, co: 0, cu: 0 };
  } else if (state.failures.co >= policy20) {
    state.coLockout = policy15 === 0 ? "permanent" : "locked";
  }
  return state;
}

/** The state of `device` as the twin runs it. */
export async function createApplianceState(
  fleet: Fleet,
  device: Device,
  opts: FactoryOptions = {},
): Promise<ApplianceState> {
  if (!fleet.devices.some((d) => d.name === device.name))
    throw new Error(`device '${device.name}' is not in this fleet`);
  // Literal passwords exist only in twin fleet files; anything else gets a generated value.
  const literals = fleet.twin;
  const now = opts.now ?? new Date();
  const sim = device.sim ?? deviceSimSchema.parse({});
  const generated: Record<string, string> = {};
  const hostname = applianceHostname(device);
  const cert = await generateSelfSignedCert({
    commonName: hostname,
    validDays: sim.certValidDays,
    now,
    altNames: device.host !== hostname ? [device.host] : [],
  });
  const users = [...BUILT_IN_USERS.map((u) => ({ ...u }))];
  if (!users.some((u) => u.name === device.user))
    users.push({ name: device.user, role: "admin", status: "enabled", radius: false });

  const state: ApplianceState = {
    name: device.name,
    hostname,
    serial: device.serial,
    label: device.name.toUpperCase(),
    softwareVersion: sim.softwareVersion,
    firmware: sim.firmware,
    model: "Luna K7",
    hsmSoPassword: credentialValue(device.credentials.hsmSo, "hsmSo", generated, literals),
    soFailures: sim.hsmSoFailedLogins,
    soLoggedIn: false,
    zeroized: false,
    policies: defaultPolicies(sim.policy15),
    partitions: device.partitions.map((p) => partitionState(p, sim.policy15, generated, literals)),
    packages: {
      system: systemRpms(sim.softwareVersion, sim.firmware),
      software: sim.rebootPatch ? [REBOOT_PATCH_RPM] : [],
    },
    rebootPatch: sim.rebootPatch,
    clients: new Map(),
    ntls: {
      certPem: cert.certPem,
      keyPem: cert.keyPem,
      notAfter: cert.notAfter,
      listening: !sim.ntlsClosed,
      bindDevice: "eth0",
      bindAddress: device.host,
      port: device.ntlsPort,
      certGeneration: 1,
    },
    power: "on",
    applianceUser: device.user,
    appliancePassword: credentialValue(device.credentials.appliance, "appliance", generated, literals),
    users,
    generatedCredentials: generated,
    scpFiles: new Map(),
    faults: { ...(sim.faults ?? {}) },
    syslog: [],
    commandLog: [],
    sessionLog: [],
  };
  if (sim.zeroized) zeroizeHsm(state);
  state.syslog.push(
    syslogLine(state, "systemd[1]: Started Luna Network HSM appliance services.", now),
    syslogLine(state, `NTLS[1792]: info : 0 : NTLS listening on ${device.host}:${device.ntlsPort}`, now),
  );
  return state;
}
