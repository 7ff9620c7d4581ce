// The access token the pages send while the server's auth is on (`<body data-auth="on">`).
//
// It is asked for once, in the header's token field, and kept in sessionStorage (this tab
// only, gone with it). fetch sends it as `Authorization: Bearer`; EventSource and WebSocket
// cannot set a header, so their URLs carry it as `?access_token=`. A token the server refuses
// (401) or that expires mid-stream (SSE `event: error` of type `token_expired`, the same type
// in an NDJSON error record, WebSocket close 4001) is forgotten and the field shown again; the
// readers wait for the new token, then carry on from the last id they had. With auth off no
// field is shown and nothing is added to any request.
//
// The server checks a token's `exp` with some leeway but ends a stream at `exp` itself, so a
// token past its `exp` is never sent again: it would be accepted, and the stream ended at once.

const STORE = "stream.token";
export const QUERY = "access_token";
export const EXPIRED = "token_expired";
export const EXPIRED_CLOSE_CODE = 4001; // what /ws/* close with when the token expires

export const ASK = "This server needs an access token: paste yours to use this page.";
export const ASK_AGAIN = "Your token expired or was refused: paste a new one to carry on.";
const ALREADY_EXPIRED = "That token has already expired: paste a fresh one.";
const NOT_A_TOKEN = "That is not a token this server could accept (a JWT with an exp).";

// ---- Pure parts (tested with node --test) ----

/** `url` with `name=value` added to its query; `url` itself when `value` is empty. */
export function withQuery(url, name, value) {
  if (value === null || value === undefined || value === "") return url;
  const hashAt = url.indexOf("#");
  const [path, hash] = hashAt < 0 ? [url, ""] : [url.slice(0, hashAt), url.slice(hashAt)];
  const separator = path.includes("?") ? "&" : "?";
  return `${path}${separator}${encodeURIComponent(name)}=${encodeURIComponent(value)}${hash}`;
}

/** `url` with `?access_token=<token>` (for EventSource and WebSocket); as it is without one. */
export function withAccessToken(url, token) {
  return withQuery(url, QUERY, token);
}

/** fetch's `init` with `Authorization: Bearer <token>` added, unless it has one already. */
export function withBearer(init = {}, token = null) {
  const headers = new Headers(init.headers);
  if (!token || headers.has("Authorization")) return init;
  headers.set("Authorization", `Bearer ${token}`);
  return { ...init, headers };
}

/** When a JWT expires (its `exp`, in ms since the epoch); NaN for what is not a JWT with one. */
export function expiresAt(token) {
  const payload = String(token ?? "").split(".")[1];
  if (!payload) return NaN;
  try {
    const base64 = payload.replaceAll("-", "+").replaceAll("_", "/");
    const { exp } = JSON.parse(atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, "=")));
    return typeof exp === "number" ? exp * 1000 : NaN;
  } catch {
    return NaN;
  }
}

/** Whether `token` is worth sending at `now`: a JWT whose `exp` is still ahead. */
export function usable(token, now = Date.now()) {
  return expiresAt(token) > now;
}

/** Whether an SSE event (`{type, data}`) is the server ending the stream for its token. */
export function isExpiryEvent({ type, data }) {
  if (type !== "error") return false;
  try {
    return JSON.parse(data)?.type === EXPIRED;
  } catch {
    return false;
  }
}

/** Whether an NDJSON record is the server ending the stream for its token. */
export function isExpiryRecord(record) {
  return record?.type === "error" && record.error?.type === EXPIRED;
}

// ---- The page's token ----

let waiting = null; // {promise, resolve}: one wait for a new token, shared by every reader
const sentWith = new WeakMap(); // Response -> the token authFetch sent it with

/** Whether the server asks for tokens (the page's `data-auth`). */
export function authOn() {
  return globalThis.document?.body?.dataset.auth === "on";
}

/** The kept token, if it is still usable; null with auth off. */
export function currentToken() {
  if (!authOn()) return null;
  const kept = sessionStorage.getItem(STORE);
  return kept && usable(kept) ? kept : null;
}

/** The token to send: null with auth off, else the kept one or, when there is none, the one
 * the user pastes next. Rejects with the signal's reason when `signal` aborts first. */
export function token({ signal } = {}) {
  if (!authOn()) return Promise.resolve(null);
  const kept = currentToken();
  return kept ? Promise.resolve(kept) : nextToken(ASK, signal);
}

/** A new token after `refused` (the one a request went with) was refused or expired: it is
 * forgotten and the field shown again, unless another reader already got a new one. */
export function renewToken(refused, { signal } = {}) {
  const kept = currentToken();
  if (kept && kept !== refused) return Promise.resolve(kept);
  sessionStorage.removeItem(STORE);
  return nextToken(ASK_AGAIN, signal);
}

/** The token `authFetch` sent `response`'s request with (null: none). */
export function sentToken(response) {
  return sentWith.get(response) ?? null;
}

/**
 * fetch, with the token while auth is on (waiting for one if none is kept). A 401 answer asks
 * for a new token and sends the request again with it, so `init.body` must be resendable (a
 * string). A request with an Authorization of its own is sent as it is, its 401 returned.
 */
export async function authFetch(url, init = {}) {
  if (!authOn() || new Headers(init.headers).has("Authorization")) return fetch(url, init);
  let sent = await token(init);
  for (;;) {
    const response = await fetch(url, withBearer(init, sent));
    if (response.status !== 401) {
      sentWith.set(response, sent);
      return response;
    }
    await response.body?.cancel();
    sent = await renewToken(sent, init);
  }
}

/** Wires the header's token field; shows it when auth is on and no usable token is kept. */
export function setUpTokenField() {
  const form = tokenForm();
  if (!form) return;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = form.elements.token.value.trim();
    const problem = !value ? ASK : !usable(value) ? refusalOf(value) : null;
    if (problem) return showField(problem);
    sessionStorage.setItem(STORE, value);
    form.reset();
    form.hidden = true;
    const resolved = waiting;
    waiting = null;
    resolved?.resolve(value);
  });
  if (authOn() && !currentToken()) showField(ASK);
}

function refusalOf(value) {
  return Number.isNaN(expiresAt(value)) ? NOT_A_TOKEN : ALREADY_EXPIRED;
}

function tokenForm() {
  return document.getElementById("token-form");
}

function showField(message) {
  const form = tokenForm();
  form.hidden = false;
  form.querySelector(".token-message").textContent = message;
  form.elements.token.focus();
}

function nextToken(message, signal) {
  showField(message);
  if (!waiting) {
    let resolve;
    const promise = new Promise((done) => { resolve = done; });
    waiting = { promise, resolve };
  }
  return abortable(waiting.promise, signal);
}

function abortable(promise, signal) {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const abort = () => reject(signal.reason);
    signal.addEventListener("abort", abort, { once: true });
    promise.then((value) => {
      signal.removeEventListener("abort", abort);
      resolve(value);
    });
  });
}
