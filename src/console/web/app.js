// The console's shell: sign-in, who is signed in and what they may do (GET /v1/whoami lists the operations their
// roles grant: buttons for anything else are simply not drawn, and the API refuses them anyway), the page list, and
// the hash router. Each page is a module that reads the API and draws; none computes what the API already says.
import { get, setBearer } from "./api.js";
import { beginOidc, completeOidc, session, signOut, takeFragmentToken, useApiToken } from "./auth.js";
import { clear, errorBox, field, h, put } from "./dom.js";
import { approvalPage, approvalsPage, guardReleasePage } from "./page-approvals.js";
import { evidenceIndexPage, evidencePage } from "./page-evidence.js";
import { devicePage, fleetPage } from "./page-fleet.js";
import { guardPage } from "./page-guard.js";
import { haPage } from "./page-ha.js";
import { jobPage, jobsPage } from "./page-jobs.js";
import { keysPage } from "./page-keys.js";

const ROUTES = [
  [/^fleet$/, fleetPage],
  [/^device\/([^/]+)$/, devicePage],
  [/^jobs$/, jobsPage],
  [/^job\/([^/]+)$/, jobPage],
  [/^approvals$/, approvalsPage],
  [/^approval\/([^/]+)$/, approvalPage],
  [/^guard$/, guardPage],
  [/^guard-release\/([^/]+)$/, guardReleasePage],
  [/^ha$/, haPage],
  [/^evidence$/, evidenceIndexPage],
  [/^evidence\/([^/]+)$/, evidencePage],
  [/^keys$/, keysPage],
];

const NAV = [
  ["fleet", "Fleet"],
  ["jobs", "Jobs"],
  ["approvals", "Approvals"],
  ["guard", "Guard"],
  ["ha", "HA"],
  ["evidence", "Evidence"],
  ["keys", "Security keys", "credentials.register"],
];

const main = () => document.getElementById("main");
let current = null;

async function start() {
  let config;
  try {
    config = await (await fetch("/console/config.json", { credentials: "omit" })).json();
  } catch (err) {
    clear(main()).append(errorBox(err));
    return;
  }
  try {
    if (location.pathname === "/console/callback") await completeOidc(config);
  } catch (err) {
    return signInPage(config, err);
  }
  takeFragmentToken();
  const s = session();
  if (!s) return signInPage(config);
  setBearer(s.token, (why) => {
    signOut();
    signInPage(config, new Error(`signed out: ${why ?? "the session is no longer valid"}`));
  });
  let me;
  try {
    me = await get("/v1/whoami");
  } catch (err) {
    signOut();
    return signInPage(config, err);
  }
  const ctx = {
    me,
    config,
    can: (op) => me.operations.includes(op),
    go: (hash) => {
      location.hash = hash;
    },
  };
  drawChrome(ctx);
  // A page chosen by the person (link, keyboard, back) takes the focus to its heading, so keyboard and screen-reader
  // users land on what they opened instead of on the link they left.
  window.addEventListener("hashchange", () => route(ctx).then((shown) => shown?.focus()));
  if (!location.hash || location.hash === "#") history.replaceState(null, "", "#/fleet");
  route(ctx);
}

// "Skip to content" moves the focus to the page, not the route: its #main would otherwise be read as a page name.
document.querySelector("a.skip")?.addEventListener("click", (e) => {
  e.preventDefault();
  main().focus();
});

function drawChrome(ctx) {
  const nav = clear(document.getElementById("nav"));
  put(
    nav,
    h(
      "ul",
      null,
      NAV.filter(([, , op]) => !op || ctx.can(op)).map(([path, label]) =>
        h("li", null, h("a", { href: `#/${path}`, "data-nav": path }, label)),
      ),
    ),
  );
  const who = clear(document.getElementById("who"));
  put(
    who,
    h("span", { "data-principal": ctx.me.name }, `${ctx.me.name} (${ctx.me.roles.join(", ") || "no role"})`),
    h(
      "button",
      {
        type: "button",
        onclick: () => {
          signOut();
          location.assign("/console/");
        },
      },
      "Sign out",
    ),
  );
}

async function route(ctx) {
  const path = location.hash.replace(/^#\/?/, "");
  current?.abort();
  const controller = new AbortController();
  current = controller;
  for (const a of document.querySelectorAll("nav a")) {
    const top = path.split("/")[0];
    const on =
      a.dataset.nav === top ||
      (top === "device" && a.dataset.nav === "fleet") ||
      (top === "job" && a.dataset.nav === "jobs") ||
      (top === "approval" && a.dataset.nav === "approvals");
    if (on) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const el = clear(main());
  const match = ROUTES.map(([re, page]) => [re.exec(path), page]).find(([m]) => m);
  if (!match) {
    put(el, h("h1", { tabindex: "-1" }, "Not found"), h("p", null, h("a", { href: "#/fleet" }, "Fleet")));
    return el.querySelector("h1");
  }
  const [m, page] = match;
  try {
    await page(el, { ...ctx, signal: controller.signal }, ...m.slice(1).map(decodeURIComponent));
  } catch (err) {
    if (controller.signal.aborted) return undefined;
    put(el, errorBox(err));
  }
  if (controller.signal.aborted) return undefined;
  const heading = el.querySelector("h1");
  heading?.setAttribute("tabindex", "-1");
  return heading ?? undefined;
}

function signInPage(config, err) {
  document.getElementById("nav").replaceChildren();
  document.getElementById("who").replaceChildren();
  const el = clear(main());
  put(el, h("h1", null, "Sign in"));
  if (err) put(el, errorBox(err));
  if (config.oidc) {
    const again = h("input", { type: "checkbox", id: "switch-user" });
    put(
      el,
      h(
        "div",
        { class: "panel" },
        h(
          "p",
          null,
          `People sign in with the fleet's identity provider (${new URL(config.oidc.issuer).host}).`,
        ),
        h(
          "form",
          {
            class: "inline",
            onsubmit: (e) => {
              e.preventDefault();
              beginOidc(config, { switchUser: again.checked }).catch((x) => put(el, errorBox(x)));
            },
          },
          h("button", { type: "submit", class: "primary" }, "Sign in"),
          h("label", { class: "check", for: "switch-user" }, again, "as someone else"),
        ),
      ),
    );
  } else
    put(el, h("p", { class: "muted" }, "No identity provider is configured (identity.oidc, console.oidc)."));
  const input = h("input", { type: "password", id: "api-token", autocomplete: "off", size: 50 });
  put(
    el,
    h(
      "div",
      { class: "panel" },
      h("p", null, "Kiosks and automation: an API token (lunafleet token create --role viewer …)."),
      h(
        "form",
        {
          class: "inline",
          onsubmit: (e) => {
            e.preventDefault();
            try {
              useApiToken(input.value);
              location.assign("/console/#/fleet");
              location.reload();
            } catch (x) {
              put(el, errorBox(x));
            }
          },
        },
        field("API token", input),
        h("button", { type: "submit" }, "Use token"),
      ),
    ),
  );
}

start();
