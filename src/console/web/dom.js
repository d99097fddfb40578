// Building the page: elements from data, never from HTML strings (nothing the API returns is ever parsed as markup),
// and the few formats every page shares (times in UTC, ages, status words).

/**
 * h("a", { href: "#/fleet", class: "x" }, "text", child, [more]) → an element. Attributes starting with "on" are
 * listeners; `true`/`false` toggle boolean attributes; null and undefined children are skipped.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "for") el.htmlFor = value;
    else if (key === "value") el.value = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** `2026-12-04 13:39Z`: to the minute, in UTC, as the CLI prints it. */
export function when(iso) {
  if (!iso) return "never";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return `${d.toISOString().slice(0, 16).replace("T", " ")}Z`;
}

/** `12s`, `5m`, `3h`, `2d` (the report's ageText). */
export function age(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

/** Seconds since an ISO time (for times the API gives without an age). */
export function secondsSince(iso) {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : Math.max(0, Math.round((Date.now() - t) / 1000));
}

/** A status word in its colour; the word itself is always there (colour is never the only signal). */
export function status(word) {
  const safe = String(word ?? "unknown");
  return h("span", { class: `status status-${safe.replace(/[^a-z-]/g, "")}` }, safe);
}

/** A fact from the report: its summary, status word when not ok, and how old it is (hover: when and by which job). */
export function fact(view) {
  if (!view) return h("span", { class: "muted" }, "-");
  const title = view.observedAt
    ? `${view.status}, seen ${when(view.observedAt)} by ${view.by ?? "?"} (job ${view.jobId ?? "-"})${view.reason ? `: ${view.reason}` : ""}`
    : "never observed";
  return h(
    "span",
    { title, class: view.stale ? "stale" : undefined },
    view.status === "ok" ? view.summary : [status(view.status), " ", view.summary],
    h("span", { class: "muted" }, view.observedAt ? ` · ${age(view.ageSeconds)} ago` : ""),
    view.stale ? h("span", { class: "status status-stale" }, " (stale)") : null,
  );
}

export function table(headers, rows, attrs = {}) {
  return h(
    "table",
    attrs,
    h(
      "thead",
      null,
      h(
        "tr",
        null,
        headers.map((x) => h("th", { scope: "col" }, x)),
      ),
    ),
    h("tbody", null, rows),
  );
}

/** JSON, shown collapsed: parsed answers and step results are there to be read on demand. */
export function details(summary, value) {
  return h(
    "details",
    null,
    h("summary", null, summary),
    h("pre", null, typeof value === "string" ? value : JSON.stringify(value, null, 2)),
  );
}

export function errorBox(err) {
  return h("p", { class: "error", role: "alert" }, err?.message ?? String(err));
}

/** Tell screen readers what changed (live job steps, decisions). */
export function announce(text) {
  const el = document.getElementById("announce");
  if (el) el.textContent = text;
}

/** A form field: its label beside (not around) the control, so the control's name is the label's text only. */
export function field(label, control) {
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control);
}

/** Append children to an element as h() does: arrays flattened, null/undefined/false skipped (append() would print them). */
export function put(el, ...children) {
  append(el, children);
  return el;
}
