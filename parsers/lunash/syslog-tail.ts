// `syslog tail -logname <log> -entries <n>`: appliance log lines. What we extract is NTLS handshake failures — the
// sign that a client no longer trusts server.pem (or the appliance no longer trusts the client cert). The sequence
// per NTLS process is:
//   NTLS[8508]: info : 0 : Incoming connection request... : 192.168.50.2/59415
//   NTLS[8508]: Error message from SSLAccept is : error:14094418:SSL routines:ssl3_read_bytes:tlsv1 alert unknown ca
//   NTLS[8508]: Error during SSL accept ( RC_SSL_ERROR )
//   NTLS[8508]: info : 0xc0000711 : Fail to establish a secure channel with client : 192.168.50.2/59415 : RC_SSL_FAILED_HANDSHAKE
// The SSL reason line carries no peer, so it is tied to the failure by the NTLS process id. Log lines themselves are
// free text and are all accepted; a handshake-failure line whose peer cannot be read fails the parse.
import { z } from "zod";
import { conform, ParseError } from "../common.ts";
import { readLunashOutput } from "./capture.ts";

export const command = "syslog tail";

export const schema = z.strictObject({
  /** Log lines as printed (blank lines dropped). */
  lines: z.array(z.string()),
  handshakeFailures: z.array(
    z.strictObject({
      peerAddress: z.string().min(1),
      peerPort: z.number().int().min(0).max(65535),
      /** Last SSL reason of the same NTLS process, e.g. `tlsv1 alert unknown ca`; null when none was logged. */
      reason: z.string().nullable(),
      /** Full OpenSSL error string, when logged. */
      sslError: z.string().nullable(),
      /** Symbolic code at the end of the line (`RC_SSL_FAILED_HANDSHAKE`). */
      code: z.string().min(1),
      /** Luna return code in the line (`0xc0000711`). */
      returnCode: z.string().nullable(),
      /** Syslog timestamp prefix as printed, when present. */
      timestamp: z.string().nullable(),
      pid: z.number().int().nullable(),
    }),
  ),
});
export type SyslogTail = z.infer<typeof schema>;

// `Apr 13 14:17:15 host ...` or RFC 3339 `2024-03-02T10:11:12.123+00:00 host ...`
const TIMESTAMP =
  /^\s*([A-Z][a-z]{2}\s+\d{1,2}\s+\d{2}:\d{2}:\d{2}|\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)\s/;
const NTLS_PID = /\bNTLS\[(\d+)\]:/;
const SSL_REASON = /Error message from SSLAccept is\s*:\s*(\S.*?)\s*$/;
const FAIL_MARK = /Fail to establish a secure channel|RC_SSL_FAILED_HANDSHAKE/;
const FAIL =
  /:\s*(0x[0-9a-fA-F]+|\d+)\s*:\s*Fail to establish a secure channel with client\s*:\s*([0-9A-Fa-f.:]+)\/(\d+)\s*:\s*([A-Z_][A-Z0-9_]*)\s*$/;

export function parse(raw: string): SyslogTail {
  const capture = readLunashOutput(raw, command);
  const lines = capture.lines.filter((l) => l.trim() !== "");
  const lastReason = new Map<number | null, { reason: string; sslError: string }>();
  const failures: SyslogTail["handshakeFailures"] = [];
  for (const line of lines) {
    const pidMatch = NTLS_PID.exec(line);
    const pid = pidMatch ? Number(pidMatch[1]) : null;
    // A new connection on this NTLS process: an SSL reason logged earlier belongs to an earlier connection.
    if (/Incoming connection request/.test(line)) {
      lastReason.delete(pid);
      continue;
    }
    const reason = SSL_REASON.exec(line);
    if (reason) {
      const sslError = reason[1] ?? "";
      // OpenSSL form `error:14094418:SSL routines:ssl3_read_bytes:tlsv1 alert unknown ca`: the reason is the last field.
      const fields = sslError.split(":");
      lastReason.set(pid, { sslError, reason: (fields[fields.length - 1] ?? sslError).trim() });
      continue;
    }
    if (!FAIL_MARK.test(line)) continue;
    const m = FAIL.exec(line);
    if (!m)
      throw new ParseError(`unreadable NTLS handshake failure line: ${JSON.stringify(line.trim())}`, raw);
    const port = Number(m[3]);
    if (port > 65535) throw new ParseError(`peer port out of range in ${JSON.stringify(line.trim())}`, raw);
    const why = lastReason.get(pid) ?? null;
    lastReason.delete(pid);
    failures.push({
      peerAddress: m[2] ?? "",
      peerPort: port,
      reason: why?.reason ?? null,
      sslError: why?.sslError ?? null,
      code: m[4] ?? "",
      returnCode: m[1]?.startsWith("0x") ? m[1].toLowerCase() : null,
      timestamp: TIMESTAMP.exec(line)?.[1] ?? null,
      pid,
    });
  }
  return conform(schema, { lines: lines.map((l) => l.trimEnd()), handshakeFailures: failures }, raw);
}
