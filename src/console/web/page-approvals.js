// Approvals: what waits (GET /v1/approvals), and one request (GET /v1/approvals/:id) with the exact statement an
// approver signs and the plan its digest names. An approver approves with their security key or passkey: the
// browser signs the statement (challenge = its SHA-256) and the API verifies it like an SSH signature, counts it by
// the same rules, and the worker verifies it again before it zeroizes. Or rejects, with a reason. A guard release that
// needs a second approval is signed the same way.
import { get, post } from "./api.js";
import { announce, details, errorBox, field, h, put, status, table, when } from "./dom.js";
import { available, signStatement } from "./webauthn.js";

export async function approvalsPage(el, ctx) {
  const waiting = await get("/v1/approvals");
  if (ctx.signal.aborted) return;
  put(
    el,
    h("h1", null, "Approvals"),
    h("p", { class: "muted" }, "Jobs that wait for signed approvals before they change anything."),
    waiting.length
      ? table(
          ["Job", "Runbook", "Device", "Serial", "What it will do", "Approvals", "Requested by", "Deadline"],
          waiting.map((a) =>
            h(
              "tr",
              { "data-approval": a.jobId },
              h("td", null, h("a", { href: `#/approval/${encodeURIComponent(a.jobId)}` }, a.jobId)),
              h("td", null, a.runbook ?? "-"),
              h("td", null, a.device),
              h("td", null, a.serial),
              h("td", null, a.action ?? "-"),
              h("td", null, `${a.approvals.length}/${a.required}`),
              h("td", null, a.requester ?? "-"),
              h("td", null, when(a.expiresAt)),
            ),
          ),
          { "aria-label": "Waiting for approval" },
        )
      : h("p", null, "Nothing waits for approval."),
  );
}

/** The signed-in approver's security keys that count (none: they register one first). */
async function myCredentials(ctx) {
  if (!ctx.can("credentials.register")) return [];
  const all = await get("/v1/webauthn/credentials");
  return all.filter((c) => c.counts);
}

export async function approvalPage(el, ctx, id) {
  const view = await get(`/v1/approvals/${encodeURIComponent(id)}`);
  if (ctx.signal.aborted) return;
  const s = view.state;
  const out = h("div", { role: "status", id: "decision" });
  put(
    el,
    h("h1", null, `Approval of ${s.runbook ?? "job"} on ${s.device}`),
    h(
      "dl",
      { class: "facts" },
      h("dt", null, "Job"),
      h("dd", null, h("a", { href: `#/job/${encodeURIComponent(s.jobId)}` }, s.jobId)),
      h("dt", null, "Status"),
      h("dd", { id: "approval-status" }, status(s.status)),
      h("dt", null, "Device / serial"),
      h("dd", null, `${s.device} / ${s.serial}`),
      h("dt", null, "What it will do"),
      h("dd", null, s.action ?? "-"),
      h("dt", null, "Requested by"),
      h("dd", null, s.requester ?? "-"),
      h("dt", null, "Approvals"),
      h("dd", { id: "approval-count" }, `${s.approvals.length} of ${s.required}`),
      h("dt", null, "Deadline"),
      h("dd", null, when(s.expiresAt)),
    ),
    h("h2", null, "The statement you sign"),
    view.statement
      ? h("pre", { id: "statement", "aria-label": "Approval statement" }, view.statement)
      : h(
          "p",
          { class: "error" },
          "This request cannot be signed (made without its plan digest or requester).",
        ),
    h("h2", null, "The plan its digest names"),
    view.plan ? planView(view.plan) : h("p", { class: "muted" }, "The job is no longer in the queue."),
    s.approvals.length
      ? [
          h("h2", null, "Approved by"),
          table(
            ["Principal", "Key", "Method", "At"],
            s.approvals.map((a) =>
              h(
                "tr",
                null,
                h("td", null, a.principal),
                h("td", { class: "cmd" }, a.proof?.keyFingerprint ?? "-"),
                h("td", null, a.proof?.method ?? "-"),
                h("td", null, when(a.at)),
              ),
            ),
          ),
        ]
      : null,
    s.refusals.length
      ? [
          h("h2", null, "Refused attempts"),
          table(
            ["Principal", "Why", "At"],
            s.refusals.map((r) =>
              h("tr", null, h("td", null, r.principal), h("td", null, r.reason), h("td", null, when(r.at))),
            ),
          ),
        ]
      : null,
  );
  const open = s.status === "awaiting-approval" && !s.closed;
  if (ctx.can("approvals.decide") && open && view.statement) {
    const creds = await myCredentials(ctx);
    put(el, decisionPanel(ctx, s, view.statement, creds, out), out);
  }
  put(
    el,
    h(
      "p",
      { class: "muted" },
      "From a terminal instead: ",
      h("code", null, `lunafleet approve ${s.jobId} --key <your approval key>`),
    ),
  );
}

