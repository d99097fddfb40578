// One job's shells (JobShells) over a lease on the shared pool: one session per target while it is usable, a fresh
// one once it is done, and close() ends every session and confirms each channel closed while the pool's connection
// stays for the next job.
import { afterEach, describe, expect, it } from "vitest";
import { JobShells } from "../../src/shell/job-shells.ts";
import { SshPool } from "../../src/transport/pool.ts";
import { FakeLunash, OK_FOOTER, targetFor } from "../transport/fake-lunash.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup() {
  const server = await new FakeLunash({
    replies: { "status date": `\r\nMon Mar  2 10:11:12 UTC 2020${OK_FOOTER}` },
  }).start();
  const pool = new SshPool();
  cleanups.push(
    () => server.stop(),
    () => pool.closeAll(),
  );
  const target = targetFor(server, { hostKey: server.fingerprint });
  const opened: number[] = [];
  const closed: number[] = [];
  const lease = pool.lease({ onChannelOpen: () => opened.push(1), onChannelClose: () => closed.push(1) });
  const shells = new JobShells({
    lease,
    targets: { device: () => target, clientHost: () => target },
    unknownPromptMs: 300,
  });
  return { server, pool, target, shells, opened, closed };
}

describe("JobShells", () => {
  it("lends one session per target while it is usable, and a fresh one once it is done", async () => {
    const { server, shells } = await setup();
    const first = await shells.lunash("hsm-fake");
    expect(await shells.lunash("hsm-fake")).toBe(first);
    expect(server.shells).toBe(1);
    // Two steps asking at once share one opening, not two shells.
    await first.close();
    const [a, b] = await Promise.all([shells.lunash("hsm-fake"), shells.lunash("hsm-fake")]);
    expect(a).toBe(b);
    expect(a).not.toBe(first);
    expect(server.shells).toBe(2);
    expect((await a.run("status date")).raw).toContain("10:11:12");
    await shells.close();
  });

  it("close() ends every session, confirms the channels closed, and leaves the pool's connection for the next job", async () => {
    const { server, pool, target, shells, opened, closed } = await setup();
    const sh = await shells.lunash("hsm-fake");
    await sh.run("status date");
    expect(shells.openChannels).toBe(1);
    await shells.close();
    expect(shells.openChannels).toBe(0);
    expect(opened).toHaveLength(1);
    expect(closed).toHaveLength(1);
    expect(sh.usable).toBe(false);
    expect(sh.transcript.toText()).toContain(">>> exit");
    // The connection is the pool's: still alive, reused by the next job's lease without a new login.
    const conn = pool.peek(target.name);
    expect(conn?.alive).toBe(true);
    const next = new JobShells({
      lease: pool.lease(),
      targets: { device: () => target, clientHost: () => target },
    });
    cleanups.push(() => next.close());
    await next.lunash("hsm-fake");
    expect(server.auths).toHaveLength(1);
    // A closed JobShells opens nothing more.
    await expect(shells.lunash("hsm-fake")).rejects.toThrow(/closed/);
  });
});
