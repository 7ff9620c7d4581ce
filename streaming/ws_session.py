"""One WebSocket connection's conversation: JSON messages in, at most one generation out at a time.

`Session.serve` is the whole life of a connection, in four parts:

1. serve: every write goes through one `LockedSocket`; simple-websocket's reader loop runs in
   this (the connection's) greenlet and hands each message over as soon as it is assembled
   (`websocket.InlineReader`), so a cancel is seen while a generation streams;
2. dispatch: a JSON object whose `type` is the route's start type (`prompt`, `speak`) or
   `cancel`; anything else is answered with `{"type": "error", "message": ...}` and the
   connection stays usable;
3. generation: runs in its own greenlet, reading its source, one write per batch. A cancel
   wakes it at once; it then writes the generation's closing message, and since only this
   greenlet writes frames, nothing of the generation can follow that message;
4. close: when the reader loop ends (the client left or closed, a message over the size limit,
   no pong, a write that timed out) the generation is cancelled and killed, metrics settled.
   A handler that raises (a bug) is logged; the client gets an error message and a close with
   1011, never Flask's HTTP 500 written onto the upgraded socket;
5. restart: with `lifetimes`, a stopping worker or the connection's maximum age stops the
   generation (no `end` message: the client resumes it) and closes with 1012, service restart
   (`shutdown.py`); the client reconnects and sends its prompt again with `last_event_id`.
   With `expires_at`, the connection ends the same way when its token expires, with 4001.

Decisions: a start message while a generation runs is refused with an error (the running one
goes on); after a cancel the next start waits for the cancelled generation's closing message,
so `cancel` and a new prompt may be sent back to back. A cancel with nothing running is ignored:
the generation may have ended while the cancel was on its way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from typing import Any, Protocol

import gevent
from simple_websocket import ConnectionClosed

from http_policy.json_body import InvalidJSON, parse_json
from http_policy.validation import InvalidParameter

from .cancellation import Cancellation
from .disconnect import DISCONNECT
from .encoding import compact_json
from .metrics import CountedStream, StreamMetrics
from .pipeline import CREDENTIALS_EXPIRED, Source, expire_at
from .shutdown import MAX_AGE, SERVER_RESTART, Lifetimes
from .websocket import InlineReader, LockedSocket, MessageSignal, text_frames

log = logging.getLogger(__name__)

CANCELLED = "cancelled"
FAILED = "failed"
CLOSED = "closed"
INTERNAL_ERROR = 1011
"""The close code for a server that met an unexpected condition (RFC 6455 section 7.4.1)."""
SERVICE_RESTART = 1012
"""The close code telling a client to reconnect (RFC 6455 registry: "Service Restart")."""
TOKEN_EXPIRED = 4001
"""The close code for a connection whose token expired (the private range, RFC 6455 7.4.2)."""
ENDINGS = {SERVER_RESTART: (SERVICE_RESTART, "service restart"),
           MAX_AGE: (SERVICE_RESTART, "connection reached its maximum age"),
           CREDENTIALS_EXPIRED.type: (TOKEN_EXPIRED, CREDENTIALS_EXPIRED.type)}
"""The close code and reason of a connection the server ends on purpose; the client
reconnects (with a fresh token after 4001) and resumes."""

RESTART_WAIT_SECONDS = 1.0
"""How long a restart waits for a generation's write in progress, then for the peer to answer
the close frame, before it cuts the connection."""


class Generation(Protocol):
    """What a session runs: a source of items (a `PacedSource` of timed ones, or a live
    one), how a batch of them is written, how it ends."""

    def source(self) -> Source: ...
    def frames(self, batch: list) -> bytes: ...
    def finish(self) -> bytes:
        """The closing frames once the items stopped (all sent, or cancelled); may be empty."""
        ...


Starts = Mapping[str, Callable[[dict], Generation]]
"""A route's start message types, each with what builds its generation from the message
(raising InvalidParameter for bad fields)."""


class BadMessage(ValueError):
    """A message the session cannot act on; `str(exc)` is what the client is told."""


def error_frame(message: str, param: str | None = None) -> bytes:
    """`{"type":"error","message":...[,"param":...]}` as a text frame."""
    body = {"type": "error", "message": message}
    if param is not None:
        body["param"] = param
    return text_frames([compact_json(body)])


def parse_message(data: str | bytes, types: Iterable[str]) -> tuple[str, dict]:
    """The message's type and body; BadMessage unless a JSON object with a known `type`."""
    if not isinstance(data, str):
        raise BadMessage("messages must be JSON text frames, not binary")
    try:
        body = parse_json(data)
    except InvalidJSON as exc:
        raise BadMessage(f"the message is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadMessage("the message must be a JSON object")
    kind = body.get("type")
    if kind not in types:
        expected = ", ".join(sorted(types))
        raise BadMessage(f"unknown message type {kind!r}; expected one of: {expected}")
    return kind, body


class Session:
    """Serves one connection (a simple-websocket Server built with `server_options()`).

    Runs in the connection's greenlet; it spawns one greenlet per generation, never one per
    idle connection. Not shared between connections.
    """

    __slots__ = ("_ending", "_expires_at", "_lifetimes", "_metrics", "_running", "_starts",
                 "_transport", "_ws", "socket")

    def __init__(self, ws: Any, starts: Starts, *, metrics: StreamMetrics,
                 write_timeout: float | None, transport: str = "ws",
                 lifetimes: Lifetimes | None = None, expires_at: float | None = None) -> None:
        """`expires_at`: the Unix time the connection's token ends (closed then with 4001)."""
        if not isinstance(ws.thread, InlineReader) or not isinstance(ws.event, MessageSignal):
            # A reader greenlet of its own would race the one `serve` runs.
            raise RuntimeError("build the WebSocket server with websocket.server_options()")
        self._ws = ws
        self._starts = starts
        self._metrics = metrics
        self._transport = transport
        self._lifetimes = lifetimes
        self._expires_at = expires_at
        # Set when the connection ends: by the server on purpose (a restart reason) or closed.
        self._ending = Cancellation()
        # The generation's greenlet and its cancellation, only while one runs: an idle
        # connection keeps as little as it can.
        self._running: tuple[gevent.Greenlet, Cancellation] | None = None
        # Nothing has read or written since the handshake (the reader is not running yet),
        # so from here on every write, simple-websocket's included, goes through the lock.
        self.socket = ws.sock = LockedSocket(ws.sock, write_timeout)

    def serve(self) -> None:
        """Handle messages until the connection ends, then stop the generation if one runs."""
        self._ws.event.on_set = self._drain
        self._ending.on_cancel(self._on_ending)
        lease = self._lifetimes.track(self._ending) if self._lifetimes is not None else None
        expiry = None if self._expires_at is None else expire_at(self._expires_at, self._ending)
        try:
            self._ws.thread.run()
        except Exception:
            # A bug in a handler. Left alone it would reach Flask, whose 500 would be written
            # as HTTP onto the upgraded socket: end the connection as WebSocket says instead.
            log.exception("websocket message handler failed")
            self._fail()
        finally:
            if lease is not None:
                lease.release()
            if expiry is not None:
                expiry.close()
            self._ending.cancel(CLOSED)
            self._ws.event.on_set = None
            self._stop(DISCONNECT)

    def _fail(self) -> None:
        """End the generation, send an error message, close with 1011 (internal error)."""
        if self._running is not None:
            job, cancellation = self._running
            cancellation.cancel(FAILED)
            # Not killed: it finishes the frame it may be writing and its closing message
            # (each write bounded by the write timeout), so nothing follows the close frame.
            job.join()
        with suppress(OSError, ConnectionClosed):
            self.socket.send(error_frame("the server failed to handle a message"))
            self._ws.close(INTERNAL_ERROR, "internal error")
        # The exception unwound simple-websocket's reader loop past its own close().
        self.socket.close()

    def _drain(self) -> None:
        # Called by the reader loop whenever it queued a message or the connection ended.
        while True:
            try:
                data = self._ws.receive(timeout=0)
            except ConnectionClosed:
                return
            if data is None:
                return
            self._handle(data)

    def _handle(self, data: str | bytes) -> None:
        if self._ending.cancelled:  # closing with 1012: nothing may follow the close frame
            return
        try:
            kind, body = parse_message(data, ("cancel", *self._starts))
            if kind == "cancel":
                if self._running is not None:
                    self._running[1].cancel(CANCELLED)
            else:
                self._start(self._starts[kind](body))
        except BadMessage as exc:
            self.socket.send(error_frame(str(exc)))
        except InvalidParameter as exc:
            self.socket.send(error_frame(exc.message, exc.param))

    def _start(self, generation: Generation) -> None:
        if self._running is not None:
            job, cancellation = self._running
            if not cancellation.cancelled:
                raise BadMessage("a generation is already running; send {\"type\":\"cancel\"} "
                                 "first")
            job.join()  # woken by the cancel, it is writing its closing message
        cancellation = Cancellation()
        self._running = (gevent.spawn(self._run, generation, cancellation), cancellation)

    def _run(self, generation: Generation, cancellation: Cancellation) -> None:
        with CountedStream(self._metrics, self._transport, cancellation) as tally:
            try:
                for batch in generation.source().batches(None, cancellation):
                    self.socket.send(generation.frames(batch))
                    tally.add(len(batch))
                if cancellation.reason != DISCONNECT and cancellation.reason not in ENDINGS:
                    closing = generation.finish()
                    if closing:
                        self.socket.send(closing)
            except OSError:  # the peer is gone (reset, closed, or stopped reading)
                cancellation.cancel(DISCONNECT)
            except Exception:
                log.exception("websocket generation failed")
                self._report_failure()
            finally:
                if self._running is not None and self._running[1] is cancellation:
                    self._running = None

    def _report_failure(self) -> None:
        with suppress(OSError):
            self.socket.send(error_frame("the generation failed"))

    def _on_ending(self) -> None:
        # Called from the hub or a stagger greenlet, which must not block: restart in a greenlet.
        if self._ending.reason in ENDINGS:
            gevent.spawn(self._restart, self._ending.reason)

    def _restart(self, reason: str) -> None:
        """Stop the generation, close with 1012 (4001 for an expired token) and, if the peer
        does not answer, cut."""
        if self._running is not None:
            job, cancellation = self._running
            cancellation.cancel(reason)
            job.join(RESTART_WAIT_SECONDS)  # a write in progress finishes: no half frame
            if not job.dead:
                self.socket.abort()
                return
        with suppress(ConnectionClosed, OSError):
            if self._ws.connected:
                self._ws.close(*ENDINGS[reason])
        gevent.sleep(RESTART_WAIT_SECONDS)
        self.socket.abort()  # a no-op once the connection is closed

    def _stop(self, reason: str) -> None:
        if self._running is not None:
            job, cancellation = self._running
            cancellation.cancel(reason)
            # The socket is closed by now: the generation cannot be mid-frame to anyone.
            job.kill()
