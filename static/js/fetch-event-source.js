// fetchEventSource: server-sent events over fetch, for what EventSource cannot do (POST with a
// JSON body, custom headers, abort with an AbortController), reconnecting like EventSource.
//
// After a dropped connection (a network error, a body cut before its end, a 5xx answer) it
// reconnects with Last-Event-ID after the server's `retry` delay, plus jitter so clients cut at
// the same moment do not return in the same millisecond, doubling the delay while attempts keep
// failing, and gives up after `maxRetries` failed attempts in a row (an attempt that delivered
// an event resets the count). It never reconnects after a normal end of the body (unless
// `onclose` asks to), an abort, a 204, a 4xx answer or a body that is not text/event-stream.

import { EventStreamParser } from "./sse-parser.js";

const DEFAULT_RETRY_MS = 3000; // what browsers use until a stream sends `retry`
const DEFAULT_MAX_RETRIES = 5;
const MAX_DELAY_MS = 60_000;

/** An answer that is not an event stream; `status` and the parsed JSON `body` if any. */
export class ResponseError extends Error {
  constructor(message, response, body) {
    super(message);
    this.name = "ResponseError";
    this.status = response.status;
    this.body = body;
    this.retryAfterMs = retryAfterMs(response.headers.get("Retry-After"));
  }
}

/** Thrown when `maxRetries` attempts in a row failed; `cause` is the last failure. */
export class RetriesExhausted extends Error {
  constructor(attempts, cause) {
    super(`gave up after ${attempts} failed attempts: ${cause?.message ?? cause}`);
    this.name = "RetriesExhausted";
    this.cause = cause;
  }
}

/**
 * Reads the server-sent events at `url` until the stream ends.
 *
 * options: `method`, `headers`, `body` (sent again on every reconnection, so a string, Blob,
 * FormData or URLSearchParams, never a ReadableStream), `signal` (abort ends it quietly),
 * `lastEventId` (resume from there on the first request too), and callbacks:
 * - `onopen(response)`: the stream is accepted (called again after every reconnection);
 * - `onmessage({type, data, lastEventId})`: each event, as EventSource's MessageEvent;
 * - `onerror(error, {attempt, delayMs})`: a connection failed and will be retried after
 *   `delayMs`; return false to stop instead (the promise then rejects with `error`);
 * - `onclose()`: the server ended the body normally; return true to reconnect anyway (e.g.
 *   after the server announced a restart).
 * Tuning: `retryMs` (used until the server sends `retry`), `maxRetries`, `jitter` (fraction of
 * the delay added at random, default 0.5), `fetch` (for tests).
 *
 * Resolves when the stream ends normally or is aborted; rejects with a ResponseError (4xx,
 * 204-less refusals, wrong type), a RetriesExhausted, or whatever a callback threw.
 */
export async function fetchEventSource(url, options = {}) {
  const { signal, maxRetries = DEFAULT_MAX_RETRIES } = options;
  const parser = new EventStreamParser();
  parser.lastEventId = options.lastEventId ?? "";
  let failures = 0;
  for (;;) {
    const attempt = { delivered: 0 };
    let reconnect;
    try {
      reconnect = await connectOnce(url, options, parser, attempt);
      if (!reconnect) return;
    } catch (error) {
      if (signal?.aborted) return;
      if (!isRetryable(error)) throw error;
      failures = attempt.delivered > 0 ? 1 : failures + 1;
      if (failures > maxRetries) throw new RetriesExhausted(failures, error);
      const delayMs = reconnectDelay(parser.retry ?? options.retryMs, failures, options, error);
      if (options.onerror?.(error, { attempt: failures, delayMs }) === false) throw error;
      await sleep(delayMs, signal);
      continue;
    }
    failures = 0; // onclose asked to come back: a fresh start after the server's delay
    await sleep(reconnectDelay(parser.retry ?? options.retryMs, 1, options), signal);
  }
}

// One request: true when the body ended normally and onclose asked to reconnect.
async function connectOnce(url, options, parser, attempt) {
  const { signal, onopen, onmessage, onclose } = options;
  if (signal?.aborted) return false;
  const response = await (options.fetch ?? fetch)(url, {
    method: options.method ?? "GET",
    headers: requestHeaders(options.headers, parser.lastEventId),
    body: options.body,
    signal,
    cache: "no-store",
  });
  if (response.status === 204) return false; // the server's way to say "do not reconnect"
  await checkEventStream(response);
  await callback(() => onopen?.(response));
  const reader = response.body.getReader();
  let ended = false;
  try {
    while (!ended) {
      const { value, done } = await reader.read();
      ended = done;
      for (const event of done ? [] : parser.feed(value)) {
        attempt.delivered += 1;
        await callback(() => onmessage?.(event));
      }
    }
  } finally {
    parser.end(); // an unfinished event of a cut stream is dropped; lastEventId stays
    // A callback that threw leaves the body open: cancelling it closes the connection.
    if (!ended) await reader.cancel().catch(() => {});
  }
  return Boolean(await callback(() => onclose?.()));
}

function requestHeaders(headers, lastEventId) {
  const all = new Headers(headers);
  if (!all.has("Accept")) all.set("Accept", "text/event-stream");
  if (lastEventId) all.set("Last-Event-ID", lastEventId);
  return all;
}

async function checkEventStream(response) {
  if (response.ok) {
    const type = response.headers.get("Content-Type") ?? "";
    if (type.split(";")[0].trim().toLowerCase() === "text/event-stream") return;
    await response.body?.cancel();
    throw fatal(new ResponseError(`expected text/event-stream, got ${type || "no type"}`, response));
  }
  const body = await response.json().catch(() => undefined);
  const message = body?.error?.message ?? `HTTP ${response.status}`;
  const error = new ResponseError(message, response, body);
  throw response.status >= 500 ? error : fatal(error); // 4xx: asking again changes nothing
}

// Errors thrown by the caller's callbacks, and refusals, end the stream: never retried.
const FATAL = Symbol("fatal");

function fatal(error) {
  error[FATAL] = true;
  return error;
}

async function callback(call) {
  try {
    return await call();
  } catch (error) {
    throw (error !== null && typeof error === "object") ? fatal(error) : error;
  }
}

function isRetryable(error) {
  return !(error !== null && typeof error === "object" && error[FATAL]);
}

/** The wait before attempt number `attempt` (1 = the first retry), in milliseconds. */
export function reconnectDelay(retryMs, attempt, { jitter = 0.5, random = Math.random } = {}, error) {
  const base = Math.max(retryMs ?? DEFAULT_RETRY_MS, error?.retryAfterMs ?? 0);
  const backoff = Math.min(MAX_DELAY_MS, base * 2 ** (attempt - 1));
  return Math.round(backoff * (1 + jitter * random())); // never sooner than the server asked
}

function retryAfterMs(header) {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return seconds * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
