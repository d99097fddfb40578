// Loopback addresses for the twin. Every simulated machine gets its own address (so every appliance can listen on
// the real ports, 22xx and 1792, as on a real network). The demo uses the fleet's own addresses (127.0.1.x); tests
// and the benchmark "rebase" onto a random 127.A.B.0/24 block so parallel runs do not collide.
import { randomInt } from "node:crypto";

/** Loopback blocks handed out in this process, so two twins in one test process never share a block. */
const blocksInUse = new Set<number>();

export interface LoopbackBlock {
  /** `a * 256 + b` of the first 127.a.b.0/24 block. */
  readonly first: number;
  /** How many consecutive /24 blocks (254 hosts each). */
  readonly count: number;
  /** The n-th address (0-based): .1 to .254 of the first block, then of the next one. */
  address(n: number): string;
  release(): void;
}

const HOSTS_PER_BLOCK = 254;
const A_MIN = 100;
const A_MAX = 250;

/**
 * A random run of /24 blocks big enough for `hosts` addresses (127.A.B.1..254, A in 100..250). The caller binds and
 * calls again (after `release()`) if a bind fails with EADDRINUSE: another process may own the same block.
 */
export function allocateLoopbackBlock(hosts: number): LoopbackBlock {
  const count = Math.max(1, Math.ceil(hosts / HOSTS_PER_BLOCK));
  const span = (A_MAX - A_MIN + 1) * 256;
  for (let tries = 0; tries < 1000; tries++) {
    const first = A_MIN * 256 + randomInt(0, span - count + 1);
    const ids = Array.from({ length: count }, (_, i) => first + i);
    if (ids.some((id) => blocksInUse.has(id))) continue;
    for (const id of ids) blocksInUse.add(id);
    return {
      first,
      count,
      address(n: number): string {
        if (n < 0 || n >= count * HOSTS_PER_BLOCK)
          throw new RangeError(`address ${n} outside the allocated block`);
        const block = first + Math.floor(n / HOSTS_PER_BLOCK);
        return `127.${block >> 8}.${block & 0xff}.${(n % HOSTS_PER_BLOCK) + 1}`;
      },
      release(): void {
        for (const id of ids) blocksInUse.delete(id);
      },
    };
  }
  throw new Error("no free loopback block in 127.100.0.0-127.250.255.255");
}

export function isAddressInUse(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === "EADDRINUSE";
}
