// patch-verify: which appliance software and firmware each device runs, and whether the KB0019789 reboot patch is
// installed. A device without it may hang on reboot until someone power-cycles it in the datacenter (up to 48 h on
// Azure), so it is marked rebootUnsafe and every later step that would reboot it must refuse (assertRebootSafe).
//
//   for each device:  hsm show      -> serial (must match the fleet file), software version, firmware
//   for each device:  package list  -> installed RPMs; the patch is `lunasa-reboot-patch-*`
//   verdict:          per device: versions, required patches present or missing, rebootUnsafe
import { z } from "zod";
import { parsers } from "../parsers/index.ts";
import { getDevice } from "../src/config/model.ts";
import { DeviceIdentityMismatch, RebootUnsafe } from "../src/engine/errors.ts";
import { findingsVerdict } from "../src/engine/outcome.ts";
import { defineRunbook, type Step } from "../src/engine/runbook.ts";
import { resolveTarget } from "../src/engine/targets.ts";
import { hsmShowFactRefs, hsmShowFacts, patchFactRefs, patchFacts } from "./lib/facts.ts";

/** The RPM each known KB article installs (what `package list` shows once the patch is in). */
const KB_RPMS: Record<string, RegExp> = {
  KB0019789: /^lunasa-reboot-patch-/,
};
const REBOOT_PATCH_KB = "KB0019789";

const params = z
  .object({
    /** A device, an HA group (its members), or `fleet`. */
    target: z.string().min(1).default("fleet"),
  })
  .strict();
type Params = z.output<typeof params>;

export interface HsmShowResult {
  device: string;
  serial: string;
  softwareVersion: string | null;
  firmware: string;
  model: string;
  zeroized: boolean;
}

export interface PackageListResult {
  device: string;
  packageCount: number;
  /** Installed RPMs matched per KB article this runbook knows (empty list = not installed). */
  kbRpms: Record<string, string[]>;
}

export interface PatchStatus {
  kb: string;
  /** null when lunafleet does not know which RPM the article installs: it cannot say, so it does not guess. */
  installed: boolean | null;
  rpms: string[];
}

export interface PatchVerifyDevice {
  device: string;
  serial: string;
  softwareVersion: string | null;
  firmware: string;
  zeroized: boolean;
  rebootPatchInstalled: boolean;
  rebootPatchRpms: string[];
  /** True unless the reboot patch is installed: a reboot may hang the appliance. */
  rebootUnsafe: boolean;
  /** The fleet file's requiredPatches for this device, each present, missing or not verifiable. */
  requiredPatches: PatchStatus[];
  compliant: boolean;
}

export interface PatchVerifyResult {
  devices: PatchVerifyDevice[];
  rebootUnsafe: string[];
  nonCompliant: string[];
}

/** Whether a device may be rebooted, according to its patch-verify result. Only an installed patch is safe. */
export function isRebootSafe(
  result: Pick<PatchVerifyDevice, "rebootPatchInstalled" | "rebootUnsafe">,
): boolean {
  return result.rebootPatchInstalled === true && result.rebootUnsafe === false;
}

/** Refuse (RebootUnsafe, never retried) unless patch-verify found the reboot patch on `device`. */
export function assertRebootSafe(verdict: PatchVerifyResult, device: string): void {
  const r = verdict.devices.find((d) => d.device === device);
  if (!r)
    throw new RebootUnsafe(`${device}: no patch-verify result for this device; verify before rebooting`);
  if (!isRebootSafe(r))
    throw new RebootUnsafe(
      `${device}: the ${REBOOT_PATCH_KB} reboot patch is not installed; a reboot may hang the appliance until it is power-cycled`,
    );
}

/**
 * The shell options a reboot step passes with `sysconf appliance reboot`: it declares the reboot and states the
 * device's patch state, which the command policy checks again. Throws RebootUnsafe first if the patch is missing.
 */
export function rebootCommandOptions(
  verdict: PatchVerifyResult,
  device: string,
): { allowReboot: true; rebootUnsafe: false } {
  assertRebootSafe(verdict, device);
  return { allowReboot: true, rebootUnsafe: false };
}

