// HA: each group of the fleet (GET /v1/fleet), its members' state and cloning domain as the state model last saw
// them (GET /v1/report: the same facts `report` prints), and ha-recover's per-member breakers (GET /v1/ha/breakers).
// Operators start ha-recover on a group here and follow it on the job's page; they release an open breaker.
import { get, post } from "./api.js";
import { errorBox, fact, h, put, status, table } from "./dom.js";

export async function haPage(el, ctx) {
  const [fleet, report, breakers] = await Promise.all([
    get("/v1/fleet"),
    get("/v1/report"),
    get("/v1/ha/breakers"),
  ]);
  if (ctx.signal.aborted) return;
  const threshold = fleet.defaults.breakerThreshold;
  const memberView = (group, device, partition) =>
    report.devices
      .find((d) => d.device === device)
      ?.ha.find((m) => m.group === group && m.partition === partition);
  put(el, h("h1", null, "High availability"));
  for (const g of fleet.haGroups) {
    const out = h("div", { role: "status" });
    put(
      el,
      h(
        "section",
        { "aria-labelledby": `group-${g.label}`, "data-group": g.label },
        h("h2", { id: `group-${g.label}` }, `${g.label} on ${g.clientHost}`),
        h(
          "p",
          { class: "muted" },
          `cloning domain ${g.cloningDomain ?? "(none declared)"} · retry ${g.retry?.count ?? "-"} every ${g.retry?.intervalSeconds ?? "-"} s · automatic recovery ${g.auto ? "on" : "off"}`,
        ),
        table(
          ["Member", "State", "Cloning domain", "Breaker"],
          g.members.map((m) => {
            const v = memberView(g.label, m.device, m.partition);
            const b = breakers.find((x) => x.group === g.label && x.member === `${m.device}/${m.partition}`);
            return h(
              "tr",
              { "data-member": `${m.device}/${m.partition}` },
              h("th", { scope: "row" }, `${m.device}/${m.partition}`),
              h("td", null, fact(v?.member)),
              h("td", null, fact(v?.cloningDomain)),
              h(
                "td",
                null,
                b
                  ? [
                      status(b.failures >= threshold ? "open" : "closed"),
                      ` ${b.failures} failed recoveries`,
                      b.failures > 0 && ctx.can("ha.release-breaker")
                        ? releaseButton(g.label, b.member, out)
                        : null,
                    ]
                  : "closed",
              ),
            );
          }),
        ),
        ctx.can("jobs.submit")
          ? h(
              "button",
              {
                type: "button",
                class: "primary",
                onclick: async () => {
                  out.replaceChildren();
                  try {
                    const job = await post("/v1/jobs", { runbook: "ha-recover", target: g.label });
                    ctx.go(`#/job/${encodeURIComponent(job.jobId)}`);
                  } catch (err) {
                    put(out, errorBox(err));
                  }
                },
              },
              `Recover ${g.label}`,
            )
          : null,
        out,
      ),
    );
  }
  if (fleet.haGroups.length === 0) put(el, h("p", { class: "muted" }, "The fleet has no HA group."));
}

function releaseButton(group, member, out) {
  return h(
    "button",
    {
      type: "button",
      onclick: async () => {
        out.replaceChildren();
        try {
          const r = await post("/v1/ha/breakers/release", {
            group,
            member,
            reason: "released from the console",
          });
          put(
            out,
            h("p", { class: "notice" }, `Breaker of ${r.member} released (${r.cleared} failures cleared).`),
          );
        } catch (err) {
          put(out, errorBox(err));
        }
      },
    },
    "Release breaker",
  );
}
