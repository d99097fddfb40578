// The realistic-latency case (issue 15 item 5): a twin whose appliances take as long as real Luna appliances (login
// ~1.5 s, `hsm show` ~0.5 s, ±20 % jitter: src/sim/appliance/latency.ts) and a fresh sweep of N devices at concurrency
// C — connect, log in, `hsm show` parsed, exit. The appliances then bound the sweep; what lunafleet adds must vanish:
// the run should take no more than 1.25× the ideal, devices × nominal per-device time ÷ concurrency (the jitter is
// symmetric, so its mean is the nominal). p50/p99 of the per-device time are reported beside it.
import { realisticLunaLatency } from "../src/sim/appliance/latency.ts";
import { benchFleet, pinFleet } from "./fleet.ts";
import { fmt, percentile } from "./stats.ts";
import { freshSweep } from "./sweep.ts";
import { startTwinProcess } from "./twin-process.ts";

export interface LatencyFigures {
  devices: number;
  concurrency: number;
  ok: number;
  errors: string[];
  /** Nominal time one device takes (login + `hsm show`), ms. */
  perDeviceMs: number;
  idealMs: number;
  wallMs: number;
  /** wall ÷ ideal. */
  ratio: number;
  p50Ms: number;
  p99Ms: number;
  cpuMsPerDevice: number;
}

/** What the case must reach: within this factor of the ideal. */
export const LATENCY_TARGET_RATIO = 1.25;

export async function runLatencyCase(opts: {
  devices: number;
  concurrency: number;
  log: (line: string) => void;
}): Promise<LatencyFigures> {
  const { devices, concurrency, log } = opts;
  const profile = realisticLunaLatency();
  const perDeviceMs = profile.loginMs + (profile.commandMs["hsm show"] ?? profile.otherCommandMs);
  const twin = await startTwinProcess(devices, 300_000, { latency: true });
  try {
    log(`twin (realistic latency): ${devices} appliances up in ${twin.startMs} ms`);
    const fleet = pinFleet(benchFleet(devices), twin.endpoints);
    const sweep = await freshSweep(fleet, concurrency);
    const idealMs = (devices * perDeviceMs) / concurrency;
    const figures: LatencyFigures = {
      devices,
      concurrency,
      ok: sweep.ok,
      errors: sweep.errors,
      perDeviceMs,
      idealMs,
      wallMs: sweep.wallMs,
      ratio: sweep.wallMs / idealMs,
      p50Ms: percentile(sweep.latenciesMs, 50),
      p99Ms: percentile(sweep.latenciesMs, 99),
      cpuMsPerDevice: sweep.cpuMs / devices,
    };
    log(
      `realistic latency: ${sweep.ok}/${devices} devices at concurrency ${concurrency} in ${fmt(sweep.wallMs / 1000, 2)} s ` +
        `(ideal ${fmt(idealMs / 1000, 2)} s = ${devices} × ${perDeviceMs} ms ÷ ${concurrency}; ${fmt(figures.ratio, 3)}× ideal), ` +
        `per device p50 ${fmt(figures.p50Ms, 0)} ms, p99 ${fmt(figures.p99Ms, 0)} ms, client CPU ${fmt(figures.cpuMsPerDevice, 2)} ms/device` +
        (sweep.errors.length ? `, ${sweep.errors.length} ERRORS (${sweep.errors[0]})` : ""),
    );
    return figures;
  } finally {
    await twin.stop();
  }
}
