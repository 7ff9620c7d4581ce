// Readers for the demo model's token stream, one per transport, all of one shape:
//
//   const run = readChatX(url, request, handlers);   // request: {prompt, tokens, delay_ms}
//   run.stop();                                      // stops the generation on the server too
//
// handlers: start(info), token({index, text}), end({finish_reason, tokens}), error(message) and,
// for the transports that resume, reconnect({attempt, delayMs}). Exactly one of end() and
// error() is called, once; stop() ends with end({finish_reason: "cancelled"}).
//
// A generation runs on the server whether or not anyone reads it, so it has a reader of its own:
//
//   const run = readGeneration(createUrl, request, handlers);        // POST, then read it
//   const run = readGeneration(createUrl, request, handlers, { resume: generation });
//
// where `generation` is the `{id, events_url, status_url}` that handlers.created(generation)
// got when it was created (store it to read it again after a reload). Its events are read from
// the first token either way; stop() cancels it on the server, whose `end` (cancelled) settles
// the run. A generation that is gone (past its TTL) calls handlers.expired() instead of end()
// or error().

import { fetchEventSource } from "./fetch-event-source.js";

// Calls end() or error() once, whatever arrives after; `closing()` runs first (close a socket).
function settling(handlers, closing = () => {}) {
  let settled = false;
  const once = (name) => (value) => {
    if (settled) return;
    settled = true;
    closing();
    handlers[name]?.(value);
  };
  return {
    end: once("end"), error: once("error"), expired: once("expired"),
    get settled() { return settled; },
  };
}

const CANCELLED = { finish_reason: "cancelled" };

/** The token index an SSE id carries (`7`, or `<generation>:7` when a generation serves it);
 * NaN for an id that carries none. */
export function tokenIndex(lastEventId) {
  const digits = lastEventId.slice(lastEventId.lastIndexOf(":") + 1);
  return /^\d+$/.test(digits) ? Number(digits) : NaN;
}

// The service's SSE events: `start`, default-type tokens whose id is their index, `end`,
// `error` (in band, after the start).
function chatEvent(handlers, settle, type, data, lastEventId) {
  if (type === "message") handlers.token?.({ index: tokenIndex(lastEventId), text: data });
  else if (type === "start") handlers.start?.(JSON.parse(data));
  else if (type === "end") settle.end(JSON.parse(data));
  else if (type === "error") settle.error(JSON.parse(data).message);
  // anything else (a server's `restart` notice, say) carries no token
}

/** GET /sse/chat with the browser's EventSource, which reconnects with Last-Event-ID itself. */
export function readChatEventSource(url, request, handlers) {
  const query = new URLSearchParams(Object.entries(request).map(([k, v]) => [k, String(v)]));
  const settle = readEventSource(`${url}?${query}`, handlers,
    (fail) => fail.error("the server refused the stream"));
  return { stop() { settle.end(CANCELLED); } };
}

// Reads the service's events from `url` with EventSource; `refused(settle)` settles a stream
// the server answered with anything but 200 (EventSource then gives up: readyState CLOSED).
function readEventSource(url, handlers, refused) {
  const source = new EventSource(url);
  // Closed before end() runs, or EventSource would reconnect and be sent the end again.
  const settle = settling(handlers, () => source.close());
  for (const type of ["message", "start", "end"]) {
    source.addEventListener(type, (e) => chatEvent(handlers, settle, type, e.data, e.lastEventId));
  }
  source.addEventListener("error", (e) => {
    if (e.data !== undefined) chatEvent(handlers, settle, "error", e.data); // the server's event
    else if (source.readyState === EventSource.CLOSED) refused(settle);
    else handlers.reconnect?.({}); // a dropped connection: EventSource comes back by itself
  });
  return settle;
}

/** POST /api/generations (or `resume` a stored one), then read its events with EventSource. */
export function readGeneration(createUrl, request, handlers, { resume } = {}) {
  let generation = resume;
  let settle = null;
  let stopping = false;
  const failed = (error) => {
    if (!settle) settle = settling(handlers); // failed before the events were read
    settle.error(error.message ?? String(error));
  };
  const cancel = () => sendJson(generation.status_url, { method: "DELETE" }).catch((error) => {
    // 409: it ended by itself, and its own `end` is on the way.
    if (error.status !== 409) failed(error);
  });
  const read = () => {
    settle = readEventSource(generation.events_url, handlers,
      (closed) => settleRefused(generation, closed).catch(failed));
    if (stopping) cancel();
  };
  if (generation) read();
  else {
    sendJson(createUrl, { method: "POST", body: JSON.stringify(request) }).then((created) => {
      generation = created;
      handlers.created?.(generation);
      read();
    }).catch(failed);
  }
  return {
    stop() {
      if (settle?.settled) return;
      stopping = true; // before the POST answered: cancel as soon as it has
      if (generation) cancel();
    },
  };
}

// The events URL was refused: 404 when the generation is gone, 204 when it had ended. Its
// status tells which (the text it had is not read again: a 204 comes after the whole stream).
async function settleRefused(generation, settle) {
  const response = await fetch(generation.status_url);
  if (response.status === 404) return settle.expired();
  if (!response.ok) throw new Error(await errorMessage(response));
  const state = await response.json();
  if (state.status === "running") return settle.error("the server refused the stream");
  if (state.status === "failed") return settle.error(state.error?.message ?? "it failed");
  settle.end({ finish_reason: state.finish_reason ?? state.status, tokens: state.tokens });
}

