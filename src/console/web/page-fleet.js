// Fleet: the report (GET /v1/report, the fleet state model as `lunafleet report --json` gives it) — problems first,
// devices in service (those with problems on top), retired and retiring devices apart, client hosts; every fact with
// its age. Device: one device's facts and its job history (GET /v1/report?device=…).
import { get, post } from "./api.js";
import { age, details, errorBox, fact, h, put, status, table, when } from "./dom.js";

const CORE = [
  ["ntls", "NTLS 1792"],
  ["cert", "Certificate"],
  ["software", "Software"],
  ["patch:KB0019789", "KB0019789"],
];

export async function fleetPage(el, ctx) {
  const report = await get("/v1/report");
  if (ctx.signal.aborted) return;
  const inService = report.devices.filter((d) => d.state === "in service");
  const retired = report.devices.filter((d) => d.state !== "in service");
  // Problems first: devices with problems on top, in the report's order otherwise.
  inService.sort((a, b) => Number(b.problems.length > 0) - Number(a.problems.length > 0));

  put(
    el,
    h("h1", null, "Fleet"),
    h(
      "p",
      { class: "muted" },
      `Report generated ${when(report.generatedAt)}; facts older than ${age(report.staleAfterSeconds)} are stale.`,
    ),
    h("h2", { id: "problems" }, `Problems (${report.problems.length})`),
    report.problems.length
      ? h(
          "ul",
          { class: "problems", "aria-labelledby": "problems", "data-problems": "" },
          report.problems.map((p) => h("li", null, p)),
        )
      : h("p", { class: "status status-ok" }, "No problems in the state model."),
    report.stale.length
      ? [
          h("h2", null, `Stale facts (${report.stale.length})`),
          h(
            "ul",
            null,
            report.stale.map((s) => h("li", null, s)),
          ),
        ]
      : null,
    h("h2", null, `Devices in service (${inService.length})`),
    table(
      ["Device", "Problems", ...CORE.map(([, label]) => label), "HA members", "Guard", "Checked"],
      inService.map((d) =>
        h(
          "tr",
          { class: d.problems.length ? "has-problem" : undefined, "data-device": d.device },
          h("th", { scope: "row" }, h("a", { href: `#/device/${encodeURIComponent(d.device)}` }, d.device)),
          h(
            "td",
            null,
            d.problems.length
              ? h(
                  "ul",
                  { class: "problems" },
                  d.problems.map((p) => h("li", null, p)),
                )
              : h("span", { class: "status status-ok" }, "none"),
          ),
          CORE.map(([key]) => h("td", null, fact(d.facts[key]))),
          h(
            "td",
            null,
            d.ha.length
              ? d.ha.map((m) =>
                  h(
                    "div",
                    { "data-ha": m.group },
                    `${m.group}: `,
                    fact(m.member),
                    // The domain only when it is wrong or unverified, as `report` prints it: the column stays short.
                    m.cloningDomain.status === "problem" || m.cloningDomain.status === "check-failed"
                      ? [" domain ", fact(m.cloningDomain)]
                      : null,
                  ),
                )
              : h("span", { class: "muted" }, "-"),
          ),
          h("td", null, d.guard ?? h("span", { class: "muted" }, "-")),
          h("td", null, d.checkedAt ? `${age(d.ageSeconds)} ago` : "never", d.stale ? status("stale") : null),
        ),
      ),
      { "aria-label": "Devices in service" },
    ),
    h("h2", null, `Retired and retiring (${retired.length})`),
    retired.length
      ? table(
          ["Device", "State", "Zeroized", "Lifecycle", "Problems"],
          retired.map((d) =>
            h(
              "tr",
              { "data-device": d.device },
              h(
                "th",
                { scope: "row" },
                h("a", { href: `#/device/${encodeURIComponent(d.device)}` }, d.device),
              ),
              h("td", { "data-state": d.state }, d.state),
              h("td", null, fact(d.facts.zeroized)),
              h("td", null, fact(d.facts.lifecycle)),
              h(
                "td",
                null,
                d.problems.length
                  ? h(
                      "ul",
                      { class: "problems" },
                      d.problems.map((p) => h("li", null, p)),
                    )
                  : "-",
              ),
            ),
          ),
          { "aria-label": "Retired and retiring devices" },
        )
      : h("p", { class: "muted" }, "None."),
    h("h2", null, `Client hosts (${report.clientHosts.length})`),
    table(
      ["Host", "Facts", "Problems"],
      report.clientHosts.map((c) =>
        h(
          "tr",
          { class: c.problems.length ? "has-problem" : undefined },
          h("th", { scope: "row" }, c.host),
          h(
            "td",
            null,
            Object.values(c.facts).map((f) => h("div", null, `${f.fact}: `, fact(f))),
          ),
          h(
            "td",
            null,
            c.problems.length
              ? h(
                  "ul",
                  { class: "problems" },
                  c.problems.map((p) => h("li", null, p)),
                )
              : "-",
          ),
        ),
      ),
    ),
    report.managedHsms?.length
      ? [
          h("h2", null, `Managed HSMs (${report.managedHsms.length})`),
          table(
            ["Pool", "Problems"],
            report.managedHsms.map((m) =>
              h(
                "tr",
                null,
                h("th", { scope: "row" }, m.name ?? m.pool ?? "?"),
                h(
                  "td",
                  null,
                  (m.problems ?? []).length
                    ? h(
                        "ul",
                        { class: "problems" },
                        m.problems.map((p) => h("li", null, p)),
                      )
                    : "-",
                ),
              ),
            ),
          ),
        ]
      : null,
  );
}

