// Following an endless or long event stream from a page: fetchEventSource with an abort handle,
// the last event id kept for a later resume (pause and resume, a reload), and a reconnection
// whenever the server ends the stream before a final event (a restart, an overflow notice).
// While the server's auth is on it goes with the page's token (token.js); a token refused or
// expired mid-stream is renewed, and the stream resumes from the last event id with the new one.
import { fetchEventSource } from "./fetch-event-source.js";
import { authFetch, isExpiryEvent, renewToken, sentToken } from "./token.js";

/**
 * Follows `url` from `lastEventId` until a final event (`isFinal(event)`), an error or stop().
 * callbacks: onopen(), onevent(event), onretry({attempt, delayMs}), onrenew() when the token
 * expired (the stream waits for a new one), onend() after the final event, onerror(error) when
 * it gives up. stop() returns the last event id, for a resume.
 */
export function follow(url, { lastEventId = "", isFinal = () => false, ...callbacks }) {
  const controller = new AbortController();
  let last = lastEventId;
  let finished = false;
  let expired = false;
  let sent = null;
  fetchEventSource(url, {
    lastEventId,
    signal: controller.signal,
    fetch: authFetch,
    onopen(response) {
      sent = sentToken(response);
      callbacks.onopen?.();
    },
    onmessage(event) {
      expired = isExpiryEvent(event);
      if (expired) return callbacks.onrenew?.();
      last = event.lastEventId;
      finished ||= isFinal(event);
      callbacks.onevent?.(event);
    },
    onclose() {
      if (!expired) return !finished;
      return renewToken(sent, controller).then(() => true);
    },
    onerror: (error, info) => { callbacks.onretry?.(info, error); },
  }).then(
    () => { if (!controller.signal.aborted) callbacks.onend?.(); },
    (error) => callbacks.onerror?.(error),
  );
  return {
    stop() {
      controller.abort();
      return last;
    },
    get lastEventId() { return last; },
  };
}
