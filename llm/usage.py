"""Token usage of every relayed chat completion: read from the events as they pass, recorded
once the answer ends.

`plan_usage` looks at a `POST .../chat/completions` body before it goes upstream. For a stream
whose client did not ask for `stream_options.include_usage`, it asks the upstream for it (with
PROXY_USAGE on), and the `UsageMeter` then removes the usage-only chunk before it reaches the
client: the client gets the upstream's bytes without it, exactly what it would have got
without the relay. A client that asked gets every byte untouched.

The meter never parses an event that does not carry usage: content chunks are counted by their
bytes (`"content":"` with something in it), and only the event holding `"usage"` is decoded.
Held back are, with stripping on, the bytes of an event not complete yet (a client can do
nothing with half an event); otherwise nothing.

Choices where the issue is silent:

1. Bodies over PARSE_LIMIT are not parsed (it would hold the loop): relayed as they are, with
   usage estimated. Every `stream_options` member the client sent is kept.
2. A stream that ends early, or whose upstream sends no usage, is recorded as estimated:
   completion tokens are the content chunks relayed, prompt tokens a quarter of the body's
   bytes (the usual four bytes a token).
3. The `model` label is the request's `model`: at most MODEL_LABELS names a process, the rest
   are `other`, so a client sending random names cannot grow /metrics without end.
4. A non-streaming answer's usage is read from its JSON body when that is at most PARSE_LIMIT.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from http_policy.json_body import parse_json

PARSE_LIMIT = 256 * 1024
"""Largest request or response body decoded on the loop: about 2 ms here (7 ms a MiB)."""
CHAT_PATH = "/chat/completions"
MODEL_LABELS = 64

OK, CLIENT_CLOSED, UPSTREAM_FAILED, UPSTREAM_ERROR = ("ok", "client_closed", "upstream_failed",
                                                      "upstream_error")

_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_EVENT_END = (b"\n\n", b"\r\n\r\n", b"\r\r")


@dataclass(frozen=True, slots=True)
class UsageRequest:
    """What the request said that usage needs: its model, whether it streams, and whether the
    relay asked for the usage chunk (so it must remove it)."""

    model: str
    stream: bool
    strip: bool
    prompt_estimate: int


@dataclass(frozen=True, slots=True)
class Usage:
    """One request's usage, as recorded."""

    key: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    exact: bool
    duration: float
    first_chunk: float | None
    outcome: str
    status: int