// fetch with a JSON body and answer; a non-2xx answer throws an Error with its `status`.
async function sendJson(url, options) {
  const response = await fetch(url, {
    ...options, headers: { "Content-Type": "application/json", Accept: "application/json" },
  });
  if (!response.ok) {
    throw Object.assign(new Error(await errorMessage(response)), { status: response.status });
  }
  return response.json();
}

// POST /api/chat with `accept`; `read(body, settle)` consumes the body.
function fetchChat(url, request, accept, handlers, read) {
  const controller = new AbortController();
  const settle = settling(handlers, () => controller.abort());
  (async () => {
    const response = await fetch(url, {
      method: "POST", body: JSON.stringify(request), signal: controller.signal,
      headers: { "Content-Type": "application/json", Accept: accept },
    });
    if (!response.ok) throw new Error(await errorMessage(response));
    await read(response.body, settle);
    if (!settle.settled) settle.error("the stream ended before its end");
  })().catch((error) => settle.error(error.message ?? String(error)));
  return { stop() { settle.end(CANCELLED); } };
}

/** POST /api/chat as SSE, read with fetchEventSource: a dropped stream resumes where it was. */
export function readChatSSE(url, request, handlers) {
  const controller = new AbortController();
  const settle = settling(handlers, () => controller.abort());
  let restarting = false;
  fetchEventSource(url, {
    method: "POST", body: JSON.stringify(request), signal: controller.signal,
    headers: { "Content-Type": "application/json" },
    onmessage({ type, data, lastEventId }) {
      restarting = type === "restart";
      chatEvent(handlers, settle, type, data, lastEventId);
    },
    onclose: () => restarting && !settle.settled, // told to come back: resume
    onerror: (error, info) => { handlers.reconnect?.(info); },
  }).then(
    () => settle.error("the stream ended before its end"),
    (error) => settle.error(error.message),
  );
  return { stop() { settle.end(CANCELLED); } };
}

/** POST /api/chat as NDJSON: one JSON object a line. */
export function readChatNdjson(url, request, handlers) {
  return fetchChat(url, request, "application/x-ndjson", handlers, async (body, settle) => {
    for await (const message of ndjsonObjects(body)) {
      if (message.type === "token") handlers.token?.(message);
      else if (message.type === "start") handlers.start?.(message);
      else if (message.type === "end") return settle.end(message);
      else if (message.type === "error") return settle.error(message.error.message);
    }
  });
}

/** POST /api/chat as plain text: chunks of raw token text, no indexes, no in-band end. */
export function readChatText(url, request, handlers) {
  return fetchChat(url, request, "text/plain", handlers, async (body, settle) => {
    let index = 0;
    for await (const text of textChunks(body)) handlers.token?.({ index: index++, text });
    settle.end({ finish_reason: "stop" });
  });
}

/** /ws/chat: stop() asks the server to cancel, and the server's `end` closes the run. */
export function openChatSocket(url, request, handlers) {
  return openJsonSocket(url, { type: "prompt", ...request }, handlers);
}

/** /ws/tts: 16 kHz mono 16-bit PCM in binary frames, handed to `handlers.audio(ArrayBuffer)`. */
export function openSpeechSocket(url, request, handlers) {
  return openJsonSocket(url, { type: "speak", ...request }, handlers);
}

// A WebSocket run: `start` goes out on open; JSON text messages go to the handler of their
// `type` (`end` and `error` settle the run), binary frames to handlers.audio.
function openJsonSocket(path, start, handlers) {
  const socket = new WebSocket(socketUrl(path));
  socket.binaryType = "arraybuffer";
  const settle = settling(handlers, () => socket.close(1000));
  socket.onopen = () => socket.send(JSON.stringify(start));
  socket.onmessage = ({ data }) => {
    if (typeof data !== "string") return handlers.audio?.(data);
    const message = JSON.parse(data);
    if (message.type === "end") settle.end(message);
    else if (message.type === "error") settle.error(message.message);
    else handlers[message.type]?.(message);
  };
  socket.onclose = ({ code, reason }) => {
    settle.error(`the connection closed (${code}${reason ? `: ${reason}` : ""})`);
  };
  return {
    stop() {
      // Open: the server answers the cancel with its own `end`. Not yet: closing cancels.
      if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "cancel" }));
      else settle.end(CANCELLED);
    },
  };
}

/** The ws: or wss: URL of `url` (a path, or a URL of any scheme) on this page's own server. */
export function socketUrl(url) {
  const target = new URL(url, location.href);
  // The page's origin, not the one a server behind a TLS proxy may have put in the URL.
  target.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  target.host = location.host;
  return target.href;
}

/** The JSON objects of an NDJSON body, one a line; blank lines (heartbeats) are skipped. */
export async function* ndjsonObjects(body) {
  let buffer = "";
  for await (const text of textChunks(body)) {
    const lines = (buffer + text).split("\n");
    buffer = lines.pop();
    for (const line of lines) if (line.trim()) yield JSON.parse(line);
  }
}

/** The text of a body as it arrives, decoded as UTF-8 across chunk boundaries. */
export async function* textChunks(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

/** The message of the service's JSON error, or the status line. */
export async function errorMessage(response) {
  const body = await response.json().catch(() => undefined);
  return body?.error?.message ?? `HTTP ${response.status} ${response.statusText}`.trim();
}
