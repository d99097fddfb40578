// The engine's per-job session cache: a shell is lent to every step of the job while it is usable, and a shell that
// is done (lost, aborted, or abandoned after an unreadable reply) is never lent again: the next step gets a new one.
import { describe, expect, it } from "vitest";
import type { ClientHost, Device } from "../../src/config/schema.ts";
import { type DeviceShell, SessionCache, type SessionProvider } from "../../src/engine/context.ts";

class CountingProvider implements SessionProvider {
  readonly shells: { usable: boolean; n: number }[] = [];
  #open(): DeviceShell & { usable: boolean } {
    const shell = {
      usable: true,
      n: this.shells.length + 1,
      run: async (command: string) => ({ command, raw: "", result: { ok: true } }),
    };
    this.shells.push(shell);
    return shell;
  }
  lunash = async (_d: Device) => this.#open();
  lunacm = async (_h: ClientHost) => this.#open();
  clientShell = async (_h: ClientHost) => this.#open();
}

describe("SessionCache", () => {
  it("lends one shell per target while it is usable, and a fresh one once it is done", async () => {
    const provider = new CountingProvider();
    const cache = new SessionCache(provider);
    const host = { name: "client-x" } as ClientHost;
    const first = await cache.lunacm(host);
    expect(await cache.lunacm(host)).toBe(first);
    expect(provider.shells).toHaveLength(1);
    provider.shells[0]!.usable = false;
    const second = await cache.lunacm(host);
    expect(second).not.toBe(first);
    expect(provider.shells).toHaveLength(2);
    expect(await cache.lunacm(host)).toBe(second);
    // Other targets and kinds are separate.
    await cache.lunash({ name: "hsm-x" } as Device);
    expect(provider.shells).toHaveLength(3);
  });
});
