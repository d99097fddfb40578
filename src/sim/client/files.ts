// The few files of a client host a runbook touches: the client's own certificate, the trusted server certificates
// (CAFile.pem, a view of what `vtl addServer` stored), and files it stages under /tmp, the home directory or the
// cert directories. Private keys are never readable through the twin's shell: they would land in transcripts.
import { CLIENT_CERT_DIR, type ClientHostModel, SERVER_CERT_DIR } from "./model.ts";

export const CA_FILE = `${SERVER_CERT_DIR}/CAFile.pem`;

export type FileResult = { ok: true; text: string } | { ok: false; error: string };

function homeOf(user: string): string {
  return user === "root" ? "/root" : `/home/${user}`;
}

/** Absolute, normalized path (`~`, relative paths, `.` and `..` resolved against the user's home). */
export function resolvePath(path: string, user: string): string {
  const home = homeOf(user);
  let abs = path === "~" ? home : path.startsWith("~/") ? `${home}/${path.slice(2)}` : path;
  if (!abs.startsWith("/")) abs = `${home}/${abs}`;
  const parts: string[] = [];
  for (const part of abs.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return `/${parts.join("/")}`;
}

function writableDirs(user: string): string[] {
  return ["/tmp", homeOf(user), SERVER_CERT_DIR, CLIENT_CERT_DIR];
}

function isKeyFile(model: ClientHostModel, path: string): boolean {
  return path === model.clientKeyPath || (path.startsWith(`${CLIENT_CERT_DIR}/`) && /Key\.pem$/.test(path));
}

export function readFile(model: ClientHostModel, path: string): FileResult {
  if (isKeyFile(model, path))
    return { ok: false, error: "Permission denied (private keys are not readable on this twin)" };
  if (path === model.clientCertPath) return { ok: true, text: model.certPem };
  if (path === CA_FILE)
    return {
      ok: true,
      text: model
        .servers()
        .map((s) => ensureNewline(s.certPem))
        .join(""),
    };
  const text = model.files.get(path);
  if (text !== undefined) return { ok: true, text };
  if (listDir(model, path, "root").ok) return { ok: false, error: "Is a directory" };
  return { ok: false, error: "No such file or directory" };
}

export function writeFile(model: ClientHostModel, path: string, text: string, user: string): FileResult {
  if (path === CA_FILE || path === model.clientCertPath || isKeyFile(model, path))
    return { ok: false, error: "Permission denied (managed by vtl on this twin)" };
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  if (!writableDirs(user).includes(dir)) return { ok: false, error: "Permission denied" };
  model.files.set(path, text);
  return { ok: true, text: "" };
}

/** Names in a directory, sorted (the managed views included). */
export function listDir(
  model: ClientHostModel,
  dir: string,
  user: string,
): { ok: true; names: string[] } | { ok: false } {
  const names = new Set<string>();
  for (const path of model.files.keys())
    if (path.slice(0, path.lastIndexOf("/")) === dir) names.add(path.slice(dir.length + 1));
  if (dir === SERVER_CERT_DIR) names.add("CAFile.pem");
  if (dir === CLIENT_CERT_DIR) {
    names.add(model.clientCertPath.slice(dir.length + 1));
    names.add(model.clientKeyPath.slice(dir.length + 1));
  }
  if (names.size === 0 && !writableDirs(user).includes(dir) && dir !== "/usr/safenet/lunaclient/cert")
    return { ok: false };
  if (dir === "/usr/safenet/lunaclient/cert") names.add("client").add("server");
  return { ok: true, names: [...names].sort() };
}

function ensureNewline(s: string): string {
  return s.endsWith("\n") ? s : `${s}\n`;
}
