// Passkeys: registration on the passkeys page and the second factor on the
// code page. The server sends WebAuthn options as JSON with binary fields in
// base64url; this module turns them into ArrayBuffers for the browser's
// credential API and the answers back into base64url JSON. The challenge
// only ever comes from the server, which keeps the ceremony's state.
import { t } from "./i18n.js";

const fromB64url = (s) => {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(s.length / 4) * 4, "=");
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer;
};

const toB64url = (buf) => {
  if (!buf) return undefined;
  let s = "";
  for (const b of new Uint8Array(buf)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
};

const descriptors = (list) => (list || []).map((c) => ({ ...c, id: fromB64url(c.id) }));

const messages = Object.fromEntries(
  ["refused", "name", "locked", "forbidden", "off", "cancelled", "unsupported"].map((code) => [code, t(`js.passkeys.${code}`)]),
);

const status = document.getElementById("passkey-status");
const say = (text, isError) => {
  status.textContent = text;
  status.classList.toggle("error", Boolean(isError));
};

async function post(url, body) {
  const resp = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: body === undefined ? "{}" : JSON.stringify(body),
  });
  let data = {};
  try {
    data = await resp.json();
  } catch {
    data = { error: "internal" };
  }
  if (!resp.ok) throw new Error(data.error || "internal");
  return data;
}

const failure = (err) => {
  if (err && (err.name === "NotAllowedError" || err.name === "AbortError")) return messages.cancelled;
  return messages[err && err.message] || t("js.passkeys.failed");
};

async function register(name) {
  const { publicKey } = await post("/account/passkeys/options");
  publicKey.challenge = fromB64url(publicKey.challenge);
  publicKey.user.id = fromB64url(publicKey.user.id);
  publicKey.excludeCredentials = descriptors(publicKey.excludeCredentials);
  const cred = await navigator.credentials.create({ publicKey });
  const r = cred.response;
  const credential = {
    id: cred.id,
    rawId: toB64url(cred.rawId),
    type: cred.type,
    authenticatorAttachment: cred.authenticatorAttachment || undefined,
    clientExtensionResults: cred.getClientExtensionResults(),
    response: {
      clientDataJSON: toB64url(r.clientDataJSON),
      attestationObject: toB64url(r.attestationObject),
      transports: r.getTransports ? r.getTransports() : [],
    },
  };
  return post("/account/passkeys", { name, credential });
}

async function signIn(path) {
  const { publicKey } = await post(path + "/options");
  publicKey.challenge = fromB64url(publicKey.challenge);
  publicKey.allowCredentials = descriptors(publicKey.allowCredentials);
  const cred = await navigator.credentials.get({ publicKey });
  const r = cred.response;
  return post(path, {
    id: cred.id,
    rawId: toB64url(cred.rawId),
    type: cred.type,
    authenticatorAttachment: cred.authenticatorAttachment || undefined,
    clientExtensionResults: cred.getClientExtensionResults(),
    response: {
      clientDataJSON: toB64url(r.clientDataJSON),
      authenticatorData: toB64url(r.authenticatorData),
      signature: toB64url(r.signature),
      userHandle: toB64url(r.userHandle),
    },
  });
}

const supported = () => Boolean(window.PublicKeyCredential && navigator.credentials);

const form = document.getElementById("passkey-register");
if (form) {
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!supported()) return say(messages.unsupported, true);
    const button = form.querySelector("button");
    button.disabled = true;
    say(t("js.passkeys.create.prompt"));
    try {
      const { next } = await register(form.elements.name.value);
      location.assign(next);
    } catch (err) {
      say(failure(err), true);
      button.disabled = false;
    }
  });
}

// The code page's button is the second factor after the password; the
// sign-in page's signs in with a discoverable passkey alone.
for (const [buttonId, path] of [["passkey-signin", "/signin/passkey"], ["passkey-passwordless", "/signin/passkey/discover"]]) {
  const button = document.getElementById(buttonId);
  if (!button) continue;
  button.addEventListener("click", async () => {
    if (!supported()) return say(messages.unsupported, true);
    button.disabled = true;
    say(t("js.passkeys.use.prompt"));
    try {
      const { next } = await signIn(path);
      location.assign(next);
    } catch (err) {
      say(failure(err), true);
      if (err.message === "locked" && buttonId === "passkey-signin") location.assign("/signin");
      button.disabled = false;
    }
  });
}
