// Test support for engine tests: the demo fleet (parsed, never started), an evidence collector, and a scripted
// shell that answers commands from a table and counts what it was sent.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseFleet } from "../../src/config/load.ts";
import type { Fleet } from "../../src/config/schema.ts";
import type { DeviceShell, EvidenceSink, SessionProvider, ShellReply } from "../../src/engine/context.ts";

export function demoFleet(): Fleet {
  const parsed = parseFleet(readFileSync(join(import.meta.dirname, "../../config/demo.yaml"), "utf8"));
  if (!parsed.ok) throw new Error(`demo.yaml does not parse: ${JSON.stringify(parsed.issues)}`);
  return parsed.fleet;
}

export interface EvidenceRecord {
  kind: string;
  data: unknown;
  actor?: string;
}

/** Collects what the engine appends, in order (the real hash-chained log is tested by its owners). */
export class CollectingEvidence implements EvidenceSink {
  readonly records: EvidenceRecord[] = [];
  async append(kind: string, data: unknown, actor?: string): Promise<void> {
    this.records.push({ kind, data: JSON.parse(JSON.stringify(data)), ...(actor ? { actor } : {}) });
  }
  kinds(): string[] {
    return this.records.map((r) => r.kind);
  }
  text(): string {
    return JSON.stringify(this.records);
  }
}

export type Answer = (command: string) => { raw: string; result: unknown } | Error;

/** Sessions whose replies come from `answer`; every opened session and sent command is logged. */
export class ScriptedSessions implements SessionProvider {
  readonly sent: { on: string; command: string }[] = [];
  readonly opened: string[] = [];
  constructor(private readonly answer: (on: string, command: string) => ReturnType<Answer>) {}

  async lunash(device: { name: string }): Promise<DeviceShell> {
    return this.#shell(device.name);
  }
  async lunacm(host: { name: string }): Promise<DeviceShell> {
    return this.#shell(host.name);
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
export const noSessions: SessionProvider = {
  lunash: async (d) => {
    throw new Error(`test: a session to ${d.name} was opened`);
  },
  lunacm: async (h) => {
    throw new Error(`test: a session to ${h.name} was opened`);
  },
};
