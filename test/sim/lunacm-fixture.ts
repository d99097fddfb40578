// A small twin fleet for the client-host interpreter tests, and a fake ShellIO that collects what a session writes.
import { safeParseFleet } from "../../src/config/schema.ts";
import { createApplianceState } from "../../src/sim/appliance/factory.ts";
import { type ClientHostTwin, createClientHostTwin } from "../../src/sim/client/index.ts";
import type { ShellIO } from "../../src/sim/shell-session.ts";
import type { ApplianceState } from "../../src/sim/state.ts";

export const CO_PASSWORD = "CryptoOff-T1-secret";
export const PSO_PASSWORD = "ParSo-T1-secret";

export interface FixtureOptions {
  policy15?: 0 | 1;
  membersDown?: string[];
  staleServerCerts?: string[];
  retryCount?: number;
}

/** Three appliances with one partition each (t3's partition has a foreign cloning domain), one client, one HA group. */
export function testFleet(opts: FixtureOptions = {}) {
  const device = (n: number, objects: number, actualDomain?: string) => ({
    name: `hsm-t${n}`,
    host: `127.0.9.${n}`,
    serial: `90000${n}`,
    credentials: { appliance: `Appliance-T${n}-pw`, hsmSo: `HsmSo-T${n}-secret` },
    partitions: [
      {
        label: "par-pay",
        serial: `190000${n}000001`,
        cloningDomain: "payments",
        // All members of an HA group share the CO password.
        credentials: { partitionSo: PSO_PASSWORD, co: CO_PASSWORD },
        sim: { objects, ...(actualDomain ? { actualCloningDomain: actualDomain } : {}) },
      },
    ],
    sim: { policy15: opts.policy15 ?? 0 },
  });
  const parsed = safeParseFleet({
    version: 1,
    twin: true,
    devices: [device(1, 5), device(2, 2), device(3, 2, "legacy-lab")],
    clientHosts: [
      {
        name: "client-t",
        host: "127.0.9.20",
        clientName: "client-t",
        credentials: { ssh: "ClientHost-T-pw" },
        assignments: [1, 2, 3].map((n) => ({ device: `hsm-t${n}`, partitions: ["par-pay"] })),
        sim: {
          membersDown: opts.membersDown ?? [],
          staleServerCerts: opts.staleServerCerts ?? [],
          haRetryCount: opts.retryCount ?? 0,
        },
      },
    ],
    haGroups: [
      {
        label: "ha-pay",
        clientHost: "client-t",
        cloningDomain: "payments",
        members: [1, 2, 3].map((n) => ({ device: `hsm-t${n}`, partition: "par-pay" })),
      },
    ],
  });
  if (!parsed.success) throw new Error(`test fleet invalid: ${parsed.error.message}`);
  return parsed.data;
}

export interface Harness {
  twin: ClientHostTwin;
  appliances: Map<string, ApplianceState>;
}

export async function buildHarness(opts: FixtureOptions = {}): Promise<Harness> {
  const fleet = testFleet(opts);
  const appliances = new Map<string, ApplianceState>();
  for (const dev of fleet.devices) appliances.set(dev.name, await createApplianceState(fleet, dev));
  const twin = await createClientHostTwin(fleet, fleet.clientHosts[0]!, appliances);
  return { twin, appliances };
}

export class FakeIO implements ShellIO {
  output = "";
  closed = false;
  exitCode: number | undefined;
  destroyed = false;
  write(text: string): void {
    if (this.closed) throw new Error("write after close");
    this.output += text;
  }
  close(exitCode?: number): void {
    this.closed = true;
    this.exitCode = exitCode;
  }
  destroy(): void {
    this.destroyed = true;
  }
  /** Output written since the last call. */
  private mark = 0;
  take(): string {
    const out = this.output.slice(this.mark);
    this.mark = this.output.length;
    return out;
  }
}

let sessionIds = 1;

/** Run one command on the exec channel. */
export function exec(
  twin: ClientHostTwin,
  command: string,
): { output: string; exitCode: number | undefined } {
  const io = new FakeIO();
  twin.exec(command, io, { user: "root", session: sessionIds++ });
  if (!io.closed) throw new Error(`exec '${command}' did not close the channel`);
  return { output: io.output, exitCode: io.exitCode };
}

/** An interactive session; `send` types a line and returns what the twin wrote in reply. */
export function interactive(twin: ClientHostTwin, pty = false) {
  const io = new FakeIO();
  const shell = twin.openShell(io, { user: "root", session: sessionIds++, pty });
  shell.start();
  const opening = io.take();
  return {
    io,
    shell,
    opening,
    send(line: string): string {
      shell.input(`${line}\r`);
      return io.take();
    },
  };
}

/** `lunacm -q <command>` on the exec channel. */
export function lunacmQ(twin: ClientHostTwin, command: string) {
  return exec(twin, `lunacm -q ${command}`);
}