export async function devicePage(el, ctx, name) {
  const { row, jobs } = await get(`/v1/report?device=${encodeURIComponent(name)}`);
  if (ctx.signal.aborted) return;
  put(
    el,
    h("h1", null, `Device ${row.device}`),
    h(
      "p",
      null,
      "State: ",
      h("strong", { "data-state": row.state }, row.state),
      row.checkedAt ? ` · checked ${age(row.ageSeconds)} ago` : "",
    ),
    row.problems.length
      ? h(
          "ul",
          { class: "problems", "data-problems": "" },
          row.problems.map((p) => h("li", null, p)),
        )
      : h("p", { class: "status status-ok" }, "No problems."),
    h("h2", null, "Facts"),
    table(
      ["Fact", "Status", "Summary", "Seen", "By", "Reason"],
      Object.values(row.facts).map((f) =>
        h(
          "tr",
          { "data-fact": f.fact },
          h("th", { scope: "row" }, f.fact),
          h("td", null, status(f.status)),
          h("td", null, f.summary),
          h(
            "td",
            null,
            f.observedAt ? `${when(f.observedAt)} (${age(f.ageSeconds)} ago)` : "never",
            f.stale ? status("stale") : null,
          ),
          h(
            "td",
            null,
            f.jobId
              ? h("a", { href: `#/job/${encodeURIComponent(f.jobId)}` }, f.by ?? f.jobId)
              : (f.by ?? "-"),
          ),
          h("td", null, f.reason ?? ""),
        ),
      ),
    ),
    row.ha.length
      ? [
          h("h2", null, "HA membership"),
          table(
            ["Group", "Partition", "Member", "Cloning domain"],
            row.ha.map((m) =>
              h(
                "tr",
                null,
                h("td", null, m.group),
                h("td", null, m.partition),
                h("td", null, fact(m.member)),
                h("td", null, fact(m.cloningDomain)),
              ),
            ),
          ),
        ]
      : null,
    row.pairs.length
      ? [
          h("h2", null, "Clients (trust pairs)"),
          table(
            ["Client host", "Trust", "vtl verify"],
            row.pairs.map((p) =>
              h(
                "tr",
                null,
                h("td", null, p.host),
                h("td", null, fact(p.trust)),
                h("td", null, fact(p.vtlVerify)),
              ),
            ),
          ),
        ]
      : null,
    h("h2", null, "Job history"),
    jobs.length
      ? table(
          ["Job", "Runbook", "Outcome", "Requested by", "Finished"],
          jobs.map((j) =>
            h(
              "tr",
              null,
              h("td", null, h("a", { href: `#/job/${encodeURIComponent(j.jobId)}` }, j.jobId)),
              h("td", null, j.runbook),
              h("td", null, status(j.outcome)),
              h("td", null, j.actor),
              h("td", null, when(j.finishedAt)),
            ),
          ),
        )
      : h("p", { class: "muted" }, "No job has touched it yet."),
  );
  if (ctx.can("jobs.submit") && row.state === "in service") put(el, deprovisionForm(ctx, row.device));
  put(el, details("Raw facts (JSON)", row.facts));
}

/** Retiring a device: a deprovision job, which then waits for two signed approvals (the Approvals page). */
function deprovisionForm(ctx, device) {
  const backups = h("input", { type: "checkbox", id: "backups-confirmed" });
  const deleteGroup = h("input", { type: "checkbox", id: "delete-rg" });
  const out = h("div", { role: "status" });
  return h(
    "section",
    { class: "panel", "aria-labelledby": "retire" },
    h("h2", { id: "retire" }, `Retire ${device}`),
    h(
      "p",
      null,
      "Zeroizes the appliance, deletes its Azure resource and (if asked and empty) its resource group, after two approvals signed by registered keys. Nothing happens before they are given.",
    ),
    h(
      "form",
      {
        class: "inline",
        onsubmit: async (e) => {
          e.preventDefault();
          out.replaceChildren();
          try {
            const job = await post("/v1/jobs", {
              runbook: "deprovision",
              target: device,
              params: { backupsConfirmed: backups.checked, deleteResourceGroup: deleteGroup.checked },
            });
            ctx.go(`#/job/${encodeURIComponent(job.jobId)}`);
          } catch (err) {
            put(out, errorBox(err));
          }
        },
      },
      h(
        "label",
        { class: "check", for: "backups-confirmed" },
        backups,
        "Backups of its partitions are confirmed",
      ),
      h("label", { class: "check", for: "delete-rg" }, deleteGroup, "Delete its resource group when empty"),
      h("button", { type: "submit", class: "danger" }, `Deprovision ${device}`),
    ),
    out,
  );
}
