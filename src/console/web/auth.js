// Signing in. People: the fleet's OIDC provider, authorization code flow with PKCE (RFC 7636) as a public client —
// the browser redirects to the provider, comes back to /console/callback with a code, and exchanges it (with the
// verifier only it knows) for an access token whose audience is the API. Kiosks: an API token (viewer role), typed
// once or handed in the URL fragment (#token=lft_…, never sent to a server, removed from the address bar at once).
// The token lives in this tab's sessionStorage only: closing the tab signs out.

const SESSION = "lunafleet.session";
const PKCE = "lunafleet.pkce";

function b64url(bytes) {
  let s = "";
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function random(n = 32) {
  return b64url(crypto.getRandomValues(new Uint8Array(n)));
}

export function session() {
  try {
    const s = JSON.parse(sessionStorage.getItem(SESSION) ?? "null");
    if (!s?.token) return null;
    if (s.expiresAt && Date.now() > s.expiresAt) {
      sessionStorage.removeItem(SESSION);
      return null;
    }
    return s;
  } catch {
    return null;
  }
}

export function signOut() {
  sessionStorage.removeItem(SESSION);
  sessionStorage.removeItem(PKCE);
}

export function useApiToken(token) {
  const t = token.trim();
  if (!/^lft_[A-Za-z0-9_-]+$/.test(t))
    throw new Error("an API token starts with lft_ (lunafleet token create)");
  sessionStorage.setItem(SESSION, JSON.stringify({ token: t, method: "token" }));
}

/** A kiosk's token handed in the fragment: kept for this tab, removed from the address bar and history. */
export function takeFragmentToken() {
  const m = /^#token=(lft_[A-Za-z0-9_-]+)$/.exec(location.hash);
  if (!m) return false;
  useApiToken(m[1]);
  history.replaceState(null, "", `${location.pathname}#/fleet`);
  return true;
}

async function discover(issuer) {
  const base = issuer.replace(/\/$/, "");
  const res = await fetch(`${base}/.well-known/openid-configuration`, { credentials: "omit" });
  if (!res.ok) throw new Error(`identity provider discovery: HTTP ${res.status}`);
  const doc = await res.json();
  if (doc.issuer !== issuer) throw new Error("identity provider discovery: issuer does not match");
  if (!doc.authorization_endpoint || !doc.token_endpoint)
    throw new Error("identity provider discovery: no authorization or token endpoint");
  return doc;
}

function redirectUri() {
  return `${location.origin}/console/callback`;
}

/** Off to the provider. `switchUser`: ask it to sign in again (prompt=login), not to reuse its session. */
export async function beginOidc(config, { switchUser = false, returnTo = "#/fleet" } = {}) {
  const oidc = config.oidc;
  const doc = await discover(oidc.issuer);
  const verifier = random(48);
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  const state = random(16);
  sessionStorage.setItem(
    PKCE,
    JSON.stringify({ verifier, state, returnTo, tokenEndpoint: doc.token_endpoint }),
  );
  const q = new URLSearchParams({
    response_type: "code",
    client_id: oidc.clientId,
    redirect_uri: redirectUri(),
    scope: oidc.scope,
    state,
    code_challenge: b64url(digest),
    code_challenge_method: "S256",
  });
  if (oidc.resource) q.set("resource", oidc.resource);
  if (switchUser) q.set("prompt", "login");
  location.assign(`${doc.authorization_endpoint}?${q}`);
}

/** Back from the provider at /console/callback: check the state, exchange the code, keep the access token. */
export async function completeOidc(config) {
  const params = new URLSearchParams(location.search);
  const saved = JSON.parse(sessionStorage.getItem(PKCE) ?? "null");
  sessionStorage.removeItem(PKCE);
  if (params.get("error"))
    throw new Error(
      `sign-in refused by the identity provider: ${params.get("error_description") ?? params.get("error")}`,
    );
  if (!saved || params.get("state") !== saved.state)
    throw new Error("sign-in answer does not match a sign-in begun here");
  const body = new URLSearchParams({
    grant_type: "authorization_code",
    code: params.get("code") ?? "",
    redirect_uri: redirectUri(),
    client_id: config.oidc.clientId,
    code_verifier: saved.verifier,
  });
  if (config.oidc.resource) body.set("resource", config.oidc.resource);
  const res = await fetch(saved.tokenEndpoint, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body,
    credentials: "omit",
  });
  const answer = await res.json().catch(() => ({}));
  if (!res.ok || !answer.access_token)
    throw new Error(`token endpoint: ${answer.error_description ?? answer.error ?? `HTTP ${res.status}`}`);
  const expiresAt = Date.now() + Math.max(60, Number(answer.expires_in ?? 3600) - 30) * 1000;
  sessionStorage.setItem(SESSION, JSON.stringify({ token: answer.access_token, method: "oidc", expiresAt }));
  history.replaceState(null, "", `/console/${saved.returnTo ?? "#/fleet"}`);
}
