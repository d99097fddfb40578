// Guard: the login ledger (GET /v1/guard) — per appliance and role the failures counted, the attempt pending, the
// quarantine and why, what the device itself last showed (attempts left) and when. A guard-admin releases a
// quarantine with a reason; releases that could lead to a zeroize or a permanent lockout (HSM SO, Partition SO,
// permanent-lockout CO) then wait for a second approver's signature (the release's own page).
import { get, post } from "./api.js";
import { errorBox, field, h, put, status, table, when } from "./dom.js";

export async function guardPage(el, ctx) {
  const entries = await get("/v1/guard");
  if (ctx.signal.aborted) return;
  const quarantined = entries.filter((e) => e.quarantined);
  put(
    el,
    h("h1", null, "Login guard"),
    h(
      "p",
      null,
      quarantined.length
        ? h("span", { class: "status status-failed" }, `${quarantined.length} quarantined credential(s)`)
        : h("span", { class: "status status-ok" }, "No credential is quarantined."),
    ),
    entries.length
      ? table(
          [
            "Device",
            "Partition",
            "Role",
            "Failures",
            "Pending",
            "Quarantine",
            "Device showed",
            "Last outcome",
            "Released",
          ],
          entries.map((e) =>
            h(
              "tr",
              {
                class: e.quarantined ? "has-problem" : undefined,
                "data-ledger": `${e.device}/${e.partition ?? "-"}/${e.role}`,
              },
              h(
                "th",
                { scope: "row" },
                e.device,
                e.appliance ? h("div", { class: "muted" }, e.appliance) : null,
              ),
              h("td", null, e.partition ?? "-"),
              h("td", null, e.role),
              h("td", null, String(e.failures)),
              h(
                "td",
                null,
                e.pendingAttempt
                  ? `${e.pendingAttempt} since ${when(e.pendingSince)} (job ${e.pendingJob ?? "?"})`
                  : "-",
              ),
              h(
                "td",
                null,
                e.quarantined
                  ? [
                      status("quarantined"),
                      ` ${e.quarantineReason ?? ""} `,
                      e.quarantineJob
                        ? h("a", { href: `#/job/${encodeURIComponent(e.quarantineJob)}` }, e.quarantineJob)
                        : null,
                      ` ${when(e.quarantinedAt)}`,
                    ]
                  : "-",
              ),
              h(
                "td",
                null,
                e.deviceAttemptsLeft !== undefined
                  ? `${e.deviceAttemptsLeft} attempts left${e.deviceState ? `, ${e.deviceState}` : ""} (${when(e.deviceObservedAt)})`
                  : "-",
              ),
              h("td", null, e.lastOutcome ? `${e.lastOutcome} ${when(e.lastAttemptAt)}` : "-"),
              h(
                "td",
                null,
                e.releasedAt
                  ? `${when(e.releasedAt)} by ${e.releasedBy ?? "?"}: ${e.releaseReason ?? ""}`
                  : "-",
              ),
            ),
          ),
          { "aria-label": "Login ledger" },
        )
      : h("p", { class: "muted" }, "The guard has recorded no login yet."),
  );
  if (ctx.can("guard.release")) for (const e of quarantined) put(el, releaseForm(e));
}

function releaseForm(e) {
  const id = `reason-${e.device}-${e.partition ?? "hsm"}-${e.role}`.replace(/[^A-Za-z0-9-]/g, "-");
  const reason = h("input", { id, size: 60, required: true });
  const out = h("div", { role: "status" });
  return h(
    "section",
    { class: "panel" },
    h("h2", null, `Release ${e.role}${e.partition ? ` of ${e.partition}` : ""} on ${e.device}`),
    h(
      "form",
      {
        class: "inline",
        onsubmit: async (ev) => {
          ev.preventDefault();
          out.replaceChildren();
          try {
            const d = await post("/v1/guard/release", {
              device: e.device,
              role: e.role,
              ...(e.partition ? { partition: e.partition } : {}),
              reason: reason.value,
            });
            if (d.kind === "released") put(out, h("p", { class: "notice" }, "Released."));
            else
              put(
                out,
                h(
                  "p",
                  { class: "notice" },
                  "Waits for a second approver's signature: ",
                  h("a", { href: `#/guard-release/${encodeURIComponent(d.request.id)}` }, d.request.id),
                ),
              );
          } catch (err) {
            put(out, errorBox(err));
          }
        },
      },
      field("What was fixed (the reason is recorded)", reason),
      h("button", { type: "submit", class: "danger" }, "Release"),
    ),
    out,
  );
}
