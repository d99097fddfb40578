// Evidence: a job's hash-chained log, verified by the daemon (GET /v1/evidence/:id/verify: chain, copies, the
// daemon's signatures over the head, how the log ends), its records (the same stream the job page follows), and
// who approved what: each approval's statement, key and signature, as an auditor checks them offline.
import { events, get } from "./api.js";
import { details, errorBox, field, h, put, status, table, when } from "./dom.js";

export async function evidenceIndexPage(el, ctx) {
  const jobs = await get("/v1/jobs?limit=30");
  if (ctx.signal.aborted) return;
  const input = h("input", { id: "evidence-id", size: 48, required: true });
  put(
    el,
    h("h1", null, "Evidence"),
    h(
      "form",
      {
        class: "inline",
        onsubmit: (e) => {
          e.preventDefault();
          ctx.go(`#/evidence/${encodeURIComponent(input.value.trim())}`);
        },
      },
      field("Job or log id", input),
      h("button", { type: "submit" }, "Verify"),
    ),
    h("h2", null, "Recent jobs"),
    h(
      "ul",
      null,
      jobs.map((j) =>
        h(
          "li",
          null,
          h("a", { href: `#/evidence/${encodeURIComponent(j.id)}` }, j.id),
          ` ${j.runbook} `,
          status(j.state),
        ),
      ),
    ),
  );
}

export async function evidencePage(el, ctx, id) {
  put(el, h("h1", null, `Evidence of ${id}`));
  const verdict = h("div", { id: "verification" });
  put(el, verdict);
  try {
    const v = await get(`/v1/evidence/${encodeURIComponent(id)}/verify`);
    put(
      verdict,
      v.ok
        ? h(
            "dl",
            { class: "facts", "data-verified": "ok" },
            h("dt", null, "Chain"),
            h("dd", null, status("verified"), ` ${v.count} records, head ${v.headHash}`),
            h("dt", null, "Daemon signatures"),
            h("dd", null, `${v.signatures} (keys ${v.signedBy.join(", ") || "none"})`),
            h("dt", null, "Log ends"),
            h(
              "dd",
              null,
              v.end.seal === "final"
                ? `with a final seal: ${v.end.outcome}`
                : v.end.seal === "intermediate"
                  ? "with an intermediate seal (still being written)"
                  : "unsigned",
            ),
          )
        : h(
            "p",
            { class: "error", "data-verified": "failed" },
            `Does NOT verify: record ${v.index}: ${v.problem}: ${v.detail}`,
          ),
    );
  } catch (err) {
    put(verdict, errorBox(err));
  }
  const approvals = h("tbody");
  const signatures = h("tbody");
  const records = h("tbody");
  put(
    el,
    h("h2", null, "Approvals"),
    h(
      "table",
      { "aria-label": "Approvals" },
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          ["Event", "Principal", "Key", "Method", "Statement and signature", "At"].map((x) =>
            h("th", null, x),
          ),
        ),
      ),
      approvals,
    ),
    h("h2", null, "Daemon signatures"),
    h(
      "table",
      { "aria-label": "Signatures" },
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          ["Seq", "Key", "Signs up to", "Final", "At"].map((x) => h("th", null, x)),
        ),
      ),
      signatures,
    ),
    h("h2", null, "Records"),
    table(["Seq", "At", "Kind", "Actor", "What"], [], { "aria-label": "Records" }),
  );
  el.querySelector("table[aria-label=Records] tbody").replaceWith(records);
  try {
    for await (const ev of events(`/v1/jobs/${encodeURIComponent(id)}/events`, ctx.signal)) {
      if (ev.event !== "record") continue;
      const r = ev.data;
      const d = r.data ?? {};
      if (r.kind === "approval")
        put(
          approvals,
          h(
            "tr",
            { "data-approval-event": d.event },
            h("td", null, d.event ?? "-"),
            h("td", null, d.principal ?? "-"),
            h("td", { class: "cmd" }, d.keyFingerprint ?? "-"),
            h("td", null, d.method ?? (d.signature ? "sshsig" : "-")),
            h(
              "td",
              null,
              d.statement ? details("statement", d.statement) : "-",
              d.signature
                ? details("signature", d.webauthn ? { signature: d.signature, ...d.webauthn } : d.signature)
                : null,
            ),
            h("td", null, when(r.at)),
          ),
        );
      if (r.kind === "signature")
        put(
          signatures,
          h(
            "tr",
            null,
            h("td", null, String(r.seq)),
            h("td", { class: "cmd" }, d.keyId ?? "-"),
            h("td", null, d.head ? `record ${d.head.seq}` : "-"),
            h("td", null, d.final ? d.final.outcome : "no"),
            h("td", null, when(r.at)),
          ),
        );
      put(
        records,
        h(
          "tr",
          null,
          h("td", null, String(r.seq)),
          h("td", null, when(r.at)),
          h("td", null, r.kind),
          h("td", null, r.actor ?? "-"),
          h("td", { class: "cmd" }, d.event ?? d.command ?? d.step ?? ""),
        ),
      );
    }
  } catch (err) {
    if (!ctx.signal.aborted) put(el, errorBox(err));
  }
}
