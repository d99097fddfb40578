// Test support for engine tests: the demo fleet (parsed, never started), the real evidence log, and a scripted
// shell that answers commands from a table and counts what it was sent.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseFleet } from "../../src/config/load.ts";
import type { Fleet } from "../../src/config/schema.ts";
import type { DeviceShell, EvidenceKind, EvidenceSink, ShellPort } from "../../src/engine/ports.ts";
import { EvidenceLog, type EvidenceRecord, evidenceFilePath } from "../../src/evidence/index.ts";
import {
  hostShellPlatform,
  lunacmPlatform,
  lunashPlatform,
  type PlatformTable,
} from "../../src/shell/platform.ts";
import type { RunOutput } from "../../src/shell/session.ts";
import type { TestRedis } from "./redis.ts";

export function demoFleet(): Fleet {
  const parsed = parseFleet(readFileSync(join(import.meta.dirname, "../../config/demo.yaml"), "utf8"));
  if (!parsed.ok) throw new Error(`demo.yaml does not parse: ${JSON.stringify(parsed.issues)}`);
  return parsed.fleet;
}

/** The real evidence log of one job, opened on first use, with read-back helpers for assertions. */
export class JobEvidence implements EvidenceSink {
  #log: Promise<EvidenceLog> | undefined;
  constructor(
    private readonly redis: TestRedis,
    readonly jobId: string,
  ) {}
  #open(): Promise<EvidenceLog> {
    this.#log ??= EvidenceLog.open(this.redis.client(), this.redis.dataDir, this.jobId);
    return this.#log;
  }
  async append(kind: EvidenceKind, data: unknown, actor?: string): Promise<unknown> {
    return (await this.#open()).append(kind, data, actor);
  }
  async records(): Promise<EvidenceRecord[]> {
    return (await this.#open()).records();
  }
  async kinds(): Promise<string[]> {
    return (await this.records()).map((r) => r.kind);
  }
  async text(): Promise<string> {
    const file = existsSync(evidenceFilePath(this.redis.dataDir, this.jobId))
      ? readFileSync(evidenceFilePath(this.redis.dataDir, this.jobId), "utf8")
      : "";
    return JSON.stringify(await this.records()) + file;
  }
  async verify(): Promise<boolean> {
    return (await (await this.#open()).verify()).ok;
  }
}

/** A device's answer to one command: its reply text exactly as the device prints it, or an error thrown instead. */
export type Answer = (on: string, command: string) => string | Error;

/**
 * Sessions whose replies come from `answer` (real-format text, read by the command's own parser as on a device); every
 * opened session and sent command is logged.
 */
export class ScriptedShells implements ShellPort {
  readonly sent: { on: string; command: string }[] = [];
  readonly opened: string[] = [];
  constructor(private readonly answer: Answer) {}

  async lunash(device: string): Promise<DeviceShell> {
    return this.#shell(device, lunashPlatform);
  }
  async lunacm(host: string): Promise<DeviceShell> {
    return this.#shell(host, lunacmPlatform);
  }
  async hostShell(host: string): Promise<DeviceShell> {
    return this.#shell(host, hostShellPlatform);
  }
  #shell(on: string, platform: PlatformTable): DeviceShell {
    this.opened.push(on);
    let abandoned: string | undefined;
    return {
      target: on,
      platform,
      get usable() {
        return abandoned === undefined;
      },
      abandon: (reason: string) => {
        abandoned = reason;
      },
      run: async (command: string): Promise<RunOutput> => {
        this.sent.push({ on, command });
        const raw = this.answer(on, command);
        if (raw instanceof Error) throw raw;
        const footer = /^[ \t]*Command Result[ \t]*:.*$/m.exec(raw)?.[0] ?? null;
        return { command, canonical: command, raw, footer, notices: [], confirmed: [], durationMs: 0 };
      },
    };
  }
}

/** An `hsm show` reply as a Luna 7 prints it (the parser fixture), for the appliance with `serial`. */
export function hsmShowReply(serial: string): string {
  const text = readFileSync(
    join(import.meta.dirname, "../../parsers/fixtures/hsm-show/luna7-initialized.txt"),
    "utf8",
  );
  const lines = text.split("\n").filter((l) => !/lunash:>/.test(l));
  return `${lines.join("\n").replace(/(Serial #:\s+)\d+/, `$1${serial}`)}\n`;
}

/** Sessions that must never be opened (plan, rejected jobs). */
export const noShells: ShellPort = {
  lunash: async (d) => {
    throw new Error(`test: a session to ${d} was opened`);
  },
  lunacm: async (h) => {
    throw new Error(`test: a session to ${h} was opened`);
  },
  hostShell: async (h) => {
    throw new Error(`test: a session to ${h} was opened`);
  },
};
