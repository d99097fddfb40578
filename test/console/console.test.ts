// The operator console in a real browser (issue 16 acceptance): headless Chromium against the daemon `npm start`
// runs over the twin, signing in through its demo identity provider. One browser, one daemon, the tests in order:
// sign in and see the planted problems; follow ha-recover live (the twin holds `hagroup recover` until the test lets
// it go: no timer decides what the page shows); two approvers register security keys as README shows and approve the
// deprovision of the spare hsm-c1 with them; the job runs and the fleet page shows hsm-c1 zeroized and deleted; a
// viewer sees no buttons and is refused when forcing the API; screenshots are read back; the webhook receiver got the
// signed calls and a bad signature is caught.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DemoRun, runDemo, spkiPin } from "../../src/cli/demo.ts";
import { parseFleet } from "../../src/config/load.ts";
import { verifyWebhook } from "../../src/notify/webhook.ts";
import { demoKey, sshKeygenSign, tempDir } from "../helpers/ssh-signing.ts";
import {
  ARTIFACTS,
  addSecurityKey,
  launchChromium,
  type Person,
  pngSize,
  printedUsers,
  shot,
  signIn,
  VIEWPORT,
  WebhookReceiver,
} from "./support.ts";

const SECRET = `whsec_${Buffer.from("console-test-webhook-secret-32by").toString("base64")}`;
const dataDir = mkdtempSync(join(tmpdir(), "lf-console-"));
const keyDir = tempDir("lf-console-keys-");
const receiver = new WebhookReceiver();
let demo: DemoRun;
const printed: string[] = [];
/** Sign in with the password `npm start` printed for that demo user. */
const signInAs = (name: string) => {
  const user = printedUsers(printed).get(name);
  if (!user) throw new Error(`npm start printed no demo user ${name}`);
  return signIn(browser, demo, name, user.password);
};
let browser: Browser;
let pin = "";
let olivia: Person;
/** The approvers' browsers stay open: their virtual authenticators hold their credentials' private keys. */
const approvers = new Map<string, Person>();
let deprovisionJob = "";
const shots: string[] = [];

const snap = async (p: Person, name: string) => {
  shots.push(await shot(p.page, name));
};

beforeAll(async () => {
  await receiver.start();
  // The demo fleet plus one webhook: the receiver above (plain http on loopback: twin fleets only).
  const text = `${readFileSync(join(import.meta.dirname, "../../config/demo.yaml"), "utf8")}
notifications:
  webhooks:
    - { name: test-receiver, credentials: { url: "${receiver.url}", secret: "${SECRET}" } }
  retry: { attempts: 3, backoffMs: 50 }
`;
  const parsed = parseFleet(text);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
  demo = await runDemo({
    fleet: parsed.fleet,
    dataDir,
    rebase: true,
    httpPort: null,
    apiPort: 0,
    idpPort: 0,
    concurrency: 4,
    // What `npm start` prints (src/cli/start.ts runs this same function with print = stdout), kept, not shown.
    print: (line) => printed.push(line),
  });
  pin = spkiPin(readFileSync(join(dataDir, "api-cert.pem"), "utf8"));
  browser = await launchChromium(pin);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await demo?.stop();
  await receiver.stop();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(keyDir, { recursive: true, force: true });
});

/** Open a page of the console (reloaded when it is the one shown: a hash that does not change draws nothing new). */
const go = async (p: Person, hash: string) => {
  const url = `${demo.consoleUrl}${hash}`;
  if (p.page.url() === url) await p.page.reload();
  else await p.page.goto(url);
  await p.page.locator("main h1").first().waitFor();
};

