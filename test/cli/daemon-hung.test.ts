// A daemon that hangs is not a daemon that is down: its Redis socket is there and accepts the connection, then never
// answers (a stopped process, a wedged host, a partition on the way to REDIS_URL). Every command must still end with
// one plain line and exit 3 (README "Exit codes"), within its deadline, instead of waiting forever. Two hangs:
//   - silent: accepts and answers nothing (not even the first PING);
//   - stalled: answers the connection's handshake (HELLO, CLIENT, INFO, PING) and then nothing, as a link that dies
//     mid-session does.
// The deadline is injected (LUNAFLEET_CLI_TIMEOUT_MS, a short one here): the error names it, and the test asserts
// that every command ends with exit 3 — no wall-clock measurement that load could flake.
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { embeddedRedisSocketPath } from "../../src/redis/embedded-server.ts";

const bin = fileURLToPath(new URL("../../bin/lunafleet.js", import.meta.url));
// The silent server is asked once (the first PING) and never answers, so any deadline shows it. The stalled one must
// answer its handshake within the deadline even on a loaded machine, so that the deadline that fires is the one of a
// command after it (what this case is about): a generous one there — it is waited once per command, never measured.
const DEADLINE_MS = { silent: 400, stalled: 2500 } as const;

const COMMANDS = [
  ["jobs"],
  ["job", "some-job"],
  ["job", "cancel", "some-job"],
  ["approvals"],
  ["reject", "some-job", "--reason", "not now"],
  ["guard", "status"],
  ["ha", "breakers"],
  ["schedule", "list"],
  ["report"],
  ["run", "tcp-check", "fleet"],
];

/** RESP commands of a chunk, by name (enough for the handshake; the bodies are not needed). */
function commandNames(buf: string): string[] {
  const names: string[] = [];
  for (const m of buf.matchAll(/\*\d+\r\n\$\d+\r\n([A-Za-z]+)\r\n/g)) names.push(m[1]!.toUpperCase());
  // Inline commands (a bare `PING\r\n`).
  for (const m of buf.matchAll(/(?:^|\n)(PING)\r\n/g)) names.push(m[1]!);
  return names;
}

/** A server on `path` that accepts and then, per `mode`, answers nothing or only a connection's handshake. */
function hungServer(path: string, mode: "silent" | "stalled"): Promise<{ server: Server; seen: string[] }> {
  const seen: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((sock) => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
    sock.on("error", () => {});
    sock.setEncoding("utf8");
    sock.on("data", (chunk: string) => {
      for (const name of commandNames(chunk)) {
        seen.push(name);
        if (mode === "silent") continue;
        // ioredis 6 opens with HELLO 3: answered as a Redis without RESP3 would, so it carries on in RESP2.
        if (name === "HELLO") sock.write("-ERR unknown command 'HELLO'\r\n");
        else if (name === "PING") sock.write("+PONG\r\n");
        else if (name === "INFO") {
          const info = "# Server\r\nredis_version:7.0.15\r\n# Persistence\r\nloading:0\r\n";
          sock.write(`$${Buffer.byteLength(info)}\r\n${info}\r\n`);
        } else if (name === "CLIENT" || name === "SELECT") sock.write("+OK\r\n");
        // anything else: no answer, ever
      }
    });
  });
  server.on("close", () => {
    for (const s of sockets) s.destroy();
  });
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => resolve({ server, seen }));
  });
}

function lunafleet(
  args: string[],
  dataDir: string,
  deadlineMs: number,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("REDIS_"))),
    LUNAFLEET_CLI_TIMEOUT_MS: String(deadlineMs),
  };
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args, "--data-dir", dataDir], { env }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

// The bin rebuilds itself once when sources changed, saying so on stderr: done here, so each command's stderr is its own.
beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), "lf-hung-build-"));
  try {
    expect((await lunafleet(["--version"], dir, DEADLINE_MS.silent)).code).toBe(0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

describe("a hung daemon: every command one plain line, exit 3, within its deadline", () => {
  it.each([
    ["silent", /the daemon is not running on data dir .* \(no Redis at .*: no answer within 400 ms\)\. /],
    ["stalled", /the daemon's Redis at .* did not answer within 2500 ms/],
  ] as const)(
    "a socket that accepts and %s",
    async (mode, said) => {
      const dataDir = mkdtempSync(join(tmpdir(), `lf-hung-${mode}-`));
      const { server, seen } = await hungServer(embeddedRedisSocketPath(dataDir), mode);
      cleanup = async () => {
        await new Promise<void>((r) => server.close(() => r()));
        rmSync(dataDir, { recursive: true, force: true });
      };
      for (const args of COMMANDS) {
        const r = await lunafleet(args, dataDir, DEADLINE_MS[mode]);
        const what = `${args.join(" ")}: ${r.stderr}`;
        expect(r.code, what).toBe(3);
        expect(r.stderr.trim().split("\n"), what).toHaveLength(1);
        expect(r.stderr, what).toMatch(said);
        expect(r.stderr, what).not.toMatch(/\n\s+at /);
        expect(r.stdout, what).toBe("");
      }
      // The commands did reach the server: it was asked and did not answer (not a refused connection).
      expect(seen).toContain("PING");
      if (mode === "stalled")
        expect(seen.some((n) => !["HELLO", "PING", "INFO", "CLIENT", "SELECT"].includes(n))).toBe(true);
    },
    180_000,
  );
});
