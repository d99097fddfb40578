// Read-only views of an appliance as lunash prints them (reference/luna-cli.md §2, §4, §6, §7, §8, §12). Each
// function returns the command body: the lines between the echoed command and the `Command Result` footer,
// including the blank lines the appliance puts around them.
import {
  type ApplianceState,
  hsmSoAttemptsLeft,
  type PartitionState,
  partitionAttemptsLeft,
  type RegisteredClient,
} from "../state.ts";
import { field, lpad, rpad, section } from "./text.ts";

/** Storage model of a Luna 7 partition in the twin: fixed size, 248 bytes per object. */
const PARTITION_TOTAL_BYTES = 648381;
const BYTES_PER_OBJECT = 248;
const HSM_TOTAL_BYTES = 33554432;
const HSM_BASE_USE_BYTES = 16384;
const MAX_PARTITIONS = 10;

function partitionUsedBytes(p: PartitionState): number {
  return p.objects * BYTES_PER_OBJECT;
}

export function renderHsmShow(s: ApplianceState): string {
  const attempts = s.zeroized ? "HSM IS ZEROIZED !!!!" : `${hsmSoAttemptsLeft(s)} before HSM zeroization!`;
  const used = s.zeroized ? 0 : HSM_BASE_USE_BYTES + s.partitions.length * PARTITION_TOTAL_BYTES;
  const lines = [
    "",
    "",
    ...section("Appliance Details:"),
    field("Software Version:", s.softwareVersion, 36),
    "",
    ...section("HSM Details:"),
    field("HSM Label:", s.label, 39),
    field("Serial #:", s.serial, 39),
    field("Firmware:", s.firmware, 39),
    field("HSM Model:", s.model, 39),
    field("HSM Part Number:", "808-000066-001", 39),
    field("Authentication Method:", "Password", 39),
    field("HSM Admin login status:", s.soLoggedIn ? "Logged In" : "Not Logged In", 39),
    field("HSM Admin login attempts left:", attempts, 39),
    field("RPV Initialized:", "No", 39),
    field("Audit Role Initialized:", s.zeroized ? "No" : "Yes", 39),
    field("Remote Login Initialized:", "No", 39),
    field("Manually Zeroized:", "No", 39),
    field("Secure Transport Mode:", "No", 39),
    field("HSM Tamper State:", "No tamper(s)", 39),
    "",
    "   Partitions created on HSM:",
    "   ==============================",
    ...(s.partitions.length === 0
      ? ["   There are no partitions."]
      : s.partitions.map((p) => `   Partition:   ${p.serial},     Name: ${p.label}`)),
    "",
    "",
    field("Number of partitions allowed:", MAX_PARTITIONS, 40),
    field("Number of partitions created:", s.partitions.length, 40),
    "",
    ...section("FIPS 140-2 Operation:"),
    (s.policies.get(12) ?? 1) === 0
      ? "   The HSM is in FIPS 140-2 approved operation mode."
      : "   The HSM is NOT in FIPS 140-2 approved operation mode.",
    "",
    ...section("HSM Storage Information:"),
    field("Maximum HSM Storage Space (Bytes):", HSM_TOTAL_BYTES, 40),
    field("Space In Use (Bytes):", used, 40),
    field("Free Space Left (Bytes):", HSM_TOTAL_BYTES - used, 40),
    "",
    ...section("Environmental Information on HSM:"),
    field("Battery Voltage:", "3.093 V", 40),
    field("Battery Warning Threshold Voltage:", "2.750 V", 40),
    field("System Temp:", "35 deg. C", 40),
    field("System Temp Warning Threshold:", "75 deg. C", 40),
    "",
    "",
    "",
  ];
  return lines.join("\n") + "\n";
}

interface PolicyRow {
  code: number;
  description: string;
  destructive: boolean;
  /** Numeric policies print their number instead of On/Off. */
  numeric?: boolean;
}

