// Test support for engine tests: the demo fleet (parsed, never started), the real evidence log, and a scripted
// shell that answers commands from a table and counts what it was sent.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseFleet } from "../../src/config/load.ts";
import type { Fleet } from "../../src/config/schema.ts";
import type {
  DeviceShell,
  EvidenceKind,
  EvidenceSink,
  ShellPort,
  ShellReply,
} from "../../src/engine/ports.ts";
import { EvidenceLog, type EvidenceRecord, evidenceFilePath } from "../../src/evidence/index.ts";
import type { TestRedis } from "../helpers/redis.ts";

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

export type Answer = (command: string) => { raw: string; result: unknown } | Error;

/** Sessions whose replies come from `answer`; every opened session and sent command is logged. */
export class ScriptedShells implements ShellPort {
  readonly sent: { on: string; command: string }[] = [];
  readonly opened: string[] = [];
  constructor(private readonly answer: (on: string, command: string) => ReturnType<Answer>) {}

  async lunash(device: string): Promise<DeviceShell> {
    return this.#shell(device);
  }
  async lunacm(host: string): Promise<DeviceShell> {
    return this.#shell(host);
  }
  async hostShell(host: string): Promise<DeviceShell> {
    return this.#shell(host);
  }
  #shell(on: string): DeviceShell {
    this.opened.push(on);
    return {
      run: async (command: string): Promise<ShellReply> => {
        this.sent.push({ on, command });
        const a = this.answer(on, command);
        if (a instanceof Error) throw a;
        return { command, raw: a.raw, result: a.result };
      },
    };
  }
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
