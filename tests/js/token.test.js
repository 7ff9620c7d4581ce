// The pure parts of the pages' token handling: URLs, headers, what an expired token looks like.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  expiresAt, isExpiryEvent, isExpiryRecord, usable, withAccessToken, withBearer, withQuery,
} from "../../static/js/token.js";

// A JWT's shape: base64url header, payload and signature (the signature is never checked here).
function jwt(claims) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "HS256", typ: "JWT" })}.${part(claims)}.c2lnbmF0dXJl`;
}

test("the token goes in the query of a URL without one", () => {
  assert.equal(withAccessToken("/sse/channels/demo", "a.b.c"),
    "/sse/channels/demo?access_token=a.b.c");
});

test("the token is added after an existing query, before the fragment", () => {
  assert.equal(withAccessToken("/sse/chat?prompt=hi&tokens=5#x", "t"),
    "/sse/chat?prompt=hi&tokens=5&access_token=t#x");
  assert.equal(withAccessToken("ws://host/ws/chat", "t"), "ws://host/ws/chat?access_token=t");
});

test("query values are percent-encoded", () => {
  assert.equal(withQuery("/sse/generations/g", "last_event_id", "g:7 &="),
    "/sse/generations/g?last_event_id=g%3A7%20%26%3D");
});

test("without a token (auth off) the URL is left as it is", () => {
  for (const none of [null, undefined, ""]) {
    assert.equal(withAccessToken("/sse/chat?prompt=hi", none), "/sse/chat?prompt=hi");
  }
});

test("fetch gets an Authorization header with the token", () => {
  const init = withBearer({ method: "POST", headers: { "Content-Type": "application/json" } }, "t");
  assert.equal(init.method, "POST");
  assert.equal(init.headers.get("Authorization"), "Bearer t");
  assert.equal(init.headers.get("Content-Type"), "application/json");
});

test("a request's own Authorization is kept, and no token adds none", () => {
  const own = { headers: { Authorization: "Bearer publish-token" } };
  assert.equal(withBearer(own, "t"), own);
  const plain = { method: "GET" };
  assert.equal(withBearer(plain, null), plain);
  assert.equal(new Headers(withBearer(plain, null).headers).has("Authorization"), false);
});

test("a JWT's exp is read, in milliseconds", () => {
  assert.equal(expiresAt(jwt({ sub: "ann", exp: 1_900_000_000 })), 1_900_000_000_000);
});

test("a JWT whose payload needs base64url's own characters is read", () => {
  const token = jwt({ sub: "??>>??>>", exp: 1_900_000_000 }); // encodes to '-' and '_'
  assert.match(token.split(".")[1], /[-_]/);
  assert.equal(expiresAt(token), 1_900_000_000_000);
});

test("what is not a JWT with an exp has no expiry", () => {
  const values = ["", "not a token", "a.b.c", jwt({ sub: "ann" }), jwt({ exp: "soon" }), null];
  for (const value of values) {
    assert.ok(Number.isNaN(expiresAt(value)), String(value));
  }
});

test("a token is usable until its exp, and never without one", () => {
  const token = jwt({ exp: 2_000 });
  assert.equal(usable(token, 1_999_999), true);
  assert.equal(usable(token, 2_000_000), false);
  assert.equal(usable("garbage", 0), false);
});

test("the server's SSE error of type token_expired is an expiry", () => {
  const data = JSON.stringify({ type: "token_expired", message: "the token expired" });
  assert.equal(isExpiryEvent({ type: "error", data }), true);
});

test("other SSE errors, and other events carrying that text, are not", () => {
  const other = JSON.stringify({ type: "stream_error", message: "token_expired" });
  assert.equal(isExpiryEvent({ type: "error", data: other }), false);
  const data = JSON.stringify({ type: "token_expired" });
  assert.equal(isExpiryEvent({ type: "message", data }), false);
  assert.equal(isExpiryEvent({ type: "error", data: "not json" }), false);
  assert.equal(isExpiryEvent({ type: "error", data: "null" }), false);
});

test("an NDJSON error record of type token_expired is an expiry, others are not", () => {
  assert.equal(isExpiryRecord({ type: "error", error: { type: "token_expired", message: "m" } }),
    true);
  assert.equal(isExpiryRecord({ type: "error", error: { type: "stream_error", message: "m" } }),
    false);
  assert.equal(isExpiryRecord({ type: "token", index: 0, text: "token_expired" }), false);
  assert.equal(isExpiryRecord(null), false);
});