/** The HSM policies the twin knows, in the order `hsm showPolicies` lists them. */
const HSM_POLICIES: PolicyRow[] = [
  { code: 6, description: "Allow masking", destructive: true },
  { code: 7, description: "Allow cloning", destructive: true },
  { code: 12, description: "Allow non-FIPS algorithms", destructive: true },
  { code: 15, description: "SO can reset partition PIN", destructive: true },
  { code: 16, description: "Allow network replication", destructive: false },
  { code: 21, description: "Force user PIN change after set/reset", destructive: false },
  { code: 25, description: "Allow Remote PED usage", destructive: false },
  { code: 30, description: "Allow unmasking", destructive: true },
  { code: 33, description: "Current maximum number of partitions", destructive: false, numeric: true },
  { code: 39, description: "Allow Secure Trusted Channel", destructive: false },
  { code: 40, description: "Decommission on tamper", destructive: false },
  { code: 46, description: "Disable Decommission", destructive: false },
  { code: 50, description: "Allow Functionality Modules", destructive: false },
];

/** Luna 7 defaults; policy 15 comes from the fleet file (`sim.policy15`). */
export function defaultPolicies(policy15: number): Map<number, number> {
  return new Map([
    [6, 0],
    [7, 1],
    [12, 1],
    [15, policy15],
    [16, 1],
    [21, 0],
    [25, 0],
    [30, 0],
    [33, MAX_PARTITIONS],
    [39, 0],
    [40, 0],
    [46, 0],
    [50, 0],
  ]);
}

const CAPABILITIES: [string, string][] = [
  ["Enable PIN-based authentication", "Allowed"],
  ["Enable PED-based authentication", "Disallowed"],
  ["Performance level", "15"],
  ["Enable domestic mechanisms & key sizes", "Allowed"],
  ["Enable masking", "Allowed"],
  ["Enable cloning", "Allowed"],
  ["Enable non-FIPS algorithms", "Allowed"],
  ["Enable SO reset of partition PIN", "Allowed"],
  ["Enable network replication", "Allowed"],
  ["Enable Remote PED usage", "Allowed"],
  ["Enable unmasking", "Allowed"],
  ["Maximum number of partitions", String(MAX_PARTITIONS)],
  ["Enable Secure Trusted Channel", "Allowed"],
  ["Enable decommission on tamper", "Allowed"],
  ["Enable Functionality Modules", "Allowed"],
];

export function renderHsmShowPolicies(s: ApplianceState): string {
  const lines = [
    "",
    `   HSM Label:   ${s.label}`,
    `   Serial #:    ${s.serial}`,
    `   Firmware:    ${s.firmware}`,
    "",
    "   The following capabilities describe this HSM, and cannot be altered",
    "   except via firmware or capability updates.",
    "",
    `   ${rpad("Description", 41)}Value`,
    `   ${rpad("===========", 41)}=====`,
    ...CAPABILITIES.map(([d, v]) => `   ${rpad(d, 41)}${v}`),
    "",
    "   The following policies describe the current configuration of",
    "   this HSM and may by changed by the HSM Administrator.",
    "",
    '   Changing policies marked "destructive" will zeroize (erase',
    "   completely) the entire HSM.",
    "",
    `   ${rpad("Description", 41)}${rpad("Value", 13)}${rpad("Code", 10)}Destructive`,
    `   ${rpad("===========", 41)}${rpad("=====", 13)}${rpad("====", 10)}===========`,
    ...HSM_POLICIES.map((p) => {
      const v = s.policies.get(p.code) ?? 0;
      const shown = p.numeric ? String(v) : v === 0 ? "Off" : "On";
      return `   ${rpad(p.description, 41)}${rpad(shown, 13)}${rpad(p.code, 10)}${p.destructive ? "Yes" : "No"}`;
    }),
    "",
    "",
  ];
  return lines.join("\n") + "\n";
}

export function renderPartitionList(s: ApplianceState): string {
  if (s.partitions.length === 0) return "\n   There are no partitions.\n\n\n";
  const row = (a: string, b: string, c: string, d: string, e: string, f: string, g: string) =>
    `${rpad(a, 19)}  ${rpad(b, 32)}  ${rpad(c, 11)}  ${lpad(d, 7)}  ${lpad(e, 7)}  ${lpad(f, 7)}  ${lpad(g, 7)}`;
  const lines = [
    `${" ".repeat(78)}Storage (bytes)`,
    `${" ".repeat(55)}Partition    ${"-".repeat(34)}`,
    "Partition            Name                              Version      Objects  Total    Used     Free",
    `${"=".repeat(19)}  ${"=".repeat(32)}  ${"=".repeat(11)}  ${"=======  ".repeat(3)}=======`,
    ...s.partitions.map((p) => {
      const used = partitionUsedBytes(p);
      return row(
        p.serial,
        p.label,
        "1",
        String(p.objects),
        String(PARTITION_TOTAL_BYTES),
        String(used),
        String(PARTITION_TOTAL_BYTES - used),
      ).trimEnd();
    }),
    "",
    "",
  ];
  return lines.join("\n") + "\n";
}

