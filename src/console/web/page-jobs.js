// Jobs: the list in the outcome words every reader uses (GET /v1/jobs), a form to run a runbook (operators), and a
// job's own page that follows it live: its evidence records as the worker appends them (GET /v1/jobs/:id/events),
// each step as it starts and ends, the commands sent, the replies and parsed answers (redacted before they were
// recorded), set against the plan the job admitted — so what ran can be read beside what was planned.
import { events, get, post } from "./api.js";
import { announce, clear, details, errorBox, field, h, put, status, table, when } from "./dom.js";

const OPEN = ["queued", "delayed", "running", "awaiting-approval"];

export async function jobsPage(el, ctx) {
  const [jobs, fleet] = await Promise.all([get("/v1/jobs?limit=100"), get("/v1/fleet")]);
  if (ctx.signal.aborted) return;
  put(el, h("h1", null, "Jobs"));
  if (ctx.can("jobs.submit")) put(el, runForm(ctx, fleet));
  put(
    el,
    table(
      ["Job", "Runbook", "Target", "Outcome", "Steps", "Requested by", "Created", "Finished"],
      jobs.map((j) =>
        h(
          "tr",
          { "data-job": j.id },
          h("td", null, h("a", { href: `#/job/${encodeURIComponent(j.id)}` }, j.id)),
          h("td", null, j.runbook),
          h("td", null, j.target),
          h("td", null, status(j.state), j.findings?.length ? ` (${j.findings.length} findings)` : ""),
          h("td", null, j.progress),
          h("td", null, j.actor),
          h("td", null, when(new Date(j.createdAt).toISOString())),
          h("td", null, j.finishedAt ? when(new Date(j.finishedAt).toISOString()) : "-"),
        ),
      ),
      { "aria-label": "Jobs" },
    ),
  );
}

function runForm(ctx, fleet) {
  const runbook = h(
    "select",
    { id: "run-runbook", required: true },
    ctx.config.runbooks.map((r) => h("option", { value: r.name, title: r.description }, r.name)),
  );
  const targets = [
    "fleet",
    ...fleet.devices.map((d) => d.name),
    ...fleet.haGroups.map((g) => g.label),
    ...fleet.clientHosts.map((c) => c.name),
    ...(fleet.managedHsms ?? []).map((m) => m.name),
  ];
  const target = h("input", { id: "run-target", list: "run-targets", size: 16 });
  const params = h("input", { id: "run-params", size: 40, placeholder: "repair=true expiringWithinDays=30" });
  const out = h("div", { role: "status" });
  return h(
    "section",
    { class: "panel", "aria-labelledby": "run-title" },
    h("h2", { id: "run-title" }, "Run a runbook"),
    h(
      "form",
      {
        class: "inline",
        onsubmit: async (e) => {
          e.preventDefault();
          out.replaceChildren();
          try {
            const job = await post("/v1/jobs", {
              runbook: runbook.value,
              ...(target.value.trim() ? { target: target.value.trim() } : {}),
              params: parseParams(params.value),
            });
            ctx.go(`#/job/${encodeURIComponent(job.jobId)}`);
          } catch (err) {
            put(out, errorBox(err));
          }
        },
      },
      field("Runbook", runbook),
      field("Target", target),
      h(
        "datalist",
        { id: "run-targets" },
        targets.map((t) => h("option", { value: t })),
      ),
      field("Parameters (key=value …)", params),
      h("button", { type: "submit", class: "primary" }, "Run"),
    ),
    out,
  );
}

/** `a=1 b=true c=text` → { a: 1, b: true, c: "text" } (the CLI's --param values, typed the same way). */
function parseParams(text) {
  const out = {};
  for (const part of text.trim().split(/\s+/).filter(Boolean)) {
    const i = part.indexOf("=");
    if (i <= 0) throw new Error(`parameter '${part}' is not key=value`);
    const value = part.slice(i + 1);
    out[part.slice(0, i)] =
      value === "true"
        ? true
        : value === "false"
          ? false
          : /^-?\d+(\.\d+)?$/.test(value)
            ? Number(value)
            : value;
  }
  return out;
}

