"""`EventStream`: the WSGI body that carries one stream from its source to one client.

Written for how gunicorn's gevent worker drives a response (`gunicorn/workers/base_async.py`):
it writes each item the iterator yields at once, sends the headers with the first write, and
calls `close()` on the iterator when the client vanished mid-write or after the end. Everything
a stream holds is therefore acquired inside the generator and released in its `finally`.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from gevent.hub import get_hub

from .cancellation import Cancellation
from .disconnect import DISCONNECT, cancel_on_disconnect
from .failure import Failure
from .metrics import CountedStream, StreamMetrics
from .send_timeout import watch_sends
from .shutdown import Lifetimes, is_restart, restart_failure
from .sources import IDLE

log = logging.getLogger(__name__)

__all__ = ["DISCONNECT", "EventStream", "Format", "Source", "watching"]

# What the client is told when a source fails without saying more: never internal detail. A
# source can say more by raising an exception with a `failure` attribute (a Failure).
GENERIC_FAILURE = Failure("stream_error", "the stream failed before it could finish")

CREDENTIALS_EXPIRED = Failure("token_expired", "the token this stream was opened with expired; "
                                               "reconnect with a fresh one and the last id")
"""How a stream opened with credentials that end (`expires_at`) ends when they do."""


@contextmanager
def watching(environ: dict, cancellation: Cancellation) -> Iterator[Cancellation]:
    """Cancel `cancellation` with DISCONNECT if the client leaves while the block runs.

    For what a view waits on before any EventStream exists (an upstream's headers, a whole
    non-streaming answer): the view greenlet is blocked, so only the socket can tell. Pass the
    same cancellation to the EventStream that follows; it watches the socket itself from then on.
    """
    watcher = cancel_on_disconnect(environ.get("gunicorn.socket"), cancellation)
    try:
        yield cancellation
    finally:
        if watcher is not None:
            watcher.stop()


def expire_at(unix_time: float, cancellation: Cancellation):
    """A loop timer cancelling `cancellation` with CREDENTIALS_EXPIRED at `unix_time` (at once
    if that is past); `close()` it when the stream ends first."""
    timer = get_hub().loop.timer(max(0.0, unix_time - time.time()))
    timer.start(cancellation.cancel, CREDENTIALS_EXPIRED.type)
    return timer


class Format(Protocol):
    """How items go on the wire; `formats.py` has the generation formats."""

    media_type: str
    heartbeat: bytes | None

    def preamble(self) -> bytes: ...
    def chunk(self, batch: list) -> bytes: ...
    def failure(self, failure: Failure) -> bytes | None: ...

    # Optional: `restart(reason) -> bytes`, the record telling the client to come back and
    # resume (see shutdown.py). A format without one ends a restarted stream as a failure.


class Source(Protocol):
    def batches(self, idle: float | None,
                cancellation: Cancellation) -> Iterator[list | object]: ...


class EventStream:
    """Streams `source` to the client in `fmt`, until the end, a failure or a disconnect.

    Parts, in the order a stream lives them:

    1. start: count the stream and watch the client socket, so a client that leaves while the
       stream is idle cancels it at once (`disconnect.py`);
    2. first write: the headers and the preamble go out before anything can block;
    3. stream: each batch from the source becomes one chunk; `IDLE` becomes the format's
       heartbeat, which restarts after every write;
    4. failure: an exception after the start is sent as the format's error record, or, where the
       format has none, the connection is cut so the client sees an incomplete body;
    5. close: the watcher stops, the producer is killed, the metrics are settled.

    With `expires_at` (a Unix time: the end of the token it was opened with) the stream ends
    then with CREDENTIALS_EXPIRED, sent as the format's error record.

    With `lifetimes` the stream is ended with the format's restart record when the worker stops
    or the stream reaches its maximum age (`shutdown.py`); with `send_timeout` a client that
    takes nothing for that long is dropped (`send_timeout.py`).
    """

    __slots__ = ("_body", "_expires_at", "_heartbeat", "_lifetimes", "_metrics", "_on_close",
                 "_send_timeout", "_socket", "cancellation", "fmt", "source", "transport")

    def __init__(self, source: Source, fmt: Format, *, environ: dict, heartbeat: float,
                 transport: str, metrics: StreamMetrics,
                 cancellation: Cancellation | None = None, lifetimes: Lifetimes | None = None,
                 send_timeout: float | None = None, expires_at: float | None = None) -> None:
        if heartbeat <= 0:
            raise ValueError(f"heartbeat must be > 0 seconds, got {heartbeat!r}")
        self.source = source
        self.fmt = fmt
        self.cancellation = cancellation or Cancellation()
        self.transport = transport
        # Only the socket: an idle stream should not keep the rest of the request alive.
        self._socket = environ.get("gunicorn.socket")
        self._heartbeat = heartbeat if fmt.heartbeat else None
        self._metrics = metrics
        self._lifetimes = lifetimes
        self._send_timeout = send_timeout
        self._expires_at = expires_at
        self._on_close: list = []
        self._body = self._stream()

    def __iter__(self) -> Iterator[bytes]:
        return self._body

    def close(self) -> None:
        try:
            self._body.close()
        finally:
            callbacks, self._on_close = self._on_close, []
            for callback in callbacks:
                callback()

    def call_on_close(self, callback: Callable[[], None]) -> None:
        """Call `callback` once this body is closed: by gunicorn after the last write or a failed
        one, or by werkzeug for a response whose body is never sent (HEAD). A `direct_passthrough`
        response hands this object to gunicorn as is, so werkzeug's own `call_on_close` only
        runs in the second case."""
        self._on_close.append(callback)

    def _stream(self) -> Iterator[bytes]:
        # One generator, not one per part: an idle stream keeps every generator it is
        # suspended in (a frame and a slice of saved stack each, about 0.6 KB).
        with CountedStream(self._metrics, self.transport, self.cancellation) as tally:
            watcher = cancel_on_disconnect(self._socket, self.cancellation)
            lease = None if self._lifetimes is None else self._lifetimes.track(self.cancellation)
            send = None
            if self._send_timeout is not None and self._socket is not None:
                send = watch_sends(self._socket, self._send_timeout)
            expiry = None if self._expires_at is None else expire_at(self._expires_at,
                                                                     self.cancellation)
            try:
                try:
                    # gunicorn sends the headers with the first write, even an empty one: this
                    # one goes out before the source can block, so the client sees the
                    # response start.
                    yield self.fmt.preamble()
                    for batch in self.source.batches(self._heartbeat, self.cancellation):
                        if self.cancellation.cancelled:
                            break
                        if batch is IDLE:
                            yield self.fmt.heartbeat
                            continue
                        chunk = self.fmt.chunk(batch)
                        tally.add(len(batch))
                        if chunk:  # a batch of only start/end events is empty in plain text
                            yield chunk
                    if is_restart(self.cancellation.reason):
                        yield from self._report_restart(self.cancellation.reason)
                    elif self.cancellation.reason == CREDENTIALS_EXPIRED.type:
                        yield from self._send_failure(CREDENTIALS_EXPIRED)
                except Exception as exc:
                    log.exception("stream failed after it started")
                    yield from self._report_failure(exc)
            except GeneratorExit:
                # gunicorn closes the body when a write failed: the client is gone, whether
                # that write carried events or the error record.
                self.cancellation.cancel(DISCONNECT)
                raise
            finally:
                if watcher is not None:
                    watcher.stop()
                if lease is not None:
                    lease.release()
                if send is not None:
                    send.stop()
                if expiry is not None:
                    expiry.close()
                self.cancellation.cancel("finished")

    def _report_restart(self, reason: str) -> Iterator[bytes]:
        restart = getattr(self.fmt, "restart", None)
        if restart is not None:
            yield restart(reason)
        else:
            yield from self._send_failure(restart_failure(reason))

    def _report_failure(self, exc: Exception) -> Iterator[bytes]:
        failure = (getattr(exc, "failure", None) or getattr(exc.__cause__, "failure", None)
                   or GENERIC_FAILURE)
        yield from self._send_failure(failure)

    def _send_failure(self, failure: Failure) -> Iterator[bytes]:
        record = self.fmt.failure(failure)
        if record is not None:
            yield record
        elif self._socket is not None:
            # No room for a record: cut the connection before the final chunk, so the client
            # sees an incomplete body rather than a clean end.
            try:
                self._socket.shutdown(socket.SHUT_RDWR)
            except OSError:  # not connected any more: the client left first
                self.cancellation.cancel(DISCONNECT)