/** Start a job from the Jobs page as olivia and wait on its page until it has ended (report runs change nothing). */
const runFromJobsPage = async (runbook: string, target: string, params = "") => {
  const page = olivia.page;
  await go(olivia, "#/jobs");
  await page.getByLabel("Runbook", { exact: true }).selectOption(runbook);
  await page.getByLabel("Target", { exact: true }).fill(target);
  if (params) await page.getByLabel(/^Parameters/).fill(params);
  await page.getByRole("button", { name: "Run", exact: true }).click();
  await page.waitForURL(/#\/job\//);
  await page.locator("#job-outcome[data-ended]").waitFor({ timeout: 90_000 });
};

describe("the console in Chromium", () => {
  it("npm start prints the console URL and the demo identity provider's users with their roles", () => {
    expect(demo.consoleUrl).toMatch(/^https:\/\/localhost:\d+\/console\/$/);
    expect(printed).toContain(`lunafleet: console ${demo.consoleUrl}`);
    expect(printed).toContain(`lunafleet: demo identity provider ${demo.idp!.issuer} (TWIN ONLY)`);
    const users = printedUsers(printed);
    expect(Object.fromEntries([...users].map(([name, u]) => [name, u.roles]))).toEqual({
      alice: "approver",
      bob: "approver",
      carol: "approver, guard-admin",
      olivia: "operator",
      victor: "viewer",
    });
    for (const u of users.values()) expect(u.password).toMatch(/^demo-[A-Za-z0-9_-]{12}$/);
    // How a browser trusts the daemon's certificate, as printed: the pin the tests' Chromium is started with.
    expect(printed.some((l) => l.includes(`--ignore-certificate-errors-spki-list=${pin}`))).toBe(true);
  });

  it("signs in through the identity provider; the fleet page shows the planted problems, problems first", async () => {
    olivia = await signInAs("olivia");
    const page = olivia.page;
    expect(await page.locator("[data-principal]").textContent()).toContain("olivia (operator)");
    // The read-only checks that see what the sweep cannot: stale trust, down members.
    await runFromJobsPage("ntls-cert-sync", "fleet");
    await runFromJobsPage("ha-sync", "ha-tokens");
    await go(olivia, "#/fleet");
    const planted = [
      /^hsm-b3: KB0019789 reboot patch missing: REBOOT-UNSAFE/,
      /^hsm-a2: NTLS certificate expires in 4\.\d\d days/,
      /^hsm-b2: ha-tokens: hsm-b2\/par-tok is down/,
      /^hsm-a1: hsm-a1 <-> client-a mismatched: client-a trusts a different certificate for hsm-a1/,
    ];
    let problems = await page.locator("ul[data-problems] > li").allTextContents();
    for (const p of planted)
      expect(
        problems.some((x) => p.test(x)),
        `${p} in ${problems.join("\n")}`,
      ).toBe(true);
    // Only hsm-a1 is blamed for client-a's stale copy of its certificate.
    expect(problems.filter((x) => /<-> client-a mismatched/.test(x)).map((x) => x.split(":")[0])).toEqual([
      "hsm-a1",
    ]);
    // Problems first: every device row with problems comes before every row without.
    const rows = await page
      .locator("table[aria-label='Devices in service'] tbody tr")
      .evaluateAll((trs) => trs.map((tr) => tr.classList.contains("has-problem")));
    expect(rows.indexOf(false)).toBeGreaterThan(rows.lastIndexOf(true));
    // Each fact says how old it is.
    expect(await page.locator("tr[data-device='hsm-b3']").textContent()).toMatch(/ago/);
    await snap(olivia, "fleet");

    // hsm-a3's foreign domain: lunacm's synchronize check names only the two slots in conflict, so with client-a
    // unable to reach hsm-a1 (the stale trust) two live members cannot tell which one is foreign. The operator's order:
    // repair the trust from the page (no approval: it rewrites a client's copy of a certificate), then ha-sync.
    await runFromJobsPage("ntls-cert-sync", "hsm-a1", "repair=true");
    await runFromJobsPage("ha-sync", "ha-payments");
    expect(await page.locator("#job-outcome").getAttribute("data-outcome")).toBe("failed");
    await go(olivia, "#/fleet");
    problems = await page.locator("ul[data-problems] > li").allTextContents();
    expect(problems.filter((x) => /<-> client-a mismatched/.test(x))).toEqual([]);
    const foreign = problems.filter((x) => /foreign cloning domain/.test(x));
    expect(foreign).toHaveLength(1);
    expect(foreign[0]).toMatch(
      /^hsm-a3: ha-payments: hsm-a3\/par-pay \(1700103000001\) is in a foreign cloning domain \(.*private key cloning.*\); remediation: .*hagroup removemember -group ha-payments -serialnumber 1700103000001/,
    );
    expect(await page.locator("tr[data-device='hsm-a3']").textContent()).toMatch(/FOREIGN/);
    await snap(olivia, "fleet-foreign");
    await go(olivia, "#/device/hsm-a2");
    expect(await page.locator("[data-fact='cert']").textContent()).toMatch(/problem/);
    expect(await page.getByRole("table").last().textContent()).toMatch(/tcp-check/);
    await snap(olivia, "device");
  }, 240_000);

  it("runs ha-recover from the HA page and shows its steps live, before the job ends", async () => {
    const page = olivia.page;
    await demo.twin.setFault("client-b", "hold", "hagroup recover");
    await go(olivia, "#/ha");
    await snap(olivia, "ha");
    await page.getByRole("button", { name: "Recover ha-tokens" }).click();
    await page.waitForURL(/#\/job\/ha-recover-/);
    // The inspection ran and the recovery command was sent: the twin holds its answer, the job cannot end.
    await page.locator('[data-step="inspect:client-b"][data-state="done"]').waitFor();
    await page
      .locator(
        '[data-step="recover:client-b"][data-state="running"] [data-command="hagroup recover -group ha-tokens"]',
      )
      .waitFor();
    expect(await page.locator("#job-outcome").getAttribute("data-outcome")).toBe("running");
    expect(await page.locator("#job-outcome").getAttribute("data-ended")).toBeNull();
    // Plan beside what ran: inspect done, recover running, the rest not run yet.
    expect(await page.locator('[data-plan-step="inspect:client-b"]').getAttribute("data-state")).toBe("done");
    expect(await page.locator('[data-plan-step="recover:client-b"]').getAttribute("data-state")).toBe(
      "running",
    );
    expect(await page.locator('[data-plan-step="ha-settings:client-b"]').getAttribute("data-state")).toBe(
      "planned",
    );
    await snap(olivia, "job-live");
    await demo.twin.setFault("client-b", "hold", "off");
    await page.locator("#job-outcome[data-ended]").waitFor();
    expect(await page.locator("#job-outcome").getAttribute("data-outcome")).toBe("succeeded");
    expect(await page.locator('[data-plan-step="report"]').getAttribute("data-state")).toBe("done");
    await snap(olivia, "job");
    await go(olivia, "#/ha");
    expect(await page.locator("tr[data-member='hsm-b2/par-tok']").textContent()).not.toMatch(/problem/);
  }, 120_000);

  it("two approvers each register a security key, vouched for by their approval key (README)", async () => {
    for (const who of ["alice", "bob"] as const) {
      const p = await signInAs(who);
      await addSecurityKey(p);
      await go(p, "#/keys");
      await p.page.getByLabel("Name").fill(`${who}'s YubiKey`);
      await p.page.getByRole("button", { name: "Add a security key" }).click();
      const statement = (await p.page.locator("#registration-statement").textContent()) ?? "";
      expect(statement).toMatch(
        new RegExp(
          `^lunafleet-approval v1\\nkind: webauthn-credential\\ndecision: register\\nprincipal: ${who}\\n`,
        ),
      );
      // README: save the statement, `ssh-keygen -Y sign -n lunafleet-approval -f <key> statement.txt`, paste the .sig.
      await p.page.getByLabel(/Signature/).fill(sshKeygenSign(demoKey(keyDir, who).path, statement));
      if (who === "alice") await snap(p, "keys-register");
      await p.page.getByRole("button", { name: "Register this key" }).click();
      await p.page.locator("[data-registered]").waitFor();
      expect(await p.page.locator("tr[data-credential]").count()).toBe(1);
      expect(await p.page.locator("tr[data-credential]").textContent()).toContain("ok");
      if (who === "alice") await snap(p, "keys");
      approvers.set(who, p);
    }
  }, 120_000);

  it("a deprovision of the spare hsm-c1 reaches the approvals page; the receiver gets the signed 'awaiting approval'", async () => {
    const page = olivia.page;
    await go(olivia, "#/device/hsm-c1");
    await page.getByLabel("Backups of its partitions are confirmed").check();
    await page.getByLabel("Delete its resource group when empty").check();
    await page.getByRole("button", { name: "Deprovision hsm-c1" }).click();
    await page.waitForURL(/#\/job\/deprovision-/);
    deprovisionJob = decodeURIComponent(page.url().split("#/job/")[1]!);
    await page.locator('#job-outcome[data-outcome="awaiting-approval"]').waitFor();
    expect(demo.twin.appliances.get("hsm-c1")!.state.zeroized).toBe(false);

    const alice = approvers.get("alice")!;
    await go(alice, "#/approvals");
    await alice.page.locator(`tr[data-approval="${deprovisionJob}"]`).waitFor();
    expect(await alice.page.locator(`tr[data-approval="${deprovisionJob}"]`).textContent()).toMatch(
      /hsm-c1.*700301.*0\/2.*olivia/,
    );
    await snap(alice, "approvals");
    await alice.page.getByRole("link", { name: deprovisionJob }).click();
    const statement = (await alice.page.locator("#statement").textContent()) ?? "";
    expect(statement).toMatch(
      new RegExp(
        `^lunafleet-approval v1\\nkind: job\\ndecision: approve\\njob: ${deprovisionJob}\\nrunbook: deprovision\\ndevice: hsm-c1\\nserial: 700301\\nplan: sha256:[0-9a-f]{64}\\nrequester: olivia\\n`,
      ),
    );
    expect(await alice.page.locator("#approval-plan li").first().textContent()).toMatch(/\S/);
    await snap(alice, "approval");

    const call = await receiver.next(
      (d) =>
        d.json.event === "approval.awaiting" &&
        (d.json.approval as { jobId: string }).jobId === deprovisionJob,
    );
    expect(verifyWebhook(SECRET, call.headers, call.body)).toEqual({ ok: true });
    expect(call.json).toMatchObject({
      approval: { device: "hsm-c1", serial: "700301", required: 2, requester: "olivia", statement },
      approvers: ["alice", "bob", "carol"],
    });
  }, 120_000);

  it("a viewer sees no run, recover, deprovision or approve buttons, and the API refuses them when forced", async () => {
    const victor = await signInAs("victor");
    // Keyboard only: Tab from the top of the page reaches the pages' links, Enter opens one and its heading has the
    // focus; "Skip to content" lands on the page without changing it.
    const keys = victor.page;
    await go(victor, "#/fleet");
    // The focused element's text (the page's body before any Tab: nothing is focused yet).
    const focused = () =>
      keys.evaluate(
        () =>
          (globalThis as unknown as { document: { activeElement: { textContent: string | null } | null } })
            .document.activeElement?.textContent ?? null,
      );
    for (let tabs = 0; tabs < 12 && (await focused()) !== "HA"; tabs++) await keys.keyboard.press("Tab");
    expect(await focused()).toBe("HA");
    await keys.keyboard.press("Enter");
    await keys.locator("main h1:focus").waitFor();
    expect(await focused()).toBe("High availability");
    expect(new URL(keys.url()).hash).toBe("#/ha");
    await keys.reload();
    await keys.locator("main h1").waitFor();
    await keys.keyboard.press("Tab");
    expect(await focused()).toBe("Skip to content");
    await keys.keyboard.press("Enter");
    await keys.locator("#main:focus").waitFor();
    expect(new URL(keys.url()).hash).toBe("#/ha");
    expect(await keys.locator("main h1").textContent()).toBe("High availability");
    await go(victor, `#/approval/${deprovisionJob}`);
    await victor.page.locator("#statement").waitFor();
    expect(await victor.page.getByRole("button", { name: /approve|reject/i }).count()).toBe(0);
    await snap(victor, "approval-viewer");
    await go(victor, "#/jobs");
    expect(await victor.page.getByRole("button", { name: "Run", exact: true }).count()).toBe(0);
    await go(victor, "#/ha");
    expect(await victor.page.getByRole("button", { name: /Recover/ }).count()).toBe(0);
    await go(victor, "#/device/hsm-a1");
    expect(await victor.page.getByRole("button", { name: /Deprovision/ }).count()).toBe(0);
    await go(victor, "#/guard");
    await snap(victor, "guard");
    expect(await victor.page.locator("nav").textContent()).not.toContain("Security keys");
    // Forced, from the same page with the same session: refused by the API itself.
    const statuses = await victor.page.evaluate(async (job) => {
      const storage = (globalThis as unknown as { sessionStorage: { getItem(k: string): string | null } })
        .sessionStorage;
      const token = JSON.parse(storage.getItem("lunafleet.session") ?? "{}").token as string;
      const call = (path: string, body: unknown) =>
        fetch(path, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify(body),
        }).then(async (r) => [r.status, ((await r.json()) as { error: string }).error] as const);
      return [
        await call("/v1/jobs", { runbook: "ha-recover", target: "ha-tokens" }),
        await call(`/v1/approvals/${job}/approve`, { confirmation: "700301" }),
        await call(`/v1/approvals/${job}/reject`, { reason: "a viewer trying" }),
        await call("/v1/webauthn/registrations/options", {}),
      ];
    }, deprovisionJob);
    for (const [status, error] of statuses) {
      expect(status).toBe(403);
      expect(error).toMatch(/^victor \(roles: viewer\) may not /);
    }
    await victor.context.close();
  }, 120_000);

  it("alice and bob approve with their security keys; the job zeroizes and deletes hsm-c1; the fleet page shows it", async () => {
    for (const [who, count] of [
      ["alice", "1 of 2"],
      ["bob", "2 of 2"],
    ] as const) {
      const p = approvers.get(who)!;
      await go(p, `#/approval/${deprovisionJob}`);
      await p.page.getByRole("button", { name: "Approve with security key" }).click();
      const result = p.page.locator("#decision [data-result]");
      await result.waitFor();
      expect(await result.textContent()).toContain(count);
    }
    const page = olivia.page;
    await go(olivia, `#/job/${deprovisionJob}`);
    await page.locator("#job-outcome[data-ended]").waitFor({ timeout: 60_000 });
    expect(await page.locator("#job-outcome").getAttribute("data-outcome")).toBe("succeeded");
    expect(demo.twin.appliances.get("hsm-c1")!.state.zeroized).toBe(true);
    await go(olivia, "#/fleet");
    const row = page.locator("table[aria-label='Retired and retiring devices'] tr[data-device='hsm-c1']");
    await row.waitFor();
    expect(await row.locator("[data-state]").textContent()).toBe("retired");
    expect(await row.textContent()).toMatch(/zeroized/i);
    expect(await row.textContent()).toMatch(/deleted/i);
    expect(
      await page.locator("table[aria-label='Devices in service'] tr[data-device='hsm-c1']").count(),
    ).toBe(0);
    await row.scrollIntoViewIfNeeded();
    await snap(olivia, "fleet-after");

    // The evidence names both approvers, their security keys, and verifies.
    await go(olivia, `#/evidence/${deprovisionJob}`);
    await page.locator("[data-verified='ok']").waitFor();
    const approved = page.locator("tr[data-approval-event='approved']");
    await approved.nth(1).waitFor();
    const rows = await approved.allTextContents();
    expect(rows.map((r) => /alice|bob/.exec(r)?.[0])).toEqual(["alice", "bob"]);
    for (const r of rows) expect(r).toMatch(/webauthn:[A-Za-z0-9_-]+.*webauthn/);
    await snap(olivia, "evidence");

    const finished = await receiver.next(
      (d) => d.json.event === "job.finished" && (d.json.job as { id: string }).id === deprovisionJob,
    );
    expect(verifyWebhook(SECRET, finished.headers, finished.body)).toEqual({ ok: true });
    expect(finished.json.job).toMatchObject({
      runbook: "deprovision",
      target: "hsm-c1",
      outcome: "succeeded",
      requester: "olivia",
    });
  }, 180_000);

  it("a bad signature is detectable: another secret, a changed body, an old timestamp, a forged header", async () => {
    const call = await receiver.next(
      (d) => d.json.event === "job.finished" && (d.json.job as { id: string }).id === deprovisionJob,
    );
    expect(verifyWebhook(SECRET, call.headers, call.body)).toEqual({ ok: true });
    const other = `whsec_${Buffer.from("another-secret-entirely-32-bytes").toString("base64")}`;
    expect(verifyWebhook(other, call.headers, call.body)).toMatchObject({
      ok: false,
      reason: "signature does not match",
    });
    const changed = call.body.replace('"succeeded"', '"failed"');
    expect(changed).not.toBe(call.body);
    expect(verifyWebhook(SECRET, call.headers, changed)).toMatchObject({ ok: false });
    const later = (Number(call.headers["webhook-timestamp"]) + 3600) * 1000;
    expect(verifyWebhook(SECRET, call.headers, call.body, { now: later })).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/replay/),
    });
    const forged = { ...call.headers, "webhook-signature": `v1,${Buffer.alloc(32).toString("base64")}` };
    expect(verifyWebhook(SECRET, forged, call.body)).toMatchObject({ ok: false });
    // A new fleet problem was told too (the sweep's and the checks' findings), signed the same way.
    const problem = await receiver.next((d) => d.json.event === "fleet.problem");
    expect(verifyWebhook(SECRET, problem.headers, problem.body)).toEqual({ ok: true });
    expect(problem.json).toMatchObject({
      problem: { status: expect.stringMatching(/problem|check-failed/) },
    });
  });

  it("every page's screenshot was written and reads back as a PNG of the viewport's size", () => {
    const expected = [
      "fleet",
      "fleet-foreign",
      "device",
      "ha",
      "job-live",
      "job",
      "keys-register",
      "keys",
      "approvals",
      "approval",
      "approval-viewer",
      "guard",
      "fleet-after",
      "evidence",
    ];
    expect(shots.map((f) => f.slice(ARTIFACTS.length + 1, -4)).sort()).toEqual([...expected].sort());
    for (const file of shots) {
      const png = pngSize(file);
      expect(png).toMatchObject({ width: VIEWPORT.width, height: VIEWPORT.height });
      // A blank page compresses to a few hundred bytes; a drawn one does not.
      expect(png.bytes).toBeGreaterThan(8_000);
    }
  });
});
