// An incremental parser for `text/event-stream` bodies, exact to the WHATWG HTML standard,
// "Interpreting an event stream" (https://html.spec.whatwg.org/multipage/server-sent-events.html),
// the same rules as the server's streaming/sse.py: both pass tests/sse_vectors.json.
//
// - Bytes are UTF-8, invalid sequences become U+FFFD; one BOM is stripped at the very start of a
//   stream only (a later one is text).
// - Lines end with CRLF, a lone CR or a lone LF, and nothing else (not U+2028, not VT/FF).
// - `field: value` with exactly one space removed after the colon; a line without a colon is a
//   field with an empty value (so a bare `data` is an empty data line); `:` starts a comment.
// - `data` appends a line; `event` sets the type; `id` sets the last event id unless it holds
//   NUL; `retry` sets the reconnection time when it is ASCII digits only; others are ignored.
// - A blank line commits the id and dispatches an event if some data line was seen.
// - The end of a stream discards an unfinished event.
//
// One deliberate deviation, shared with streaming/sse.py and with browsers: a new stream (a
// reconnection) starts its id buffer from the last committed id, not from "" as the standard's
// text says, so an event without an `id` field keeps the id a client resumed from.

const BOM = "\ufeff";
const DIGITS = /^[0-9]+$/;

/** Parses one event stream after another (one per connection); feed it chunks split anywhere. */
export class EventStreamParser {
  constructor() {
    /** The id committed by the last blank line: what a reconnection sends as Last-Event-ID. */
    this.lastEventId = "";
    /** The reconnection time in ms last set by the stream, or null. */
    this.retry = null;
    this.#startStream();
  }

  #decoder;
  #atStart;
  #skipLF;
  #pending;
  #data;
  #type;
  #id;

  #startStream() {
    // ignoreBOM keeps the decoder from stripping it, so bytes and strings share one rule below.
    this.#decoder = new TextDecoder("utf-8", { ignoreBOM: true });
    this.#atStart = true; // no character yet: a BOM here is stripped
    this.#skipLF = false; // the last chunk ended with CR: an LF opening the next belongs to it
    this.#pending = ""; // the current, unterminated line
    this.#data = [];
    this.#type = "";
    this.#id = this.lastEventId;
  }

  /**
   * Consumes a chunk (Uint8Array of UTF-8, or a string) and returns the events it completes,
   * each `{type, data, lastEventId}` as a browser's MessageEvent would carry them.
   */
  feed(chunk) {
    let text = typeof chunk === "string"
      ? this.#decoder.decode() + chunk // flush an unfinished character first, as U+FFFD
      : this.#decoder.decode(chunk, { stream: true });
    if (text === "") return [];
    if (this.#atStart) {
      this.#atStart = false;
      if (text.startsWith(BOM)) text = text.slice(1);
    }
    if (this.#skipLF) {
      this.#skipLF = false;
      if (text.startsWith("\n")) text = text.slice(1);
    }
    return this.#lines(this.#pending + text);
  }

  /** Ends the stream: an unfinished event is discarded. Ready for the next stream after. */
  end() {
    this.#startStream();
    return [];
  }

  #lines(text) {
    const events = [];
    const lineEnd = /[\r\n]/g;
    let start = 0;
    for (let match; (match = lineEnd.exec(text)) !== null; start = lineEnd.lastIndex) {
      const at = match.index;
      if (text[at] === "\r") {
        if (at + 1 === text.length) this.#skipLF = true; // a CRLF may be split across chunks
        else if (text[at + 1] === "\n") lineEnd.lastIndex = at + 2;
      }
      const event = this.#line(text.slice(start, at));
      if (event) events.push(event);
    }
    this.#pending = text.slice(start);
    return events;
  }

  #line(line) {
    if (line === "") return this.#dispatch();
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.#data.push(value);
    else if (field === "event") this.#type = value;
    else if (field === "id") { if (!value.includes("\0")) this.#id = value; }
    else if (field === "retry") { if (DIGITS.test(value)) this.retry = Number(value); }
    return null;
  }

  #dispatch() {
    this.lastEventId = this.#id;
    const type = this.#type || "message";
    this.#type = "";
    if (this.#data.length === 0) return null;
    const data = this.#data.join("\n");
    this.#data = [];
    return { type, data, lastEventId: this.lastEventId };
  }
}
