// fetchEventSource against a real HTTP server on loopback (Node's http module, Node's fetch):
// it resumes after a cut with Last-Event-ID, and stops where EventSource would, or sooner.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, test } from "node:test";

import {
  fetchEventSource, reconnectDelay, ResponseError, RetriesExhausted,
} from "../../static/js/fetch-event-source.js";

const servers = [];
after(() => Promise.all(servers.map((server) => new Promise((done) => {
  server.close(done);
  server.closeAllConnections(); // keep-alive and never-ending streams
}))));

// A server whose nth request (0-based) is answered by handlers[n]; it records every request.
async function serve(...handlers) {
  const requests = [];
  const server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => { body += chunk; });
    request.on("end", () => {
      requests.push({ method: request.method, headers: request.headers, body });
      const handler = handlers[Math.min(requests.length - 1, handlers.length - 1)];
      handler(response);
    });
  });
  servers.push(server);
  await new Promise((ready) => server.listen(0, "127.0.0.1", ready));
  return { url: `http://127.0.0.1:${server.address().port}/events`, requests };
}

function stream(response, text, { end = true, cut = false } = {}) {
  response.writeHead(200, { "Content-Type": "text/event-stream; charset=utf-8" });
  response.write(text);
  if (cut) setTimeout(() => response.socket.destroy(), 20); // no final chunk: a dropped stream
  else if (end) response.end();
}

function collect(options = {}) {
  const events = [];
  const errors = [];
  return {
    events, errors,
    options: {
      onmessage: (event) => events.push(event),
      onerror: (error, info) => { errors.push({ error, ...info }); },
      jitter: 0,
      ...options,
    },
  };
}

test("a dropped stream resumes with Last-Event-ID after the server's retry: no gap, no duplicate", async () => {
  const server = await serve(
    (r) => stream(r, "retry: 30\n\nid: 1\ndata: a\n\nid: 2\ndata: b\n\nid: 3\ndata: half", { cut: true }),
    (r) => stream(r, "id: 3\ndata: c\n\nid: 4\ndata: d\n\n"),
  );
  const { events, errors, options } = collect({ method: "POST", body: '{"q":1}',
    headers: { "Content-Type": "application/json" } });
  const began = Date.now();
  await fetchEventSource(server.url, options);
  assert.deepEqual(events.map((e) => [e.lastEventId, e.data]), [["1", "a"], ["2", "b"], ["3", "c"], ["4", "d"]]);
  assert.equal(errors.length, 1);
  assert.equal(errors[0].delayMs, 30);
  assert.ok(Date.now() - began >= 30);
  assert.equal(server.requests[0].headers["last-event-id"], undefined);
  assert.equal(server.requests[1].headers["last-event-id"], "2");
  for (const request of server.requests) {
    assert.equal(request.method, "POST");
    assert.equal(request.body, '{"q":1}');
    assert.equal(request.headers.accept, "text/event-stream");
    assert.equal(request.headers["content-type"], "application/json");
  }
});

test("a normal end is final: no reconnection", async () => {
  const server = await serve((r) => stream(r, "retry: 5\n\ndata: only\n\n"));
  const { events, errors, options } = collect();
  await fetchEventSource(server.url, options);
  await new Promise((wait) => setTimeout(wait, 50));
  assert.equal(events.length, 1);
  assert.equal(errors.length, 0);
  assert.equal(server.requests.length, 1);
});

test("onclose returning true reconnects after a normal end (a server restart, say)", async () => {
  const server = await serve(
    (r) => stream(r, "retry: 5\nid: 7\nevent: restart\ndata: {}\n\n"),
    (r) => stream(r, "id: 8\ndata: after\n\n"),
  );
  let restart = false;
  const { events, options } = collect({
    onmessage: (e) => { events.push(e); restart = e.type === "restart"; },
    onclose: () => restart,
  });
  await fetchEventSource(server.url, options);
  assert.deepEqual(events.map((e) => e.type), ["restart", "message"]);
  assert.equal(server.requests[1].headers["last-event-id"], "7");
});

test("a 4xx answer is never retried; its JSON error message is the error's", async () => {
  const server = await serve((r) => {
    r.writeHead(400, { "Content-Type": "application/json" });
    r.end('{"error":{"type":"invalid_request","message":"tokens must be between 1 and 10000"}}');
  });
  const { errors, options } = collect();
  await assert.rejects(fetchEventSource(server.url, options),
    (error) => error instanceof ResponseError && error.status === 400 && /tokens must/.test(error.message));
  assert.equal(errors.length, 0);
  assert.equal(server.requests.length, 1);
});

