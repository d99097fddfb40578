// The `vtl` subset a runbook uses on a client host (reference/luna-cli.md §8.5): list/add/delete the NTLS servers the
// client trusts, verify which partitions it really reaches, and fingerprint a certificate file.
import { md5ColonFingerprint } from "../certs.ts";
import { matchName, type OptionSpec, parseOptions } from "./args.ts";
import { readFile, resolvePath } from "./files.ts";
import { type ClientHostModel, LINK_FAULT_TEXT, parseCertificate } from "./model.ts";

export interface ToolResult {
  output: string;
  exitCode: number;
}

const ok = (output: string): ToolResult => ({ output, exitCode: 0 });
const fail = (output: string): ToolResult => ({ output, exitCode: 1 });

interface VtlCommand {
  name: string;
  aliases?: readonly string[];
  options: readonly OptionSpec[];
  run(model: ClientHostModel, opts: Map<string, string | true>, user: string): ToolResult;
}

/** A certificate file given with `-c`, read and checked. */
function certificateFile(
  model: ClientHostModel,
  raw: string | true | undefined,
  user: string,
): { ok: true; pem: string } | { ok: false; result: ToolResult } {
  if (typeof raw !== "string")
    return { ok: false, result: fail("Error: -c <certificate file> is required.\n") };
  const file = readFile(model, resolvePath(raw, user));
  if (!file.ok)
    return { ok: false, result: fail(`Error: Unable to read certificate file ${raw}: ${file.error}.\n`) };
  if (!parseCertificate(file.text))
    return { ok: false, result: fail(`Error: ${raw} does not contain a valid PEM certificate.\n`) };
  return { ok: true, pem: file.text };
}

const listServers: VtlCommand = {
  name: "listServers",
  aliases: ["l"],
  options: [],
  run(model) {
    const servers = model.servers();
    if (servers.length === 0) return ok("There are no servers registered.\n");
    return ok(servers.map((s) => `Server: ${s.host}  HTL required: no\n`).join(""));
  },
};

const addServer: VtlCommand = {
  name: "addServer",
  aliases: ["a"],
  options: [
    { name: "n", kind: "value" },
    { name: "c", kind: "value" },
    { name: "htl", kind: "flag" },
  ],
  run(model, opts, user) {
    const host = opts.get("n");
    if (typeof host !== "string" || host === "") return fail("Error: -n <server> is required.\n");
    const cert = certificateFile(model, opts.get("c"), user);
    if (!cert.ok) return cert.result;
    if (model.servers().some((s) => s.host === host))
      return fail(
        `Error: Server ${host} is already in the server list. Use 'vtl deleteServer -n ${host}' first.\n`,
      );
    const device = model.deviceForHost(host);
    if (device !== undefined && !model.serverCerts.has(device)) {
      model.serverCerts.set(device, cert.pem);
      model.serverHosts.set(device, host);
    } else model.otherServers.set(host, cert.pem);
    return ok(`\nNew server ${host} successfully added to server list.\n\n`);
  },
};

const deleteServer: VtlCommand = {
  name: "deleteServer",
  aliases: ["d"],
  options: [{ name: "n", kind: "value" }],
  run(model, opts) {
    const host = opts.get("n");
    if (typeof host !== "string" || host === "") return fail("Error: -n <server> is required.\n");
    for (const [device, h] of model.serverHosts)
      if (h === host) {
        model.serverHosts.delete(device);
        model.serverCerts.delete(device);
        return ok(`\nServer ${host} successfully deleted from server list.\n\n`);
      }
    if (model.otherServers.delete(host))
      return ok(`\nServer ${host} successfully deleted from server list.\n\n`);
    return fail(`Error: Server ${host} is not in the server list.\n`);
  },
};

const verify: VtlCommand = {
  name: "verify",
  aliases: ["v"],
  options: [],
  run(model) {
    const banner = `vtl (64-bit) v${model.version}. Copyright (c) 2024 Thales Group. All rights reserved.\n\n`;
    const servers = model.servers();
    if (servers.length === 0) return fail(`${banner}Error: There are no registered servers\n`);
    const errors: string[] = [];
    for (const s of servers) {
      const link =
        s.device === undefined
          ? { ok: false as const, fault: "no-appliance" as const }
          : model.linkTo(s.device);
      if (!link.ok)
        errors.push(`Error: Unable to communicate with server ${s.host}: ${LINK_FAULT_TEXT[link.fault]}.`);
    }
    const slots = model.slots().filter((x) => x.kind === "partition");
    let out = banner;
    if (errors.length > 0) out += `${errors.join("\n")}\n\n`;
    if (slots.length === 0) return fail(`${out}Error: No Luna SA Slots/Partitions were found.\n`);
    out += "The following Luna SA Slots/Partitions were found:\n\n";
    out += "Slot    Serial #                Label\n";
    out += "====    ================        =====\n";
    for (const slot of slots)
      if (slot.kind === "partition")
        out += `${String(slot.id).padStart(4)}${slot.partition.serial.padStart(20)}        ${slot.partition.label}\n`;
    return { output: out, exitCode: errors.length > 0 ? 1 : 0 };
  },
};

const fingerprint: VtlCommand = {
  name: "fingerprint",
  aliases: ["f"],
  options: [{ name: "c", kind: "value" }],
  run(model, opts, user) {
    const cert = certificateFile(model, opts.get("c"), user);
    if (!cert.ok) return cert.result;
    return ok(`Certificate fingerprint: ${md5ColonFingerprint(cert.pem)}\n`);
  },
};

const COMMANDS: readonly VtlCommand[] = [listServers, addServer, deleteServer, verify, fingerprint];

/** Run `vtl <subcommand> ...` (words after `vtl`). */
export function runVtl(model: ClientHostModel, words: readonly string[], user: string): ToolResult {
  const [sub, ...rest] = words;
  const usage = `Usage: vtl <command> [options]\n  commands: ${COMMANDS.map((c) => c.name).join(", ")}\n`;
  if (sub === undefined) return fail(usage);
  const cmd = matchName(sub, COMMANDS);
  if (!cmd) return fail(`Error: Unknown command '${sub}'.\n${usage}`);
  const parsed = parseOptions(rest, cmd.options);
  if (!parsed.ok) return fail(`Error: ${parsed.error}\n`);
  return cmd.run(model, parsed.values, user);
}