export async function jobPage(el, ctx, id) {
  const detail = await get(`/v1/jobs/${encodeURIComponent(id)}`);
  if (ctx.signal.aborted) return;
  const outcome = h("span", { id: "job-outcome", "data-outcome": detail.outcome }, status(detail.outcome));
  const actions = h("div", { class: "inline" });
  const planList = h("ol", { class: "steps", id: "plan", "aria-label": "Plan" });
  const ranList = h("ol", { class: "steps", id: "ran", "aria-label": "What ran", "aria-live": "polite" });
  const other = h("ul", { id: "job-records" });
  const data = detail.data ?? {};
  put(
    el,
    h("h1", null, `Job ${id}`),
    h(
      "dl",
      { class: "facts" },
      h("dt", null, "Runbook"),
      h("dd", null, data.runbook ?? detail.result?.runbook ?? "-"),
      h("dt", null, "Target"),
      h("dd", null, data.params?.target ?? "-"),
      h("dt", null, "Requested by"),
      h("dd", null, data.actor ?? "-"),
      h("dt", null, "Outcome"),
      h("dd", null, outcome),
      h("dt", null, "Created"),
      h(
        "dd",
        null,
        detail.timestamps?.created ? when(new Date(detail.timestamps.created).toISOString()) : "-",
      ),
    ),
    actions,
    h("h2", null, "Plan"),
    planList,
    h("h2", null, "What ran"),
    ranList,
    h("h2", null, "Other records"),
    other,
  );
  const setOutcome = (word) => {
    outcome.dataset.outcome = word;
    put(clear(outcome), status(word));
    drawActions(word);
  };
  const drawActions = (word) => {
    clear(actions);
    put(actions, h("a", { href: `#/evidence/${encodeURIComponent(id)}` }, "Evidence"));
    if (word === "awaiting-approval")
      put(
        actions,
        " · ",
        h("a", { href: `#/approval/${encodeURIComponent(id)}` }, "What waits for approval"),
      );
    if (ctx.can("jobs.cancel") && OPEN.includes(word))
      put(
        actions,
        " ",
        h(
          "button",
          {
            type: "button",
            class: "danger",
            onclick: async () => {
              try {
                const r = await post(`/v1/jobs/${encodeURIComponent(id)}/cancel`);
                put(actions, h("span", { role: "status" }, ` cancel: ${r.outcome}`));
              } catch (err) {
                put(actions, errorBox(err));
              }
            },
          },
          "Cancel job",
        ),
      );
  };
  drawActions(detail.outcome);

  const steps = new Map();
  const planSteps = new Map();
  const stepOf = (key) => {
    let s = steps.get(key);
    if (!s) {
      const state = h("span", { class: "step-state" }, status("running"));
      const cmds = h("ul", { class: "step-commands" });
      const li = h(
        "li",
        { "data-step": key, "data-state": "running" },
        h("div", { class: "step-head" }, h("strong", null, key), state),
        cmds,
      );
      put(ranList, li);
      s = { li, state, cmds, head: li.firstChild };
      steps.set(key, s);
    }
    return s;
  };
  const markPlan = (key, word) => {
    const p = planSteps.get(key);
    if (!p) return;
    p.li.dataset.state = word;
    put(clear(p.state), status(word));
  };

  const onRecord = (r) => {
    const d = r.data ?? {};
    switch (r.kind) {
      case "plan":
        clear(planList);
        for (const step of d.steps ?? []) {
          const key = step.target ? `${step.id}:${step.target}` : step.id;
          const state = h("span", { class: "step-state" }, status("not run yet"));
          const li = h(
            "li",
            { "data-plan-step": key, "data-state": "planned" },
            h(
              "div",
              { class: "step-head" },
              h("strong", null, step.title),
              h("span", { class: "muted" }, `${step.kind}${step.target ? ` · ${step.target}` : ""}`),
              state,
            ),
            h(
              "ul",
              null,
              (step.commands ?? []).map((c) =>
                h("li", { class: "cmd" }, typeof c === "string" ? c : `${c.via} ${c.on}: ${c.command}`),
              ),
            ),
          );
          planSteps.set(key, { li, state });
          put(planList, li);
        }
        break;
      case "step": {
        const s = stepOf(d.step);
        if (d.event === "started") {
          put(
            clear(s.head),
            h("strong", null, d.title ?? d.step),
            h("span", { class: "muted" }, ` ${d.kind ?? ""} · started ${when(r.at)}`),
            s.state,
          );
          markPlan(d.step, "running");
          announce(`step started: ${d.title ?? d.step}`);
        } else if (d.event === "finished" || d.event === "resumed" || d.event === "skipped") {
          const word = d.event === "finished" ? "done" : d.event;
          s.li.dataset.state = word;
          put(clear(s.state), status(word), h("span", { class: "muted" }, ` ${when(r.at)}`));
          if (d.result !== undefined) put(s.li, details("Step result", d.result));
          markPlan(d.step, word);
          announce(`step ${word}: ${d.step}`);
        } else put(s.cmds, h("li", null, `${d.event}`));
        break;
      }
      case "command":
        stepOf(d.step ?? "(no step)").cmds.append(
          h("li", { class: "cmd", "data-command": d.command }, `sent ${d.via} ${d.on}: ${d.command}`),
        );
        break;
      case "reply":
        stepOf(d.step ?? "(no step)").cmds.append(
          h("li", null, details(`reply from ${d.on} to '${d.command}'`, d.raw ?? "")),
        );
        break;
      case "parse":
        stepOf(d.step ?? "(no step)").cmds.append(
          h("li", null, details(`parsed answer to '${d.command}'`, d.result)),
        );
        break;
      case "error": {
        const target = d.step ? stepOf(d.step) : null;
        const line = h("li", { class: "error" }, `error: ${d.message ?? d.error ?? JSON.stringify(d)}`);
        if (target) {
          put(target.cmds, line);
          target.li.dataset.state = "failed";
          put(clear(target.state), status("failed"));
          markPlan(d.step, "failed");
        } else put(other, line);
        break;
      }
      case "result":
        setOutcome(d.outcome ?? d.status ?? "unknown");
        if (d.findings?.length)
          put(
            other,
            h(
              "li",
              null,
              "Findings:",
              h(
                "ul",
                { class: "problems" },
                d.findings.map((f) => h("li", null, f)),
              ),
            ),
          );
        break;
      case "note": {
        // The engine's approval wait says where it stands: waiting for approvals, or granted and going on.
        const n = d.data ?? d;
        if (n.approvals === "awaiting-approval") setOutcome("awaiting-approval");
        else if (n.approvals === "approved") setOutcome("running");
        const text = n.approvals
          ? `approvals ${n.approvals}${n.required ? ` (${n.granted?.length ?? 0} of ${n.required})` : ""}`
          : "note";
        (d.step ? stepOf(d.step).cmds : other).append(h("li", { class: "muted" }, `${when(r.at)} ${text}`));
        break;
      }
      case "approval":
        if (d.event === "requested") setOutcome("awaiting-approval");
        put(
          other,
          h(
            "li",
            null,
            `${when(r.at)} approval ${d.event}${d.principal ? ` by ${d.principal}` : ""}${d.reason ? `: ${d.reason}` : ""}`,
          ),
        );
        break;
      default:
        put(
          other,
          h(
            "li",
            { class: "muted" },
            `${when(r.at)} ${r.kind}${d.event ? ` ${d.event}` : ""}${r.actor ? ` (${r.actor})` : ""}`,
          ),
        );
    }
  };

  try {
    for await (const ev of events(`/v1/jobs/${encodeURIComponent(id)}/events`, ctx.signal)) {
      if (ev.event === "record") onRecord(ev.data);
      else if (ev.event === "end") {
        // The job's recorded result says how it ended (the queue may mark it done a moment later).
        const word =
          ev.data?.outcome ??
          ev.data?.status ??
          (await get(`/v1/jobs/${encodeURIComponent(id)}/status`)).outcome;
        setOutcome(word);
        outcome.dataset.ended = "true";
        announce(`job ended: ${word}`);
      }
    }
  } catch (err) {
    if (!ctx.signal.aborted) put(el, errorBox(err));
  }
}
