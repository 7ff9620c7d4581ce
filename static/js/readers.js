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
//
// While the server's auth is on, every reader sends the page's token (token.js). When it
// expires mid-stream or is refused, the reader calls reconnect({reason: "token_expired"}),
// waits for the new token, and carries on from the last token it had (plain text, which has
// no ids, and speech end with an error instead).

import { fetchEventSource } from "./fetch-event-source.js";
import {
  EXPIRED, EXPIRED_CLOSE_CODE, authFetch, authOn, isExpiryEvent, isExpiryRecord, renewToken,
  sentToken, token, usable, withAccessToken, withQuery,
} from "./token.js";

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
// An expired token (or one refused: EventSource cannot see the 401, so a token past its `exp`
// is taken for the reason) is renewed, then a new EventSource asks for what follows the last id.
function readEventSource(url, handlers, refused) {
  const waiting = new AbortController(); // for a token
  let source = null;
  let lastId = "";
  // Closed before end() runs, or EventSource would reconnect and be sent the end again.
  const settle = settling(handlers, () => {
    waiting.abort();
    source?.close();
  });
  const renew = (sent) => {
    source.close();
    handlers.reconnect?.({ reason: EXPIRED });
    renewToken(sent, waiting).then(open, () => {});
  };
  const open = (sent) => {
    source = new EventSource(withAccessToken(withQuery(url, "last_event_id", lastId), sent));
    for (const type of ["message", "start", "end"]) {
      source.addEventListener(type, (e) => {
        if (e.lastEventId) lastId = e.lastEventId; // a resumed source starts without one
        chatEvent(handlers, settle, type, e.data, e.lastEventId);
      });
    }
    source.addEventListener("error", (e) => {
      if (e.data !== undefined && isExpiryEvent(e)) renew(sent);
      else if (e.data !== undefined) chatEvent(handlers, settle, "error", e.data); // in band
      else if (source.readyState !== EventSource.CLOSED) handlers.reconnect?.({}); // it comes back
      else if (authOn() && !usable(sent)) renew(sent);
      else refused(settle);
    });
  };
  token(waiting).then(open, () => {});
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
  const response = await authFetch(generation.status_url);
  if (response.status === 404) return settle.expired();
  if (!response.ok) throw new Error(await errorMessage(response));
  const state = await response.json();
  if (state.status === "running") return settle.error("the server refused the stream");
  if (state.status === "failed") return settle.error(state.error?.message ?? "it failed");
  settle.end({ finish_reason: state.finish_reason ?? state.status, tokens: state.tokens });
}

// fetch with a JSON body and answer; a non-2xx answer throws an Error with its `status`.
async function sendJson(url, options) {
  const response = await authFetch(url, {
    ...options, headers: { "Content-Type": "application/json", Accept: "application/json" },
  });
  if (!response.ok) {
    throw Object.assign(new Error(await errorMessage(response)), { status: response.status });
  }
  return response.json();
}

// POST /api/chat with `accept`; `read(body, settle)` consumes the body, and returns
// `{lastEventId}` when the token expired: the POST goes again with a new token from there.
function fetchChat(url, request, accept, handlers, read) {
  const controller = new AbortController();
  const settle = settling(handlers, () => controller.abort());
  (async () => {
    let lastEventId = null;
    for (;;) {
      const headers = { "Content-Type": "application/json", Accept: accept };
      if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
      const response = await authFetch(url, {
        method: "POST", body: JSON.stringify(request), signal: controller.signal, headers,
      });
      if (!response.ok) throw new Error(await errorMessage(response));
      const expired = await read(response.body, settle);
      if (settle.settled) return;
      if (!expired) return settle.error("the stream ended before its end");
      handlers.reconnect?.({ reason: EXPIRED });
      await renewToken(sentToken(response), controller);
      ({ lastEventId } = expired);
    }
  })().catch((error) => settle.error(error.message ?? String(error)));
  return { stop() { settle.end(CANCELLED); } };
}

/** The Last-Event-ID that resumes after token `index` (-1: none yet) of a stream whose start
 * named `generation` (the upstream backend's) or none; null for a stream to start afresh. */
export function resumeId(generation, index) {
  if (generation) return index < 0 ? generation : `${generation}:${index}`;
  return index < 0 ? null : String(index);
}

