"""One upstream response relayed to one client, byte for byte, as each piece arrives.

The naive relay (copy every header, `for line in body.split("\\n")`, ignore errors, keep reading
after the client left) breaks in four ways; this module is the answer to each:

1. Headers: hop-by-hop headers (RFC 9110 section 7.6.1: Connection and the names it lists,
   Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding, Upgrade) describe one connection and are
   never forwarded; Content-Length and Content-Encoding do not describe the body we send (it is
   re-framed by gunicorn, and decoded if the upstream compressed it although asked not to).
   Repeated headers such as Set-Cookie stay separate lines.
2. Body: raw pieces, as they arrive (what one read of the socket gives), never re-split into
   lines; the pipeline joins the pieces that queued up while the client's socket was busy into
   one write. Nothing is added, but a keepalive comment in an event stream's silences
   (PROXY_KEEPALIVE_SECONDS; every SSE client skips it), and nothing is taken out but the
   usage-only chunk the relay asked for itself (`usage.py`). LLM APIs send every event as
   its own HTTP chunk, and http.client hands over one chunk per read: a chunked body is
   decoded here instead (`streaming.chunked`), everything one read brought at once, so the
   cost of a hand-over, a greenlet switch and a write is paid per read, not per event.
3. Errors: a body cut off or stalled past the read timeout ends an event stream with OpenAI's
   error event and `data: [DONE]` (`wire.error_event`); any other body is cut, so the
   client sees an incomplete chunked body rather than a clean end.
4. Disconnect: the producer greenlet is killed, which closes the upstream connection (urllib3
   closes a connection whose read was interrupted), so the upstream sees the stream cut.
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Callable, Iterable, Iterator

import gevent
import requests
from urllib3.exceptions import HTTPError, ReadTimeoutError

from streaming.cancellation import Cancellation
from streaming.chunked import ChunkedDecoder, ChunkedError
from streaming.failure import Failure
from streaming.sources import ProducerSource

from .usage import CLIENT_CLOSED, OK, UPSTREAM_FAILED, UsageMeter
from .wire import error_event

HOP_BY_HOP = frozenset({"connection", "keep-alive", "te", "trailer", "trailers",
                        "transfer-encoding", "upgrade"})
"""Lower-case names never forwarded either way, besides `proxy-*` and what Connection lists."""

RESPONSE_DROP = HOP_BY_HOP | {"content-length", "content-encoding", "server", "date"}
"""Upstream headers not forwarded: the body is re-framed; gunicorn writes its own Server, Date."""

READ_SIZE = 16 * 1024
"""Most bytes one read takes; a read returns at once with whatever has arrived."""

QUEUE_PIECES = 8
"""Pieces buffered for a slow client before the relay stops reading: at most 128 KiB."""

STALLED = Failure("upstream_timeout", "the upstream API stopped sending before the end of its "
                                      "response")
BROKEN = Failure("upstream_error", "the upstream API's response was cut off before its end")


def connection_listed(headers: Iterable[tuple[str, str]]) -> set[str]:
    """The lower-case names a Connection header lists: hop-by-hop too (RFC 9110 7.6.1)."""
    return {name.strip().lower() for key, value in headers if key.lower() == "connection"
            for name in value.split(",") if name.strip()}


# Control characters other than TAB are not allowed in a field (RFC 9110 5.5); CR and LF would
# split one header into two, and gunicorn refuses to send any of them (a 500 for the response).
_NOT_IN_A_FIELD = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def end_to_end(headers: Iterable[tuple[str, str]], drop: frozenset[str] | set[str]
               ) -> list[tuple[str, str]]:
    """`headers` without hop-by-hop ones, without `drop` (lower-case names), and without any
    whose name or value carries a control character (an injection attempt, never relayed)."""
    headers = list(headers)
    drop = drop | HOP_BY_HOP | connection_listed(headers)
    return [(name, value) for name, value in headers
            if name.lower() not in drop and not name.lower().startswith("proxy-")
            and not _NOT_IN_A_FIELD.search(name + value)]


def is_event_stream(content_type: str) -> bool:
    """Whether a Content-Type is `text/event-stream`, whatever its parameters and case."""
    return content_type.split(";")[0].strip().lower() == "text/event-stream"


class RelayFailed(Exception):
    """The upstream body ended badly; `failure` is what the client is told."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


KEEPALIVE = b": keepalive\n\n"
"""The comment a relayed event stream gets while the upstream is silent: every SSE client and
OpenAI SDK skips it."""


class PassThroughFormat:
    """The pipeline Format of a relayed body: the pieces, joined, and nothing else.

    `failure` on an event stream closes an event the upstream left unfinished with a blank line
    (so the error is an event of its own; the client sees the cut-off one as malformed, which it
    is), then sends the error event and DONE. Other bodies have no error record.

    With `keepalive`, an event stream's silences get KEEPALIVE, between events only: in the
    middle of one the comment would become part of it, so nothing is sent then.
    """

    def __init__(self, media_type: str, event_stream: bool, keepalive: bool = False) -> None:
        self.media_type = media_type
        self.event_stream = event_stream
        self._keepalive = keepalive and event_stream
        self._between_events = True

    @property
    def heartbeat(self) -> bytes | None:
        if not self._keepalive:
            return None
        return KEEPALIVE if self._between_events else b""

    def preamble(self) -> bytes:
        return b""

    def chunk(self, batch: list) -> bytes:
        data = batch[0] if len(batch) == 1 else b"".join(batch)
        if self.event_stream:
            self._between_events = data.endswith((b"\n\n", b"\r\n\r\n", b"\r\r"))
        return data

    def failure(self, failure: Failure) -> bytes | None:
        if not self.event_stream:
            return None
        return (b"" if self._between_events else b"\n\n") + error_event(failure)


