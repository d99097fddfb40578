// `evidence export --since` (src/evidence/audit.ts exportEvidence, and the CLI on a data dir with no daemon): every
// record at or after `since`, from every log, one JSON object per line naming its log, in time order — what a SIEM
// ingests. Records before `since` are left out whole; a log whose chain does not verify is still exported and named
// as a problem (exit 1), so an auditor loses nothing and is told. The records are written with their own times (the
// chain is built as EvidenceLog builds it), so the window is tested without waiting for a clock.
import { execFile } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { exportEvidence } from "../../src/evidence/audit.ts";
import { evidenceFilePath } from "../../src/evidence/copies.ts";
import { buildRecord, type EvidenceRecord, genesisHash } from "../../src/evidence/record.ts";
import { tempDir } from "../helpers/ssh-signing.ts";

const dataDir = tempDir("lf-export-");
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));
const bin = fileURLToPath(new URL("../../bin/lunafleet.js", import.meta.url));

/** A log's JSONL file with records at the given times (a valid chain, as EvidenceLog writes it). */
function writeLog(jobId: string, times: string[], edit?: (lines: string[]) => void): EvidenceRecord[] {
  const records: EvidenceRecord[] = [];
  const lines: string[] = [];
  let prevHash = genesisHash(jobId);
  times.forEach((at, i) => {
    const { record, line } = buildRecord({
      jobId,
      seq: i + 1,
      at,
      kind: i === 0 ? "requested" : "step",
      data: i === 0 ? { runbook: "tcp-check" } : { id: `s${i}`, state: "done" },
      actor: "alice",
      prevHash,
    });
    prevHash = record.hash;
    records.push(record);
    lines.push(line);
  });
  edit?.(lines);
  mkdirSync(`${dataDir}/evidence`, { recursive: true });
  writeFileSync(evidenceFilePath(dataDir, jobId), `${lines.join("\n")}\n`);
  return records;
}

const older = writeLog("export-old", ["2030-01-01T10:00:00.000Z", "2030-01-01T10:00:01.000Z"]);
const spanning = writeLog("export-span", [
  "2030-01-01T11:59:59.999Z",
  "2030-01-01T12:00:00.000Z",
  "2030-01-01T12:30:00.000Z",
]);
const recent = writeLog("export-new", ["2030-01-01T12:15:00.000Z", "2030-01-01T12:45:00.000Z"]);
writeLog("export-edited", ["2030-01-01T12:20:00.000Z", "2030-01-01T12:21:00.000Z"], (lines) => {
  lines[1] = lines[1]!.replace('"state":"done"', '"state":"skipped"');
});
const since = new Date("2030-01-01T12:00:00.000Z");

describe("evidence export --since", () => {
  it("exports every record at or after since, from every log, in time order, each naming its log", () => {
    const { lines, problems } = exportEvidence(dataDir, since);
    const exported = lines.map((l) => JSON.parse(l) as EvidenceRecord & { log: string });
    expect(exported.map((r) => `${r.at} ${r.log} ${r.seq}`)).toEqual([
      "2030-01-01T12:00:00.000Z export-span 2",
      "2030-01-01T12:15:00.000Z export-new 1",
      "2030-01-01T12:20:00.000Z export-edited 1",
      "2030-01-01T12:21:00.000Z export-edited 2",
      "2030-01-01T12:30:00.000Z export-span 3",
      "2030-01-01T12:45:00.000Z export-new 2",
    ]);
    // Each record whole, as stored (hash and prevHash included: a SIEM can re-check the chain).
    const { log: _l, ...first } = exported[0]!;
    expect(first).toEqual(spanning[1]);
    expect(exported.find((r) => r.log === "export-new" && r.seq === 2)).toMatchObject(recent[1]!);
    expect(exported.some((r) => r.log === "export-old")).toBe(false);
    expect(older).toHaveLength(2);
    // The edited log is exported (nothing hidden from the auditor) and named as not verifying.
    expect(problems).toEqual([
      { log: "export-edited", detail: expect.stringMatching(/record 1: hash mismatch/) },
    ]);
  });

  it("the CLI on a data dir without a daemon: the same lines, the problem on stderr, exit 1; a bad --since is exit 2", async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        const env = Object.fromEntries(
          Object.entries(process.env).filter(([k]) => !k.startsWith("REDIS_") && !k.startsWith("LUNAFLEET_")),
        );
        execFile(process.execPath, [bin, ...args, "--data-dir", dataDir], { env }, (err, stdout, stderr) =>
          resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        );
      });
    const [out, bad] = await Promise.all([
      run(["evidence", "export", "--since", since.toISOString()]),
      run(["evidence", "export", "--since", "last tuesday"]),
    ]);
    expect(out.code).toBe(1);
    expect(out.stdout).toBe(
      exportEvidence(dataDir, since)
        .lines.map((l) => `${l}\n`)
        .join(""),
    );
    expect(out.stderr).toMatch(
      /evidence export: log export-edited does not verify: .*record 1: hash mismatch/,
    );
    expect(out.stderr).toContain(`evidence export: 6 records since ${since.toISOString()}`);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("evidence export: --since 'last tuesday' is not a time (ISO, or 24h / 7d)");
  }, 60_000);
});
