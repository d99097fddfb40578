// Certificate files of one job, over the same pooled connections as its shells: an appliance's scp area over sftp,
// a client host's Luna certificate directories over an exec channel. Public material only (server.pem, client
// certificates): the content must be PEM certificates, a path must lie in the certificate directories or /tmp, and
// no key file is ever read or written through here.
import type { ClientHost, Device, Fleet } from "../config/schema.ts";
import type { PoolLease } from "../transport/lease.ts";
import { clientHostTarget, deviceTarget } from "../transport/target.ts";
import { CommandRefused, DeviceError } from "./errors.ts";

export interface JobFiles {
  readApplianceFile(device: Device, name: string): Promise<string>;
  writeApplianceFile(device: Device, name: string, text: string): Promise<void>;
  readHostFile(host: ClientHost, path: string): Promise<string>;
  writeHostFile(host: ClientHost, path: string, text: string): Promise<void>;
}

const HEREDOC_END = "LUNAFLEET_PEM_END";

/** The command line that writes a client-host file (a quoted here-document; the body and the end marker follow). */
export const hostWriteCommand = (path: string) => `cat > ${path} <<'${HEREDOC_END}'`;
const PEM_ONLY = /^(?:-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\r?\n?)+$/;
const HOST_READ_DIRS = [
  "/usr/safenet/lunaclient/cert/server/",
  "/usr/safenet/lunaclient/cert/client/",
  "/tmp/",
];
const HOST_WRITE_DIRS = ["/usr/safenet/lunaclient/cert/server/", "/tmp/"];

export function jobFiles(fleet: Fleet, lease: PoolLease): JobFiles {
  /** One lunafleet-built command on an exec channel; a non-zero exit status is the host's answer (DeviceError). */
  const hostExec = async (host: ClientHost, command: string, label = command): Promise<string> => {
    if (host.local) throw refused(host.name, "its files are not reached over SSH (the client host is local)");
    const target = clientHostTarget(fleet, host);
    const conn = await lease.connection(target);
    const out = await conn.exec(command, target.timeouts.commandMs);
    if (out.exitCode !== 0)
      throw new DeviceError(
        { target: host.name, command: label },
        {
          code: String(out.exitCode),
          name: "EXIT_STATUS",
          message: out.output.trim().split("\n").slice(-3).join(" ") || `exit status ${out.exitCode}`,
          warnings: [],
        },
      );
    return out.output;
  };
  return {
    async readApplianceFile(device, name) {
      const target = deviceTarget(fleet, device);
      const conn = await lease.connection(target);
      const data = await conn.sftpReadFile(applianceFileName(device.name, name), target.timeouts.commandMs);
      return data.toString("utf8");
    },
    async writeApplianceFile(device, name, text) {
      const target = deviceTarget(fleet, device);
      const conn = await lease.connection(target);
      await conn.sftpWriteFile(
        applianceFileName(device.name, name),
        certificateText(device.name, name, text),
        target.timeouts.commandMs,
      );
    },
    readHostFile: (host, path) => hostExec(host, `cat ${hostPath(host.name, path, "read")}`),
    async writeHostFile(host, path, text) {
      const file = hostPath(host.name, path, "write");
      const body = certificateText(host.name, path, text).replace(/\n$/, "");
      // A quoted here-document: the shell expands nothing inside it, and the body is certificate text only.
      await hostExec(host, `${hostWriteCommand(file)}\n${body}\n${HEREDOC_END}`, hostWriteCommand(file));
    },
  };
}

function refused(target: string, why: string): CommandRefused {
  return new CommandRefused({ target }, "certificate-files-only", why);
}

/** A plain file name in an appliance's (flat) scp area. */
function applianceFileName(device: string, name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name))
    throw refused(device, `'${name}' is not a plain file name in the scp area`);
  return name;
}

/** Only certificates move through this port: never a key, never anything a shell could interpret. */
function certificateText(target: string, name: string, text: string): string {
  if (!PEM_ONLY.test(text))
    throw refused(target, `refusing to write '${name}': the content is not PEM certificates only`);
  return text;
}

/** An absolute path under the Luna certificate directories or /tmp, in characters no shell treats specially. */
function hostPath(host: string, path: string, mode: "read" | "write"): string {
  const dirs = mode === "read" ? HOST_READ_DIRS : HOST_WRITE_DIRS;
  if (
    !/^\/[A-Za-z0-9._/-]+$/.test(path) ||
    path.split("/").some((part) => part === "..") ||
    !dirs.some((d) => path.startsWith(d) && !path.slice(d.length).includes("/")) ||
    /Key\.pem$/i.test(path) ||
    /\.key$/i.test(path)
  )
    throw refused(host, `refusing to ${mode} '${path}' (only certificate files under ${dirs.join(", ")})`);
  return path;
}