class Relay:
    """An upstream `requests.Response` (opened with `stream=True`) as a pipeline Source.

    `status`, `headers` (end-to-end only) and `format` describe the response to send. The body
    is read by a producer greenlet (`sources.ProducerSource`) that blocks on the upstream socket;
    the serving greenlet only writes. `close()` releases the upstream connection; it is called
    when the stream ends and must also be called if the body is never iterated (HEAD, 204).
    """

    def __init__(self, response: requests.Response, *, keepalive: bool = False,
                 meter: UsageMeter | None = None) -> None:
        """`keepalive`: comments in an event stream's silences (the pipeline's heartbeat,
        PROXY_KEEPALIVE_SECONDS); `meter` reads (and may trim) what passes, for usage."""
        self._response = response
        self._meter = meter
        raw = response.raw
        self.status = response.status_code
        self.headers = end_to_end(raw.headers.items(), RESPONSE_DROP)
        content_type = raw.headers.get("Content-Type", "")
        event_stream = is_event_stream(content_type)
        self.format = PassThroughFormat(content_type, event_stream, keepalive)
        encoding = raw.headers.get("Content-Encoding", "identity").strip().lower()
        self._decode = encoding not in ("", "identity")
        self._source = ProducerSource(self._produce, QUEUE_PIECES)
        self._reader: gevent.Greenlet | None = None

    @property
    def event_stream(self) -> bool:
        return self.format.event_stream

    def batches(self, idle: float | None,
                cancellation: Cancellation) -> Iterator[list | object]:
        try:
            yield from self._source.batches(idle, cancellation)
        finally:
            self.close()

    def _produce(self, emit: Callable[[bytes], None]) -> None:
        self._reader = gevent.getcurrent()
        meter, outcome = self._meter, CLIENT_CLOSED  # unless it gets further: killed
        relay = emit if meter is None else _metered(emit, meter)
        try:
            raw = self._response.raw
            if raw.chunked and not self._decode and raw._fp is not None:
                for payload in chunked_payloads(raw):
                    relay(payload)
            else:
                while piece := raw.read1(READ_SIZE, decode_content=self._decode):
                    relay(piece)
            if meter is not None and (held := meter.held()):
                emit(held)
            outcome = OK
        except (ReadTimeoutError, TimeoutError) as exc:
            outcome = UPSTREAM_FAILED
            raise RelayFailed(STALLED) from exc
        except (HTTPError, http.client.HTTPException, OSError, ChunkedError) as exc:
            outcome = UPSTREAM_FAILED
            raise RelayFailed(BROKEN) from exc
        finally:
            if meter is not None:
                meter.end(outcome)
            self._reader = None
            # Read to the end, the connection is back in the pool and this only closes the
            # response; interrupted (killed on disconnect), it closes the connection.
            self._response.close()

    def close(self) -> None:
        """Release the upstream response, unless the reader greenlet is still unwinding.

        Never from the hub, and never while the reader is blocked in it: the response's buffered
        reader is not reentrant. A reader being killed closes the response in its `finally`.
        """
        if self._reader is not None:
            return
        if self._meter is not None:  # a body never read (the client left first) is recorded too
            self._meter.end(CLIENT_CLOSED)
        raw = self._response.raw
        if raw.length_remaining == 0 and not raw.closed:
            # An empty body (HEAD, 204, 304) never read: reading it returns at once and puts
            # the connection back in the pool, where closing would throw it away.
            raw.read()
        self._response.close()


def _metered(emit: Callable[[bytes], None], meter: UsageMeter) -> Callable[[bytes], None]:
    """`emit` of what the meter lets through (nothing, while it holds half an event)."""
    def metered(piece: bytes) -> None:
        if relayed := meter.relay(piece):
            emit(relayed)

    return metered


def chunked_payloads(raw) -> Iterator[bytes]:
    """The payload of a chunked body (urllib3's `raw`), everything each read brought at once.

    Reads http.client's buffered socket reader under the response, as urllib3's own
    `read_chunked` does; at the end, closes http.client's response and puts the connection back
    in the pool as urllib3 would, unless bytes followed the body (then it is not reusable, and
    closing the response closes it).
    """
    reader = raw._fp.fp
    decoder = ChunkedDecoder()
    rest = b""
    while reader is not None and not decoder.done:
        data = reader.read1(READ_SIZE)
        if not data:
            raise http.client.IncompleteRead(b"")
        payload, rest = decoder.feed(data)
        if payload:
            yield payload
    raw._fp.close()
    if not rest:
        raw.release_conn()
