// A latency profile for the twin's appliances: how long a real Luna 7 takes, not what it prints. The twin answers in
// well under a millisecond; a real appliance takes about 1.5 s from TCP connect to the lunash prompt (SSH key exchange,
// password check, lunash start) and 0.3–1 s per command (the HSM answers over its internal bus). A benchmark or a test
// against the bare twin measures lunafleet's own cost; one against this profile measures what an operator waits for
// (a sweep at concurrency 64 is then bounded by the appliances, and lunafleet's overhead must disappear in it).
// [I] The figures are assumptions from operators' reports (issue 15), not measurements of a Luna; they are settings.
// Jitter is uniform ±`jitter` of each delay, from a seeded generator so a run can be repeated.

export interface LatencyProfile {
  /** Delay before an authenticated SSH login is accepted (the rest of the ~1.5 s login). */
  loginMs: number;
  /** Delay before a command's output, by canonical command ("hsm show"); the longest matching prefix wins. */
  commandMs: Readonly<Record<string, number>>;
  /** Delay before the output of any other command. */
  otherCommandMs: number;
  /** Each delay varies uniformly by ± this fraction (0 ≤ jitter < 1). */
  jitter: number;
  /** Random numbers in [0, 1) for the jitter (seeded: see seededRandom). */
  random: () => number;
}

/**
 * Defaults like a real Luna 7 network HSM (issue 15): login ~1.5 s, `hsm show` ~0.5 s, a partition's details ~0.8 s
 * (lunacm's `partition showinfo`; over lunash, `partition show`).
 */
export function realisticLunaLatency(seed = 1, overrides: Partial<LatencyProfile> = {}): LatencyProfile {
  return {
    loginMs: 1500,
    // `exit` ends the shell at once (nothing asks the HSM); every other command waits at least otherCommandMs.
    commandMs: {
      "hsm show": 500,
      "partition show": 800,
      "partition list": 600,
      "package list": 700,
      exit: 0,
    },
    otherCommandMs: 300,
    jitter: 0.2,
    random: seededRandom(seed),
    ...overrides,
  };
}

/** The delay before a login is accepted. */
export function loginDelayMs(profile: LatencyProfile | undefined): number {
  return profile ? jittered(profile, profile.loginMs) : 0;
}

/** The delay before a command's output (`canonical`: the command as lunash resolved it, e.g. "hsm show"). */
export function commandDelayMs(profile: LatencyProfile | undefined, canonical: string): number {
  if (!profile) return 0;
  let best: { prefix: string; ms: number } | undefined;
  for (const [prefix, ms] of Object.entries(profile.commandMs))
    if (
      (canonical === prefix || canonical.startsWith(`${prefix} `)) &&
      prefix.length > (best?.prefix.length ?? -1)
    )
      best = { prefix, ms };
  return jittered(profile, best?.ms ?? profile.otherCommandMs);
}

function jittered(profile: LatencyProfile, ms: number): number {
  if (ms <= 0) return 0;
  const j = Math.min(Math.max(profile.jitter, 0), 0.99);
  return Math.round(ms * (1 - j + 2 * j * profile.random()));
}

/** mulberry32: a small, well-known seeded generator (uniform in [0, 1)); not for secrets. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
