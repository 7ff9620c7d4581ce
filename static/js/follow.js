// Following an endless or long event stream from a page: fetchEventSource with an abort handle,
// the last event id kept for a later resume (pause and resume, a reload), and a reconnection
// whenever the server ends the stream before a final event (a restart, an overflow notice).
import { fetchEventSource } from "./fetch-event-source.js";

/**
 * Follows `url` from `lastEventId` until a final event (`isFinal(event)`), an error or stop().
 * callbacks: onopen(), onevent(event), onretry({attempt, delayMs}), onend() after the final
 * event, onerror(error) when it gives up. stop() returns the last event id, for a resume.
 */
export function follow(url, { lastEventId = "", isFinal = () => false, ...callbacks }) {
  const controller = new AbortController();
  let last = lastEventId;
  let finished = false;
  fetchEventSource(url, {
    lastEventId,
    signal: controller.signal,
    onopen: () => callbacks.onopen?.(),
    onmessage(event) {
      last = event.lastEventId;
      finished ||= isFinal(event);
      callbacks.onevent?.(event);
    },
    onclose: () => !finished,
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
