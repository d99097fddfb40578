// The console's browser tests: one headless Chromium (Debian's `chromium`, driven by playwright-core) against the
// daemon `npm start` runs over the twin, with its demo identity provider. Each person gets their own browser context
// (their own cookies and session storage), signs in through the provider's login page, and — for approvers — a
// virtual WebAuthn authenticator (Chrome DevTools Protocol, WebAuthn domain) standing in for their security key.
import { mkdirSync, readFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { expect } from "vitest";
import type { DemoRun } from "../../src/cli/demo.ts";

export const CHROMIUM = "/usr/bin/chromium";
/** Screenshots are test artifacts (gitignored), read back by a test. */
export const ARTIFACTS = join(import.meta.dirname, "../../test-artifacts/console");
export const VIEWPORT = { width: 1280, height: 800 };

/** Chromium, headless, no network of its own, trusting only the daemon's certificate (by its key's SPKI pin). */
export async function launchChromium(spkiPin: string): Promise<Browser> {
  mkdirSync(ARTIFACTS, { recursive: true });
  // playwright-core gives every launch a fresh, temporary --user-data-dir (and removes it on close).
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--ignore-certificate-errors-spki-list=${spkiPin}`,
    ],
  });
}

export interface Person {
  name: string;
  context: BrowserContext;
  page: Page;
}

/**
 * The sign-in table `npm start` prints under "sign in (demo identity provider, TWIN ONLY):" — one line per demo user:
 * name, password, roles. The tests sign in with what was printed, so the printed passwords are shown to work.
 */
export function printedUsers(lines: readonly string[]): Map<string, { password: string; roles: string }> {
  const start = lines.indexOf("  sign in (demo identity provider, TWIN ONLY):");
  const users = new Map<string, { password: string; roles: string }>();
  if (start < 0) return users;
  for (const line of lines.slice(start + 1)) {
    const m = /^ {4}(\S+) +(\S+) +(\S.*)$/.exec(line);
    if (!m) break;
    users.set(m[1]!, { password: m[2]!, roles: m[3]! });
  }
  return users;
}

/** A person's browser: signs in at the console through the demo identity provider (code + PKCE). */
export async function signIn(
  browser: Browser,
  demo: DemoRun,
  name: string,
  password: string,
): Promise<Person> {
  const context = await browser.newContext({ viewport: VIEWPORT });
  const page = await context.newPage();
  const user = { username: name, password };
  await page.goto(demo.consoleUrl!);
  await page.getByRole("button", { name: "Sign in" }).click();
  // The provider's own login page (another origin): its form, not ours.
  await page.waitForURL(new RegExp(`^${demo.idp!.issuer.replace(/[.]/g, "\\.")}/interaction/`));
  await page.getByLabel("User name").fill(user.username);
  await page.getByLabel("Password").fill(user.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator(`[data-principal="${name}"]`).waitFor();
  return { name, context, page };
}

/** A security key for this person's browser: Chromium's virtual authenticator (CTAP2 over USB, PIN-verified). */
export async function addSecurityKey(p: Person): Promise<string> {
  const cdp = await p.context.newCDPSession(p.page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "usb",
      hasResidentKey: false,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return authenticatorId;
}

export async function shot(page: Page, name: string): Promise<string> {
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: false });
  return path;
}

/** Width and height from a PNG's IHDR chunk (after the 8-byte signature, the chunk length and type). */
export function pngSize(file: string): { width: number; height: number; bytes: number } {
  const b = readFileSync(file);
  expect(b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
  expect(b.subarray(12, 16).toString("latin1")).toBe("IHDR");
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20), bytes: b.length };
}

export interface Delivery {
  headers: IncomingHttpHeaders;
  body: string;
  json: { event: string; id: string; [k: string]: unknown };
}

/** A webhook receiver on loopback: keeps every call; `next()` waits for one that matches (no timers). */
export class WebhookReceiver {
  readonly deliveries: Delivery[] = [];
  readonly #waiters: { match: (d: Delivery) => boolean; resolve: (d: Delivery) => void }[] = [];
  #server: Server | undefined;
  url = "";

  async start(): Promise<void> {
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        const d: Delivery = { headers: req.headers, body, json: JSON.parse(body) };
        this.deliveries.push(d);
        res.writeHead(204).end();
        for (const w of [...this.#waiters])
          if (w.match(d)) {
            this.#waiters.splice(this.#waiters.indexOf(w), 1);
            w.resolve(d);
          }
      });
    });
    await new Promise<void>((r) => this.#server!.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/hook`;
  }

  next(match: (d: Delivery) => boolean): Promise<Delivery> {
    const seen = this.deliveries.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.#waiters.push({ match, resolve }));
  }

  stop(): Promise<void> {
    return new Promise((r) => (this.#server ? this.#server.close(() => r()) : r()));
  }
}
