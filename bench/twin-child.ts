// The twin for the benchmark, in its own process so the client's CPU (process.cpuUsage in the parent) measures the
// client alone. Usage: node --import tsx bench/twin-child.ts <devices> [--latency]
// --latency: every appliance takes as long as a real Luna (src/sim/appliance/latency.ts, its defaults, seed 1).
// Prints one JSON line {"ready":true,"startMs":..,"endpoints":[{name,host,port,hostKey}]} once every appliance
// listens. Then reads commands on stdin, one per line: `cpu` answers {"cpu":{user,system},"rss":..} (µs, bytes);
// `stop` (or stdin closing) stops the twin and exits. Passwords are never printed: the parent derives the same
// fleet from the same device count.
import { createInterface } from "node:readline";
import { realisticLunaLatency } from "../src/sim/appliance/latency.ts";
import { startTwin } from "../src/sim/twin.ts";
import { type BenchEndpoint, benchFleet } from "./fleet.ts";

const n = Number(process.argv[2]);
if (!Number.isInteger(n) || n < 1) {
  process.stderr.write("usage: twin-child.ts <devices>\n");
  process.exit(2);
}

const t0 = performance.now();
const latency = process.argv.includes("--latency") ? realisticLunaLatency(1) : undefined;
const twin = await startTwin(benchFleet(n), { rebase: true, ...(latency ? { latency } : {}) });
const endpoints: BenchEndpoint[] = twin.fleet.devices.map((d) => ({
  name: d.name,
  host: d.host,
  port: d.port,
  hostKey: d.hostKey ?? "",
}));
process.stdout.write(
  `${JSON.stringify({ ready: true, startMs: Math.round(performance.now() - t0), endpoints })}\n`,
);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await twin.stop();
  process.exit(0);
};

const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const cmd = line.trim();
  if (cmd === "cpu") {
    process.stdout.write(`${JSON.stringify({ cpu: process.cpuUsage(), rss: process.memoryUsage.rss() })}\n`);
  } else if (cmd === "stop") void stop();
});
rl.on("close", () => void stop());
