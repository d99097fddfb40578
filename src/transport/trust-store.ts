// Host keys the operator confirmed with `lunafleet fleet trust`, for targets whose fleet-file entry has no hostKey.
// A JSON file under the data directory ({ "<target name>": { fingerprint, host, port, trustedAt } }), written
// atomically (temp file + rename) so a crash never leaves half a file. The fleet file's hostKey always wins.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

export interface TrustedKey {
  fingerprint: string;
  host: string;
  port: number;
  /** ISO time the operator confirmed it. */
  trustedAt: string;
}

/** The data directory: $LUNAFLEET_DATA_DIR, else ./.lunafleet */
export function dataDir(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.LUNAFLEET_DATA_DIR ?? ".lunafleet");
}

export function defaultTrustStorePath(env: NodeJS.ProcessEnv = process.env): string {
  return join(dataDir(env), "known_hosts.json");
}

export class TrustStoreError extends Error {
  override name = "TrustStoreError";
}

export class TrustStore {
  readonly #file: string;
  #entries: Record<string, TrustedKey>;
  /**
   * A digest of the file's bytes as last read or written. Not its mtime: two writes within one timestamp tick (a
   * coarse filesystem clock; a rename keeps the temp file's mtime) left the mtime equal and a key `lunafleet fleet
   * trust` recorded went unseen. The file is small and read once per connection: comparing its bytes is cheap.
   */
  #readDigest: string;

  constructor(file: string = defaultTrustStorePath()) {
    this.#file = file;
    const { entries, digest } = TrustStore.#read(file);
    this.#entries = entries;
    this.#readDigest = digest;
  }

  /**
   * Read the file again when its content changed since: a running daemon takes a key `lunafleet fleet trust` recorded
   * on its next connection, without a restart. A store that became unreadable or corrupt stops there (TrustStoreError).
   */
  #refresh(): void {
    const text = TrustStore.#text(this.#file);
    if (TrustStore.#digest(text) === this.#readDigest) return;
    const { entries, digest } = TrustStore.#read(this.#file, text);
    this.#entries = entries;
    this.#readDigest = digest;
  }

  static #digest(text: string | undefined): string {
    return text === undefined ? "absent" : createHash("sha256").update(text).digest("hex");
  }

  get file(): string {
    return this.#file;
  }

  /** The file's text, or undefined when there is none yet. */
  static #text(file: string): string | undefined {
    try {
      return readFileSync(file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new TrustStoreError(`cannot read trust store ${file}: ${(err as NodeJS.ErrnoException).code}`);
    }
  }

  static #read(
    file: string,
    given: string | undefined = TrustStore.#text(file),
  ): { entries: Record<string, TrustedKey>; digest: string } {
    const digest = TrustStore.#digest(given);
    if (given === undefined) return { entries: {}, digest };
    const text = given;
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      // A corrupt trust store must not silently become "trust nothing, ask again": stop and say so.
      throw new TrustStoreError(`trust store ${file} is not valid JSON`);
    }
    if (typeof data !== "object" || data === null || Array.isArray(data))
      throw new TrustStoreError(`trust store ${file} must hold an object`);
    const out: Record<string, TrustedKey> = {};
    for (const [name, v] of Object.entries(data as Record<string, unknown>)) {
      const e = v as Partial<TrustedKey>;
      if (typeof e?.fingerprint !== "string" || !e.fingerprint.startsWith("SHA256:"))
        throw new TrustStoreError(`trust store ${file}: entry '${name}' has no SHA256 fingerprint`);
      out[name] = {
        fingerprint: e.fingerprint,
        host: String(e.host ?? ""),
        port: Number(e.port ?? 0),
        trustedAt: String(e.trustedAt ?? ""),
      };
    }
    return { entries: out, digest };
  }

  /** The trusted fingerprint for `name`, if it was recorded for the same host and port. */
  get(name: string, host?: string, port?: number): TrustedKey | undefined {
    this.#refresh();
    const e = this.#entries[name];
    if (!e) return undefined;
    // A device that moved to another address must be trusted again: the old key proves nothing about the new host.
    if (host !== undefined && e.host !== host) return undefined;
    if (port !== undefined && e.port !== port) return undefined;
    return e;
  }

  set(name: string, entry: Omit<TrustedKey, "trustedAt"> & { trustedAt?: string }): void {
    this.#refresh(); // keep what another process recorded meanwhile
    this.#entries[name] = { ...entry, trustedAt: entry.trustedAt ?? new Date().toISOString() };
    this.#readDigest = this.#write();
  }

  /** Write the entries (temp file + rename); the digest of what was written. */
  #write(): string {
    mkdirSync(dirname(this.#file), { recursive: true, mode: 0o700 });
    const tmp = `${this.#file}.${process.pid}.tmp`;
    const text = `${JSON.stringify(this.#entries, null, 2)}\n`;
    writeFileSync(tmp, text, { mode: 0o600 });
    renameSync(tmp, this.#file);
    return TrustStore.#digest(text);
  }
}