def plan_usage(method: str, path: str, body: bytes, *, rewrite: bool
               ) -> tuple[bytes, UsageRequest | None]:
    """The body to send upstream and what to meter; (body, None) for anything but a chat
    completion this module can read."""
    if method != "POST" or not path.split("?", 1)[0].endswith(CHAT_PATH) \
            or len(body) > PARSE_LIMIT:
        return body, None
    try:
        request = parse_json(body)  # depth-limited: a hostile body cannot exhaust the stack
    except ValueError:
        return body, None  # the upstream's to refuse
    if not isinstance(request, dict):
        return body, None
    stream = request.get("stream") is True
    options = request.get("stream_options")
    asked = isinstance(options, dict) and options.get("include_usage") is True
    strip = stream and rewrite and not asked and (options is None or isinstance(options, dict))
    if strip:
        body = _asking_for_usage(body, request, options)
    model = request.get("model")
    return body, UsageRequest(model=model if isinstance(model, str) else "", stream=stream,
                              strip=strip, prompt_estimate=max(1, len(body) // 4))


def _asking_for_usage(body: bytes, request: dict, options: dict | None) -> bytes:
    """`body` with `stream_options.include_usage` true. Without `stream_options` the member is
    put in front, every byte of the client's kept (no second encoding); otherwise the body is
    encoded again with the client's other options."""
    if "stream_options" not in request:  # it has a member at least: `"stream": true`
        start = body.index(b"{") + 1
        return body[:start] + b'"stream_options":{"include_usage":true},' + body[start:]
    request["stream_options"] = {**(options or {}), "include_usage": True}
    return json.dumps(request, ensure_ascii=False, separators=(",", ":")).encode()


def content_chunks(data: bytes) -> int:
    """Events in `data` whose delta has content: `"content":"x`, never `"content":""`."""
    return (data.count(b'"content":"') - data.count(b'"content":""')
            + data.count(b'"content": "') - data.count(b'"content": ""'))


def _has_usage(data: bytes) -> bool:
    """Whether `data` holds a usage object: OpenAI puts `"usage":null` in every other chunk."""
    return b'"usage":{' in data or b'"usage": {' in data


def _event_json(event: bytes) -> object:
    lines = [line[5:].lstrip(b" ") for line in re.split(rb"\r\n|\n|\r", event)
             if line.startswith(b"data:")]
    return _loads(b"\n".join(lines))


def _tokens(usage: object) -> tuple[int, int] | None:
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
               for n in (prompt, completion)):
        return None
    return prompt, completion


class UsageMeter:
    """Reads one relayed answer's pieces (`relay`), gives back what the client gets, and
    records the usage once (`end`)."""

    def __init__(self, request: UsageRequest, key: str, event_stream: bool,
                 record: Callable[[Usage], None], status: int = 200) -> None:
        self._request = request
        self._key = key
        self._event_stream = event_stream
        self._strip = request.strip and event_stream
        self._record = record
        self._status = status
        self._began = time.monotonic()
        self._first: float | None = None
        self._partial = b""
        self._body: list[bytes] | None = [] if not event_stream else None
        self._body_size = 0
        self._content = 0
        self._exact: tuple[int, int] | None = None
        self._ended = False

    def relay(self, piece: bytes) -> bytes:
        """The bytes of `piece` the client gets (with stripping, those up to the last
        complete event)."""
        if self._first is None:
            self._first = time.monotonic()
        if not self._event_stream:
            self._keep_body(piece)
            return piece
        data = self._partial + piece if self._partial else piece
        cut = _after_last_event(data)
        complete, self._partial = data[:cut], data[cut:]
        if complete:
            self._content += content_chunks(complete)
            if _has_usage(complete):
                complete = self._take_usage(complete)
        return complete if self._strip else piece

    def held(self) -> bytes:
        """What is still held back once the upstream ended: its unfinished last event."""
        if not self._strip:
            return b""
        held, self._partial = self._partial, b""
        return held

    def _keep_body(self, piece: bytes) -> None:
        if self._body is not None:
            self._body_size += len(piece)
            if self._body_size > PARSE_LIMIT:
                self._body = None
            else:
                self._body.append(piece)

    def _take_usage(self, complete: bytes) -> bytes:
        """`complete` without the usage-only event (with stripping), its usage noted."""
        kept = []
        for event in _events(complete):
            if _has_usage(event):
                chunk = _event_json(event)
                if isinstance(chunk, dict) and (tokens := _tokens(chunk.get("usage"))):
                    self._exact = tokens
                    if self._strip and chunk.get("choices") == []:
                        continue
            kept.append(event)
        return b"".join(kept)

    def end(self, outcome: str) -> Usage | None:
        """Record the usage once: exact if the upstream said it, else estimated."""
        if self._ended:
            return None
        self._ended = True
        if self._body is not None and outcome == OK:
            response = _loads(b"".join(self._body))
            if isinstance(response, dict):
                self._exact = _tokens(response.get("usage"))
        if self._status != 200:
            outcome = UPSTREAM_ERROR
        if self._exact is not None:
            (prompt, completion), exact = self._exact, True
        elif self._status != 200:
            prompt, completion, exact = 0, 0, False
        else:
            prompt, completion = self._request.prompt_estimate, self._content
            exact = False
        usage = Usage(key=self._key, model=self._request.model, prompt_tokens=prompt,
                      completion_tokens=completion, exact=exact,
                      duration=time.monotonic() - self._began,
                      first_chunk=None if self._first is None else self._first - self._began,
                      outcome=outcome, status=self._status)
        self._record(usage)
        return usage


def _loads(body: bytes) -> object:
    try:
        return parse_json(body)
    except ValueError:
        return None


def _after_last_event(data: bytes) -> int:
    """The index just past the last event's blank line in `data`, 0 if there is none."""
    best = 0
    for end in _EVENT_END:
        at = data.rfind(end)
        if at >= 0:
            best = max(best, at + len(end))
    return best


def _events(complete: bytes) -> list[bytes]:
    """`complete` (whole events) cut after each event's blank line, nothing lost."""
    events, start = [], 0
    for match in _BOUNDARY.finditer(complete):
        events.append(complete[start:match.end()])
        start = match.end()
    if start < len(complete):
        events.append(complete[start:])
    return events