test("a 5xx answer is retried, waiting at least its Retry-After", async () => {
  const server = await serve(
    (r) => { r.writeHead(503, { "Retry-After": "0.05" }); r.end(); },
    (r) => stream(r, "data: ok\n\n"),
  );
  const { events, errors, options } = collect({ retryMs: 1 });
  await fetchEventSource(server.url, options);
  assert.equal(events[0].data, "ok");
  assert.equal(errors[0].error.status, 503);
  assert.equal(errors[0].delayMs, 50);
});

test("204 means do not reconnect; a body that is not an event stream is refused", async () => {
  const empty = await serve((r) => { r.writeHead(204); r.end(); });
  await fetchEventSource(empty.url, collect().options);
  assert.equal(empty.requests.length, 1);
  const html = await serve((r) => { r.writeHead(200, { "Content-Type": "text/html" }); r.end("<p>"); });
  await assert.rejects(fetchEventSource(html.url, collect().options), /expected text\/event-stream/);
  assert.equal(html.requests.length, 1);
});

test("failed attempts in a row are capped, with growing delays", async () => {
  const server = await serve((r) => { r.writeHead(500); r.end(); });
  const { errors, options } = collect({ retryMs: 2, maxRetries: 3 });
  await assert.rejects(fetchEventSource(server.url, options), RetriesExhausted);
  assert.deepEqual(errors.map((e) => [e.attempt, e.delayMs]), [[1, 2], [2, 4], [3, 8]]);
  assert.equal(server.requests.length, 4);
});

test("an attempt that delivered events resets the count of failures", async () => {
  const cutAfterOne = (r) => stream(r, "retry: 1\n\nid: x\ndata: e\n\n", { cut: true });
  const server = await serve(cutAfterOne, cutAfterOne, cutAfterOne, (r) => stream(r, "data: end\n\n"));
  const { events, errors, options } = collect({ maxRetries: 1 });
  await fetchEventSource(server.url, options);
  assert.equal(events.length, 4);
  assert.deepEqual(errors.map((e) => e.attempt), [1, 1, 1]);
});

test("an abort ends it quietly, mid-stream or while waiting to reconnect", async () => {
  const server = await serve((r) => stream(r, "retry: 60000\n\ndata: first\n\n", { end: false }));
  const controller = new AbortController();
  const { events, options } = collect({ signal: controller.signal,
    onmessage: (e) => { events.push(e); controller.abort(); } });
  await fetchEventSource(server.url, options);
  assert.equal(events.length, 1);

  const cut = await serve((r) => stream(r, "retry: 60000\n\ndata: x\n\n", { cut: true }));
  const waiting = new AbortController();
  const began = Date.now();
  const run = fetchEventSource(cut.url, { signal: waiting.signal, jitter: 0,
    onerror: () => { setTimeout(() => waiting.abort(), 10); } });
  await run;
  assert.ok(Date.now() - began < 5000, "the abort did not cut the 60 s wait short");
  assert.equal(cut.requests.length, 1);
});

test("a callback that throws ends the stream with its error, without retrying", async () => {
  const server = await serve((r) => stream(r, "data: a\n\ndata: b\n\n", { end: false }));
  const { errors, options } = collect({ onmessage: () => { throw new Error("handler bug"); } });
  await assert.rejects(fetchEventSource(server.url, options), /handler bug/);
  assert.equal(errors.length, 0);
  assert.equal(server.requests.length, 1);
});

test("lastEventId resumes the very first request; onerror returning false stops", async () => {
  const server = await serve((r) => stream(r, "data: x\n\n", { cut: true }));
  const run = fetchEventSource(server.url, { lastEventId: "41", onerror: () => false });
  await assert.rejects(run);
  assert.equal(server.requests[0].headers["last-event-id"], "41");
  assert.equal(server.requests.length, 1);
});

test("the delay is the server's retry, plus up to `jitter` of it, doubling per failure", () => {
  assert.equal(reconnectDelay(1000, 1, { jitter: 0.5, random: () => 0 }), 1000);
  assert.equal(reconnectDelay(1000, 1, { jitter: 0.5, random: () => 0.999 }), 1500);
  assert.equal(reconnectDelay(1000, 3, { jitter: 0, random: () => 0.5 }), 4000);
  assert.equal(reconnectDelay(undefined, 1, { jitter: 0 }), 3000);
  assert.equal(reconnectDelay(50_000, 4, { jitter: 0 }), 60_000);
  const spread = new Set(Array.from({ length: 50 }, () => reconnectDelay(1000, 1)));
  assert.ok(spread.size > 10, "jitter spreads clients out");
});