const PV = 43; // value column of `partition show`

function yesNo(b: boolean): string {
  return b ? "yes" : "no";
}

function roleBlock(p: PartitionState, role: "co" | "cu", title: string): string[] {
  if (p.passwords[role] === undefined) return [`   ${title} is not initialized.`];
  const locked = p.coLockout !== "none";
  const left = locked ? `None - ${title} is Locked Out` : String(partitionAttemptsLeft(p, role));
  return [
    field(`${title} PIN To Be Changed:`, "no", PV),
    field(`${title} Locked Out:`, yesNo(locked), PV),
    field(`${title} Login Attempts Left:`, left, PV),
    ...(role === "co" ? [field(`${title} is activated:`, "no", PV)] : []),
  ];
}

export function renderPartitionShow(p: PartitionState): string {
  const used = partitionUsedBytes(p);
  const soLeft = p.zeroized ? "None - Partition SO is Zeroized" : String(partitionAttemptsLeft(p, "so"));
  const lines = [
    field("Partition Name:", p.label, PV),
    field("Partition SN:", p.serial, PV),
    field("Partition Label:", p.zeroized ? "" : p.label, PV),
    field("Partition SO PIN To Be Changed:", "no", PV),
    field("Partition SO Zeroized:", yesNo(p.zeroized), PV),
    field("Partition SO Login Attempts Left:", soLeft, PV),
    ...roleBlock(p, "co", "Crypto Officer"),
    ...roleBlock(p, "cu", "Crypto User"),
    field("Legacy Domain Has Been Set:", "no", PV),
    field(
      "Partition Storage Information (Bytes):",
      `Total=${PARTITION_TOTAL_BYTES}, Used=${used}, Free=${PARTITION_TOTAL_BYTES - used}`,
      PV,
    ),
    field("Partition Object Count:", p.objects, PV),
  ];
  return lines.join("\n") + "\n";
}

export function renderPackageList(s: ApplianceState): string {
  const lines = [
    "",
    "RPM LIST (SYSTEM)",
    "-------------------",
    ...s.packages.system,
    "",
    "RPM LIST (SOFTWARE)",
    "-------------------",
    ...s.packages.software,
    "",
  ];
  return lines.join("\n") + "\n";
}

export function renderUserList(s: ApplianceState): string {
  const row = (a: string, b: string, c: string, d: string) =>
    `${lpad(a, 20)}    ${lpad(b, 8)}    ${lpad(c, 8)}    ${lpad(d, 8)}`;
  const lines = [
    "",
    row("Users", "Roles", "Status", "RADIUS"),
    row("-".repeat(20), "-".repeat(8), "-".repeat(8), "-".repeat(8)),
    ...s.users.map((u) => row(u.name, u.role, u.status, u.radius ? "yes" : "no")),
    "",
  ];
  return lines.join("\n") + "\n";
}

export function renderClientList(s: ApplianceState): string {
  if (s.clients.size === 0) return "\nNo clients are registered.\n\n";
  const lines = ["", ...[...s.clients.values()].map((c, i) => `registered client ${i + 1}: ${c.name}`), ""];
  return lines.join("\n") + "\n";
}

export function renderClientShow(c: RegisteredClient): string {
  const parts = c.partitions.length === 0 ? "<none>" : c.partitions.map((p) => `"${p}"`).join(", ");
  const lines = ["", `ClientID:     ${c.name}`, `Hostname:     ${c.hostname}`, `Partitions:   ${parts}`, ""];
  return lines.join("\n") + "\n";
}

export function renderNtlsShow(s: ApplianceState): string {
  const status = s.ntls.listening ? "running" : "stopped";
  const lines = [
    "",
    `NTLS bound to network device: ${s.ntls.bindDevice}   IP Address: "${s.ntls.bindAddress}" (${s.ntls.bindDevice})`,
    `NTLS Port:                    ${s.ntls.port}`,
    `NTLS Status:                  ${status}`,
    "",
  ];
  return lines.join("\n") + "\n";
}