function planView(plan) {
  return h(
    "ol",
    { class: "steps", id: "approval-plan" },
    plan.steps.map((step) =>
      h(
        "li",
        null,
        h(
          "div",
          { class: "step-head" },
          h("strong", null, step.title),
          h("span", { class: "muted" }, `${step.kind}${step.target ? ` · ${step.target}` : ""}`),
        ),
        h(
          "ul",
          null,
          step.commands.map((c) => h("li", { class: "cmd" }, `${c.via} ${c.on}: ${c.command}`)),
        ),
      ),
    ),
  );
}

function decisionPanel(ctx, s, statement, creds, out) {
  const reason = h("textarea", { id: "reject-reason", rows: 2, style: "min-height:3em" });
  const approveButton = h(
    "button",
    {
      type: "button",
      class: "primary",
      disabled: creds.length === 0 || !available() || !ctx.config.webauthn,
      onclick: async () => {
        out.replaceChildren();
        approveButton.disabled = true;
        try {
          const webauthn = await signStatement(
            statement,
            ctx.config.webauthn.rpId,
            creds.map((c) => c.credentialId),
          );
          const state = await post(`/v1/approvals/${encodeURIComponent(s.jobId)}/approve`, {
            statement,
            webauthn,
          });
          put(
            out,
            h(
              "p",
              { class: "notice", "data-result": state.status },
              `Approved: ${state.approvals.length} of ${state.required}; status ${state.status}.`,
            ),
          );
          announce(`approval counted, ${state.approvals.length} of ${state.required}`);
        } catch (err) {
          approveButton.disabled = false;
          put(out, errorBox(err));
        }
      },
    },
    "Approve with security key",
  );
  return h(
    "section",
    { class: "panel", "aria-labelledby": "decide" },
    h("h2", { id: "decide" }, "Your decision"),
    creds.length === 0
      ? h(
          "p",
          null,
          "You have no security key registered: ",
          h("a", { href: "#/keys" }, "register one first"),
          ".",
        )
      : h(
          "p",
          null,
          `Your security key signs the statement above (${creds.map((c) => c.label).join(", ")}).`,
        ),
    approveButton,
    h(
      "form",
      {
        class: "inline",
        onsubmit: async (e) => {
          e.preventDefault();
          out.replaceChildren();
          try {
            const state = await post(`/v1/approvals/${encodeURIComponent(s.jobId)}/reject`, {
              reason: reason.value,
            });
            put(out, h("p", { class: "notice", "data-result": state.status }, `Rejected: ${state.status}.`));
          } catch (err) {
            put(out, errorBox(err));
          }
        },
      },
      field("Reason to reject", reason),
      h("button", { type: "submit", class: "danger" }, "Reject"),
    ),
  );
}

export async function guardReleasePage(el, ctx, id) {
  const r = await get(`/v1/guard/releases/${encodeURIComponent(id)}`);
  if (ctx.signal.aborted) return;
  const out = h("div", { role: "status" });
  put(
    el,
    h("h1", null, `Guard release ${id}`),
    h("p", null, "Status: ", status(r.status)),
    h("h2", null, "The statement a second approver signs"),
    h("pre", { id: "statement" }, r.statement),
    details("Request (JSON)", r),
  );
  if (ctx.can("approvals.decide") && r.status === "awaiting-approval") {
    const creds = await myCredentials(ctx);
    const button = h(
      "button",
      {
        type: "button",
        class: "primary",
        disabled: creds.length === 0 || !available() || !ctx.config.webauthn,
        onclick: async () => {
          out.replaceChildren();
          try {
            const webauthn = await signStatement(
              r.statement,
              ctx.config.webauthn.rpId,
              creds.map((c) => c.credentialId),
            );
            const done = await post(`/v1/guard/releases/${encodeURIComponent(id)}/approve`, {
              statement: r.statement,
              webauthn,
            });
            put(out, h("p", { class: "notice" }, `Released (evidence ${done.evidenceJobId}).`));
          } catch (err) {
            put(out, errorBox(err));
          }
        },
      },
      "Approve release with security key",
    );
    put(el, button, out);
  }
}
