// Readers for the service's token streams, one per transport. Each takes handlers
// { start(info), token({index, text}), end(info), error(message) } and returns { stop() }.

export function readEventSource(url, handlers) {
  const source = new EventSource(url);
  source.addEventListener("start", (e) => handlers.start(JSON.parse(e.data)));
  source.onmessage = (e) => handlers.token({ index: Number(e.lastEventId), text: e.data });
  source.addEventListener("end", (e) => {
    source.close(); // or EventSource would reconnect and be sent the end again
    handlers.end(JSON.parse(e.data));
  });
  source.addEventListener("error", (e) => {
    if (e.data !== undefined) { // the server's `event: error`, not a connection error
      source.close();
      handlers.error(JSON.parse(e.data).message);
    } else if (source.readyState === EventSource.CLOSED) {
      handlers.error("the server refused the stream");
    } // else: EventSource reconnects by itself, resuming with Last-Event-ID
  });
  return { stop() { source.close(); } };
}

// Server-sent events from a fetch body, per the WHATWG parsing rules the server follows.
export async function* sseEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { type: "", data: [], id: undefined };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    // A trailing CR may be the first half of a CRLF: keep it until more arrives.
    const lines = buffer.split(/\r\n|\r(?!$)|\n/);
    buffer = lines.pop();
    for (const line of lines) {
      if (line === "") {
        if (event.data.length) yield { type: event.type || "message", data: event.data.join("\n"), id: event.id };
        event = { type: "", data: [], id: event.id };
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let text = colon < 0 ? "" : line.slice(colon + 1);
      if (text.startsWith(" ")) text = text.slice(1);
      if (field === "data") event.data.push(text);
      else if (field === "event") event.type = text;
      else if (field === "id" && !text.includes("\0")) event.id = text;
    }
  }
}

async function* ndjsonObjects(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    const lines = (buffer + value).split("\n");
    buffer = lines.pop();
    for (const line of lines) if (line.trim()) yield JSON.parse(line); // blank lines are heartbeats
  }
}

async function* textChunks(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    yield value;
  }
}

// POST /api/chat; `format` is "sse", "ndjson" or "text" and picks the Accept header.
export function fetchChat(url, request, format, handlers) {
  const accept = { sse: "text/event-stream", ndjson: "application/x-ndjson", text: "text/plain" }[format];
  const controller = new AbortController();
  (async () => {
    const response = await fetch(url, {
      method: "POST", body: JSON.stringify(request), signal: controller.signal,
      headers: { "Content-Type": "application/json", Accept: accept },
    });
    if (!response.ok) return handlers.error((await response.json()).error.message);
    if (format === "sse") {
      for await (const e of sseEvents(response.body)) {
        if (e.type === "message") handlers.token({ index: Number(e.id), text: e.data });
        else if (e.type === "error") return handlers.error(JSON.parse(e.data).message);
        else handlers[e.type]?.(JSON.parse(e.data));
      }
    } else if (format === "ndjson") {
      for await (const m of ndjsonObjects(response.body)) {
        if (m.type === "error") return handlers.error(m.error.message);
        handlers[m.type]?.(m);
      }
    } else {
      let index = 0;
      for await (const text of textChunks(response.body)) handlers.token({ index: index++, text });
      handlers.end({ finish_reason: "stop" });
    }
  })().catch((err) => {
    if (err.name === "AbortError") handlers.end({ finish_reason: "cancelled" });
    else handlers.error(String(err));
  });
  return { stop() { controller.abort(); } };
}

// /ws/chat: the one transport where stop() asks the server to cancel and waits for its end.
export function openChatSocket(url, request, handlers) {
  const socket = new WebSocket(url);
  socket.onopen = () => socket.send(JSON.stringify({ type: "prompt", ...request }));
  socket.onmessage = (e) => {
    const message = JSON.parse(e.data);
    if (message.type === "error") return handlers.error(message.message);
    if (message.type === "end") socket.close();
    handlers[message.type]?.(message);
  };
  socket.onerror = () => handlers.error("the WebSocket connection failed");
  return { stop() { socket.send(JSON.stringify({ type: "cancel" })); } };
}
