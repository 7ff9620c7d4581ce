"""`upstream`: any OpenAI-compatible chat-completions API as a model backend.

`UpstreamBackend.open` POSTs a streaming `/chat/completions` request through the proxy's
`llm.upstream.Upstream` (its upstreams and their fallback, pooled session, keys and timeouts)
and returns once the headers came: a refusal (a status of 400 or more, or anything but an event
stream) is a `ModelError` carrying the upstream's own message, bounded and without keys. The
`UpstreamAnswer` then reads the event stream as its bytes arrive (`ChatStreamParser` turns them
into `Token`s and `End`).

Deliberate choices:

1. The answer ends with the `finish_reason` the upstream gave, never one made up: a stream
   cut (EOF, a reset, a broken chunked body, a stall past the read timeout), or a `[DONE]`
   with no finish reason before it, is an `AnswerFailed`; a stream cut after its finish
   reason (only its usage and `[DONE]` missing) ends normally.
2. `End` goes out as soon as `[DONE]` arrives; the rest of the body (its last chunk) is read
   when the caller asks for more, so the connection goes back to the pool without anyone
   waiting on it.
3. `close()` shuts the socket down (the upstream sees the connection cut at once) rather than
   closing the response under a greenlet reading it, which http.client's buffered reader does
   not allow; the reader closes the response when its read returns.
"""

from __future__ import annotations

import http.client
import logging
import socket
from collections.abc import Iterator
from contextlib import suppress
from typing import TYPE_CHECKING

import requests
from gevent import get_hub, getcurrent
from urllib3.exceptions import HTTPError

from generation.backends import ModelError
from generation.events import End, Token
from generation.params import GenerationParams
from http_policy.json_body import InvalidJSON, parse_json
from streaming.cancellation import Cancellation
from streaming.chunked import ChunkedError
from streaming.encoding import compact_json

from .chat_stream import ChatStreamParser, bounded_message, error_message
from .relay import chunked_payloads
from .wire import OpenAIError

if TYPE_CHECKING:
    from .upstream import Upstream

READ_SIZE = 16 * 1024
"""Most bytes one read takes; a read returns at once with whatever has arrived."""
HEADERS = {"Content-Type": "application/json", "Accept": "text/event-stream",
           "Accept-Encoding": "identity"}
"""What every request says; `Upstream.send` adds the key of the upstream it goes to."""
ERROR_BODY_MAX_BYTES = 64 * 1024
"""Most of a refusal's body read for its message, and of the tail read after `[DONE]`."""

log = logging.getLogger(__name__)


class _Response:
    """An upstream response that one greenlet reads and any greenlet (or the hub) may close."""

    def __init__(self, response: requests.Response) -> None:
        self.response = response
        self.closed = False
        self._reading = False
        raw = response.raw
        # A chunked body is read as the relay reads it (`chunked_payloads`): everything one
        # recv brought in one call, rather than urllib3's and http.client's call per chunk.
        self._payloads = (chunked_payloads(raw) if raw.chunked and raw._fp is not None
                          and response.headers.get("Content-Encoding", "identity") == "identity"
                          else None)

    def read(self) -> bytes:
        """The next bytes that arrived, b"" at the end or once closed. Raises urllib3's and
        http.client's errors or OSError for a cut or a stall past the read timeout."""
        if self.closed:
            self.response.close()
            return b""
        self._reading = True
        try:
            if self._payloads is not None:
                return next(self._payloads, b"")
            return self.response.raw.read1(READ_SIZE)
        finally:
            self._reading = False
            if self.closed:  # closed meanwhile: the reader releases what it was reading
                self.response.close()

    def close(self) -> None:
        """Cut the connection; close the response too unless someone is reading it or this
        is the hub (a cancel's callback), where nothing may block: the reader's next read, or
        the caller's own `close()`, then releases it."""
        self.closed = True
        connection = self.response.raw.connection  # None once it went back to the pool
        sock = getattr(connection, "sock", None)
        if sock is not None:
            with suppress(OSError):  # shut down already, or never connected
                sock.shutdown(socket.SHUT_RDWR)
        if not self._reading and getcurrent() is not get_hub():
            self.response.close()


READ_ERRORS = (HTTPError, http.client.HTTPException, OSError, ChunkedError)


