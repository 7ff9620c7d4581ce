"""How each transport writes a generation's events: SSE, NDJSON, plain text.

A format is what `pipeline.EventStream` needs to put a source's items on the wire:
`preamble()` (the first bytes), `chunk(batch)` (one write for a batch of items), `failure(f)`
(the error record that ends a stream that failed after it started, or None where the format
has none and the connection must be cut), `heartbeat` (bytes, or None for no heartbeat) and
`media_type`. WebSocket messages use `json_message`, the same objects NDJSON writes a line each.

`restart(reason)` is the record that ends a stream the server stops on purpose (a restart, the
stream's maximum age) and tells the client to come back: SSE (the core's `EncodedSSEFormat`)
and NDJSON have one and resume with Last-Event-ID; plain text has none (no ids to resume from),
so its connection is cut instead.
"""

from __future__ import annotations

from streaming.encoded import EncodedSSEFormat
from streaming.encoding import compact_json
from streaming.failure import Failure
from streaming.sse import ServerSentEvent, data_field

from .events import End, GenerationEvent, Reset, Start, Token

TRANSPORTS = ("sse", "ndjson", "text", "ws")
"""The `transport` label of generation's streams: its three formats, and WebSocket."""


def message(item: GenerationEvent) -> dict:
    """The JSON object for an event, as NDJSON lines and WebSocket text frames carry it."""
    if type(item) is Token:
        return {"type": "token", "index": item.index, "text": item.text}
    if type(item) is Start:
        start = {"type": "start", "model": item.model, "tokens": item.tokens}
        if item.backend is not None:
            start.update(backend=item.backend, generation=item.generation)
        return start
    if type(item) is End:
        end = {"type": "end", "finish_reason": item.finish_reason, "tokens": item.tokens}
        if item.usage is not None:
            end["usage"] = item.usage
        return end
    if type(item) is Reset:
        return {"type": "reset", "reason": item.reason}
    return {"type": "error", "error": {"type": item.type, "message": item.message}}


def json_message(item: GenerationEvent) -> str:
    return compact_json(message(item))


class _TextRecords:
    """A format whose items each encode to text; a batch is joined and encoded once."""

    def encode(self, item: GenerationEvent) -> str:
        raise NotImplementedError

    def preamble(self) -> bytes:
        return b""

    def chunk(self, batch: list) -> bytes:
        return "".join(map(self.encode, batch)).encode()

    def failure(self, failure: Failure) -> bytes | None:
        return self.encode(failure).encode()


class SSEFormat(EncodedSSEFormat):
    """`text/event-stream`: tokens as default-type events whose id is the token index.

    The default event type lets `EventSource.onmessage` receive tokens; the id is what a
    reconnecting EventSource sends back as Last-Event-ID. `retry` rides in the stream's first
    event (`start`, or the first token of a resumed stream); the heartbeat and failure event
    are the core's (`streaming/encoded.py`); only the items are encoded here.

    A generation's stream gives its `end` an id too (the token count), so that a viewer that
    had the end and comes back can be told it has everything; with `generation`, every id
    names it (`<generation>` for the start, `<generation>:<index>` after), so a reconnect to a
    URL that starts answers (`/sse/chat`) continues that answer instead of starting another.
    """

    def __init__(self, retry_ms: int, *, generation: str | None = None,
                 end_ids: bool = False) -> None:
        super().__init__(retry_ms)
        self._prefix = "" if generation is None else generation + ":"
        self._start_id = generation
        self._end_ids = end_ids or generation is not None

    def chunk(self, batch: list) -> bytes:
        # One event per batch is the usual case of a paced stream: no join for it.
        events = self.encode(batch[0]) if len(batch) == 1 else "".join(map(self.encode, batch))
        return self.first_sets_retry(events.encode())

    def encode(self, item: GenerationEvent) -> str:
        if type(item) is Token:
            # The hot path: an int id needs no validation, so skip building an event value.
            return f"id: {self._prefix}{item.index}\n{data_field(item.text)}\n"
        body = message(item)
        kind = body.pop("type")
        if kind == "error":
            body = body["error"]
        event_id = None
        if kind == "start":
            event_id = self._start_id
        elif kind == "end" and self._end_ids:
            event_id = f"{self._prefix}{item.tokens}"
        return ServerSentEvent(data=compact_json(body), event=kind, id=event_id).text()


class NDJSONFormat(_TextRecords):
    """`application/x-ndjson`: one JSON object a line.

    The heartbeat is an empty line, which NDJSON readers skip.
    """

    media_type = "application/x-ndjson"
    heartbeat: bytes | None = b"\n"

    def encode(self, item: GenerationEvent) -> str:
        return json_message(item) + "\n"

    def restart(self, reason: str) -> bytes:
        """`{"type":"restart","reason":...}`: resume by sending Last-Event-ID, the last index."""
        return (compact_json({"type": "restart", "reason": reason}) + "\n").encode()


class TextFormat(_TextRecords):
    """`text/plain`: the raw token text and nothing else.

    Plain text has no room for a heartbeat or an error record. A failure after the start is
    reported by cutting the connection before the terminating chunk, which every HTTP client
    reports as an incomplete body rather than a clean end.
    """

    media_type = "text/plain"
    heartbeat: bytes | None = None

    def encode(self, item: GenerationEvent) -> str:
        return item.text if type(item) is Token else ""

    def failure(self, failure: Failure) -> bytes | None:
        return None