/** POST /api/chat as SSE, read with fetchEventSource: a dropped stream resumes where it was. */
export function readChatSSE(url, request, handlers) {
  const controller = new AbortController();
  const settle = settling(handlers, () => controller.abort());
  let restarting = false;
  let expired = false;
  let sent = null;
  fetchEventSource(url, {
    method: "POST", body: JSON.stringify(request), signal: controller.signal,
    headers: { "Content-Type": "application/json" }, fetch: authFetch,
    onopen(response) { sent = sentToken(response); },
    onmessage(event) {
      expired = isExpiryEvent(event);
      restarting = event.type === "restart";
      if (!expired) chatEvent(handlers, settle, event.type, event.data, event.lastEventId);
    },
    onclose() {
      if (!expired) return restarting && !settle.settled; // told to come back: resume
      handlers.reconnect?.({ reason: EXPIRED });
      return renewToken(sent, controller).then(() => !settle.settled);
    },
    onerror: (error, info) => { handlers.reconnect?.(info); },
  }).then(
    () => settle.error("the stream ended before its end"),
    (error) => settle.error(error.message),
  );
  return { stop() { settle.end(CANCELLED); } };
}

/** POST /api/chat as NDJSON: one JSON object a line. */
export function readChatNdjson(url, request, handlers) {
  let generation = null;
  let index = -1;
  return fetchChat(url, request, "application/x-ndjson", handlers, async (body, settle) => {
    for await (const message of ndjsonObjects(body)) {
      if (isExpiryRecord(message)) return { lastEventId: resumeId(generation, index) };
      if (message.type === "token") {
        index = message.index;
        handlers.token?.(message);
      } else if (message.type === "start") {
        generation ??= message.generation;
        handlers.start?.(message);
      } else if (message.type === "end") return settle.end(message);
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
  return openJsonSocket(url, { type: "prompt", ...request }, handlers, chatResumption);
}

/** /ws/tts: 16 kHz mono 16-bit PCM in binary frames, handed to `handlers.audio(ArrayBuffer)`. */
export function openSpeechSocket(url, request, handlers) {
  return openJsonSocket(url, { type: "speak", ...request }, handlers, () => null);
}

/** The message that resumes a /ws/chat run on a new connection, after token `index` (-1:
 * none yet): the upstream backend's generation by id, else the prompt from there. */
export function chatResumption(start, { generation, index }) {
  if (generation) return { type: "resume", generation, after: index };
  return index < 0 ? start : { ...start, last_event_id: index };
}

const TOKEN_ENDED = "the token expired or was refused: paste a new one, then start again";

// A WebSocket run: `start` goes out on open; JSON text messages go to the handler of their
// `type` (`end` and `error` settle the run), binary frames to handlers.audio. A connection
// closed for its token (4001, or a handshake refused with a token past its `exp`) opens again
// with a new one and sends `resumption(start, {generation, index})`; null ends the run.
function openJsonSocket(path, start, handlers, resumption) {
  const waiting = new AbortController(); // for a token
  const progress = { generation: null, index: -1 };
  let socket = null;
  const settle = settling(handlers, () => {
    waiting.abort();
    socket?.close(1000);
  });
  const open = (sent, first) => {
    let opened = false;
    socket = new WebSocket(socketUrl(withAccessToken(path, sent)));
    socket.binaryType = "arraybuffer";
    socket.onopen = () => {
      opened = true;
      socket.send(JSON.stringify(first));
    };
    socket.onmessage = ({ data }) => {
      if (typeof data !== "string") return handlers.audio?.(data);
      const message = JSON.parse(data);
      if (message.type === "token") progress.index = message.index;
      if (message.type === "start") progress.generation ??= message.generation;
      if (message.type === "end") settle.end(message);
      else if (message.type === "error") settle.error(message.message);
      else handlers[message.type]?.(message);
    };
    socket.onclose = ({ code, reason }) => {
      if (settle.settled) return;
      const refused = code === EXPIRED_CLOSE_CODE || (!opened && authOn() && !usable(sent));
      if (!refused) {
        return settle.error(`the connection closed (${code}${reason ? `: ${reason}` : ""})`);
      }
      const again = resumption(start, progress);
      if (!again) {
        renewToken(sent); // forgets it and asks: the next run goes with the new one
        return settle.error(TOKEN_ENDED);
      }
      handlers.reconnect?.({ reason: EXPIRED });
      renewToken(sent, waiting).then((fresh) => open(fresh, again), () => {});
    };
  };
  token(waiting).then((sent) => open(sent, start), () => {});
  return {
    stop() {
      // Open: the server answers the cancel with its own `end`. Not yet: closing cancels.
      if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "cancel" }));
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