class UpstreamAnswer:
    """The upstream's event stream as `Token`s and an `End` (see the module's choices)."""

    def __init__(self, response: _Response, model: str, cancellation: Cancellation) -> None:
        self.model = model
        self._response = response
        self._cancellation = cancellation
        self._events = self._read()

    def __iter__(self) -> Iterator[Token | End]:
        return self._events

    def close(self) -> None:
        """Cut the upstream off: safe from any greenlet, more than once."""
        self._response.close()

    def _stopped(self) -> bool:
        return self._response.closed or self._cancellation.cancelled

    def _read(self) -> Iterator[Token | End]:
        parser = ChatStreamParser()
        try:
            while piece := self._piece():
                for event in parser.feed(piece):
                    if self._stopped():
                        return
                    yield event
                parser.raise_failure()
                if parser.done:
                    self._read_the_rest()
                    return
            if not self._stopped():
                yield parser.end_of_stream()
        finally:
            self._response.response.close()

    def _piece(self) -> bytes:
        """The next bytes; b"" once they ended, however they did: whether that was the
        answer's end is the parser's to say, by whether a finish reason came."""
        try:
            return self._response.read()
        except READ_ERRORS as exc:
            if not self._stopped():
                log.info("the model's stream ended by %r", exc)
            return b""

    def _read_the_rest(self) -> None:
        """Read what follows `[DONE]` (the end of a chunked body), so the connection can be
        reused; an upstream sending more than that only loses its connection."""
        left = ERROR_BODY_MAX_BYTES
        with suppress(*READ_ERRORS):
            while left > 0 and (piece := self._response.read()):
                left -= len(piece)


class UpstreamBackend:
    """An OpenAI-compatible API's `model`, reached through `upstream`."""

    name = "upstream"

    def __init__(self, upstream: Upstream, model: str) -> None:
        self._upstream = upstream
        self.model = model

    def open(self, params: GenerationParams, cancellation: Cancellation,
             base_url: str) -> UpstreamAnswer | None:
        try:
            sent = self._upstream.send("POST", "/chat/completions", HEADERS, self._body(params),
                                       cancellation, base_url)
        except OpenAIError as exc:
            raise ModelError(exc.status, exc.code or "upstream_error", exc.message) from None
        if sent is None:
            return None
        response = _Response(sent.response)
        cancellation.on_cancel(response.close)
        try:
            _refuse(response, sent.endpoint.api_key)
        except ModelError:
            response.close()
            if cancellation.cancelled:
                return None
            raise
        return UpstreamAnswer(response, self.model, cancellation)

    def _body(self, params: GenerationParams) -> bytes:
        """The request: never `delay_ms`, which only the demo model knows."""
        messages = (list(params.messages) if params.messages is not None
                    else [{"role": "user", "content": params.prompt}])
        return compact_json({"model": self.model, "messages": messages,
                             "max_tokens": params.tokens, "stream": True,
                             "stream_options": {"include_usage": True}}).encode()


def _refuse(response: _Response, api_key: str) -> None:
    """Raise the `ModelError` for a response that is not an answer being streamed."""
    sent = response.response
    status = sent.status_code
    if status == 429:
        said = _refusal_message(response, api_key)
        raise ModelError(429, "upstream_rate_limited",
                         f"the model's API is limiting requests (429){said}",
                         upstream_status=429, retry_after=_retry_after(sent))
    if status >= 400:
        said = _refusal_message(response, api_key)
        raise ModelError(502, "upstream_error", f"the model's API refused the request "
                                                f"({status}){said}", upstream_status=status)
    content_type = sent.headers.get("Content-Type", "")
    if not (200 <= status < 300
            and content_type.split(";")[0].strip().lower() == "text/event-stream"):
        raise ModelError(502, "upstream_error",
                         f"the model's API answered {status} with {content_type[:80]!r}, "
                         f"not an event stream", upstream_status=status)


def _refusal_message(response: _Response, api_key: str) -> str:
    """`: <the upstream's error.message>`, or nothing if its body is not OpenAI's shape."""
    body = b""
    with suppress(*READ_ERRORS):
        while len(body) < ERROR_BODY_MAX_BYTES and (piece := response.read()):
            body += piece
    try:
        said = error_message(parse_json(body[:ERROR_BODY_MAX_BYTES]))
    except InvalidJSON:
        said = None
    return f": {bounded_message(said, api_key)}" if said else ""


def _retry_after(response: requests.Response) -> str | None:
    """The upstream's Retry-After, if it is one a client can read (seconds or an HTTP date)."""
    value = response.headers.get("Retry-After")
    if value is None or len(value) > 64 or not value.isascii() or not value.isprintable():
        return None
    return value.strip() or None