const hsmShowStep = {
  id: "hsm-show",
  title: (device) => `Read appliance software, firmware and serial of ${device}`,
  kind: "read",
  forEach: "device",
  commands: () => ["hsm show"],
  observes: (_p, _f, device) => hsmShowFactRefs(device!),
  facts: (r) => hsmShowFacts(r),
  async run(ctx): Promise<HsmShowResult> {
    const name = ctx.target!;
    const declared = getDevice(ctx.fleet, name);
    const shell = await ctx.lunash(name);
    const show = await shell.send("hsm show", parsers.hsmShow);
    if (show.serial !== declared.serial)
      throw Object.assign(
        new DeviceIdentityMismatch(
          `${name}: the appliance reports HSM serial ${show.serial}, the fleet file declares ${declared.serial}; wrong device at ${declared.host}?`,
        ),
        { device: name, command: "hsm show" },
      );
    return {
      device: name,
      serial: show.serial,
      softwareVersion: show.softwareVersion,
      firmware: show.firmware,
      model: show.model,
      zeroized: show.zeroized,
    };
  },
} satisfies Step<Params, HsmShowResult>;

const packageListStep = {
  id: "package-list",
  title: (device) => `List installed packages on ${device}`,
  kind: "read",
  forEach: "device",
  commands: () => ["package list"],
  observes: (_p, _f, device) => patchFactRefs(device!, Object.keys(KB_RPMS)),
  facts: (r) => {
    const pkgs = r;
    return patchFacts(pkgs.device, pkgs.kbRpms, REBOOT_PATCH_KB);
  },
  async run(ctx): Promise<PackageListResult> {
    const name = ctx.target!;
    const shell = await ctx.lunash(name);
    const { packages } = await shell.send("package list", parsers.packageList);
    const kbRpms: Record<string, string[]> = {};
    for (const [kb, rpm] of Object.entries(KB_RPMS)) kbRpms[kb] = packages.filter((p) => rpm.test(p));
    return { device: name, packageCount: packages.length, kbRpms };
  },
} satisfies Step<Params, PackageListResult>;

const verdictStep = {
  id: "verdict",
  title: "Decide per device: required patches present, reboot safe or not",
  kind: "read",
  async run(ctx): Promise<PatchVerifyResult> {
    const devices = ctx.targets.devices.map((name): PatchVerifyDevice => {
      const show = ctx.resultOf(hsmShowStep, name);
      const pkgs = ctx.resultOf(packageListStep, name);
      const rebootPatchRpms = pkgs.kbRpms[REBOOT_PATCH_KB] ?? [];
      const requiredPatches = getDevice(ctx.fleet, name).requiredPatches.map((kb): PatchStatus => {
        const rpms = pkgs.kbRpms[kb];
        return rpms === undefined
          ? { kb, installed: null, rpms: [] }
          : { kb, installed: rpms.length > 0, rpms };
      });
      return {
        device: name,
        serial: show.serial,
        softwareVersion: show.softwareVersion,
        firmware: show.firmware,
        zeroized: show.zeroized,
        rebootPatchInstalled: rebootPatchRpms.length > 0,
        rebootPatchRpms,
        rebootUnsafe: rebootPatchRpms.length === 0,
        requiredPatches,
        compliant: requiredPatches.every((p) => p.installed === true),
      };
    });
    const rebootUnsafe = devices.filter((d) => d.rebootUnsafe).map((d) => d.device);
    if (rebootUnsafe.length > 0)
      ctx.log.warn({ jobId: ctx.jobId, rebootUnsafe }, "devices without the reboot patch");
    return {
      devices,
      rebootUnsafe,
      nonCompliant: devices.filter((d) => !d.compliant).map((d) => d.device),
    };
  },
} satisfies Step<Params>;

export const patchVerify = defineRunbook({
  name: "patch-verify",
  description: "Report software/firmware versions and whether the KB0019789 reboot patch is installed",
  params,
  targets(p, fleet) {
    // Reads appliances only: no client host is touched.
    const t = resolveTarget(fleet, p.target, ["fleet", "device", "haGroup"]);
    return { devices: t.devices, clientHosts: [] };
  },
  verdict: ({ resultOf }) => {
    const v = resultOf(verdictStep);
    if (!v) return { outcome: "failed", findings: ["patch-verify finished without its verdict step"] };
    return findingsVerdict(
      v.devices.flatMap((d) => [
        ...(d.rebootUnsafe ? [`${d.device}: ${REBOOT_PATCH_KB} reboot patch missing: REBOOT-UNSAFE`] : []),
        ...d.requiredPatches
          .filter((p) => p.installed !== true && p.kb !== REBOOT_PATCH_KB)
          .map(
            (p) =>
              `${d.device}: required patch ${p.kb} ${p.installed === null ? "cannot be verified" : "missing"}`,
          ),
      ]),
    );
  },
  steps: [hsmShowStep, packageListStep, verdictStep],
});
