// Binding a twin machine's TCP listener (SSH on 22xx, NTLS on 1792): both listeners bind the same way.
import { createServer, type Server as NetServer, type Socket } from "node:net";

/**
 * Listen on `host:port` (0 = ephemeral) with an exclusive handle, so a second twin cannot share the address. Rejects
 * with the listen error (EADDRINUSE...) so callers can pick another address; resolves with the bound port.
 */
export async function listenExclusive(
  host: string,
  port: number,
  onSocket: (socket: Socket) => void,
): Promise<{ tcp: NetServer; port: number }> {
  const tcp = createServer({ noDelay: true }, onSocket);
  await new Promise<void>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen({ host, port, exclusive: true }, () => {
      tcp.off("error", reject);
      resolve();
    });
  });
  // A listener error after bind (rare: EMFILE) must not crash the twin process.
  tcp.on("error", () => {});
  const bound = tcp.address();
  return { tcp, port: bound && typeof bound === "object" ? bound.port : port };
}
