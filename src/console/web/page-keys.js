// Security keys and passkeys of the signed-in approver. Registering one takes two proofs: the browser makes the
// credential for this principal (checked against a challenge the daemon issued to them), then they sign its
// registration statement with their approval key from the fleet file (ssh-keygen -Y sign): only a key the reviewed
// fleet file registers to them can make a security key count as theirs. README "Approving from the console".
import { del, get, post } from "./api.js";
import { announce, clear, errorBox, field, h, put, status, table, when } from "./dom.js";
import { available, createCredential } from "./webauthn.js";

export function keysPage(el, ctx) {
  return drawKeys(el, ctx, null);
}

async function drawKeys(el, ctx, notice) {
  const mine = await get("/v1/webauthn/credentials");
  if (ctx.signal.aborted) return;
  const out = h("div", { role: "status", id: "keys-status" });
  put(
    clear(el),
    h("h1", null, "Security keys"),
    notice,
    h("p", null, `Security keys and passkeys that sign approvals as ${ctx.me.name}.`),
    mine.length
      ? table(
          ["Name", "Credential", "Registered", "Vouched for by", "Counts", ""],
          mine.map((c) =>
            h(
              "tr",
              { "data-credential": c.credentialId },
              h("th", { scope: "row" }, c.label),
              h("td", { class: "cmd" }, `${c.credentialId.slice(0, 16)}…`),
              h("td", null, when(c.registeredAt)),
              h("td", { class: "cmd" }, c.vouchedBy),
              h("td", null, c.counts ? status("ok") : [status("problem"), ` ${c.setAsideBecause}`]),
              h(
                "td",
                null,
                h(
                  "button",
                  {
                    type: "button",
                    class: "danger",
                    onclick: async () => {
                      try {
                        await del(`/v1/webauthn/credentials/${encodeURIComponent(c.credentialId)}`);
                        await drawKeys(el, ctx, h("p", { class: "notice" }, `Revoked ${c.label}.`));
                      } catch (err) {
                        put(out, errorBox(err));
                      }
                    },
                  },
                  `Revoke ${c.label}`,
                ),
              ),
            ),
          ),
          { "aria-label": "Your security keys" },
        )
      : h("p", { class: "muted" }, "None registered yet."),
  );
  if (!ctx.config.webauthn) {
    put(el, h("p", { class: "error" }, "Security keys are not configured for this fleet (console.url)."));
    return;
  }
  if (!available()) {
    put(
      el,
      h(
        "p",
        { class: "error" },
        "This browser offers no WebAuthn here (it needs HTTPS with a trusted certificate).",
      ),
    );
    return;
  }
  const label = h("input", { id: "key-label", size: 30, value: "security key", required: true });
  const step2 = h("div", { id: "register-step2" });
  put(
    el,
    h(
      "section",
      { class: "panel", "aria-labelledby": "add-key" },
      h("h2", { id: "add-key" }, "Add a security key"),
      h("p", null, "1. Touch your key when the browser asks (it may ask for its PIN)."),
      h(
        "form",
        {
          class: "inline",
          onsubmit: async (e) => {
            e.preventDefault();
            out.replaceChildren();
            step2.replaceChildren();
            try {
              const { options } = await post("/v1/webauthn/registrations/options");
              const response = await createCredential(options);
              const pending = await post("/v1/webauthn/registrations", { label: label.value, response });
              put(
                step2,
                signStep(pending, out, (done) => drawKeys(el, ctx, done)),
              );
              announce("security key made; now sign its registration statement");
            } catch (err) {
              put(out, errorBox(err));
            }
          },
        },
        field("Name", label),
        h("button", { type: "submit", class: "primary" }, "Add a security key"),
      ),
      step2,
      out,
    ),
  );
}

function signStep(pending, out, redraw) {
  const signature = h("textarea", { id: "registration-signature", spellcheck: "false" });
  return h(
    "div",
    null,
    h("p", null, "2. Sign this statement with your approval key (one of these, from the fleet file):"),
    h(
      "ul",
      null,
      pending.signWith.map((line) => h("li", { class: "cmd" }, line)),
    ),
    h("pre", { id: "registration-statement", "aria-label": "Registration statement" }, pending.statement),
    h("p", null, "Save it as statement.txt exactly as shown (it ends with a newline), then run:"),
    h("pre", null, "ssh-keygen -Y sign -n lunafleet-approval -f <your approval key> statement.txt"),
    h("p", null, `and paste statement.txt.sig here before ${when(pending.expiresAt)}:`),
    h(
      "form",
      {
        onsubmit: async (e) => {
          e.preventDefault();
          out.replaceChildren();
          try {
            const done = await post(`/v1/webauthn/registrations/${encodeURIComponent(pending.id)}/complete`, {
              signature: signature.value,
            });
            announce("security key registered");
            await redraw(
              h(
                "p",
                { class: "notice", "data-registered": done.credentialId },
                `Registered ${done.label}: it counts for ${done.principal}.`,
              ),
            );
          } catch (err) {
            put(out, errorBox(err));
          }
        },
      },
      field("Signature (-----BEGIN SSH SIGNATURE----- …)", signature),
      h("button", { type: "submit", class: "primary" }, "Register this key"),
    ),
  );
}
