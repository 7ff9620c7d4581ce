"""EventStream driven the way gunicorn drives a WSGI body: iterate, then close()."""

import errno
import socket

import gevent
import pytest

from generation.events import End, Start, Token
from generation.formats import NDJSONFormat, SSEFormat, TextFormat
from streaming.cancellation import Cancellation
from streaming.metrics import EventTally
from streaming.pipeline import EventStream
from streaming.shutdown import MAX_AGE, Lifetimes
from streaming.sources import PacedSource, ProducerSource
from tests.support.fakes import RecordingMetrics


def _stream(source, fmt=None, heartbeat=15.0, metrics=None):
    return EventStream(source, fmt or SSEFormat(3000), environ={}, heartbeat=heartbeat,
                       transport="sse", metrics=metrics or RecordingMetrics())


def test_an_empty_first_write_goes_out_before_the_source_runs():
    # gunicorn sends the headers with it: the client sees the response start at once.
    stream = _stream(PacedSource([(10.0, Token(0, "late"))]))
    assert next(iter(stream)) == b""
    stream.close()


def test_a_stream_writes_every_event_and_settles_its_metrics(stream_metrics):
    metrics = stream_metrics
    items = [(0.0, Start("demo", 2)), (0.0, Token(0, " a")), (0.0, Token(1, " b")),
             (0.0, End("stop", 2))]
    body = b"".join(_stream(PacedSource(items), metrics=metrics))
    assert body.count(b"\n\n") == 4  # four events, each one block
    assert (metrics.active, metrics.events, metrics.disconnects) == (0, 4, 0)


def test_heartbeat_while_idle():
    stream = _stream(PacedSource([(0.25, Token(0, "x"))]), heartbeat=0.1)
    chunks = list(stream)
    assert chunks[1:3] == [b": ping\n", b": ping\n"]
    assert chunks[-1] == b"retry: 3000\nid: 0\ndata: x\n\n"


def test_ndjson_heartbeat_is_a_blank_line_and_text_has_none():
    idle = [(0.15, Token(0, "x"))]
    assert b"\n" in list(_stream(PacedSource(idle), NDJSONFormat(), heartbeat=0.1))
    assert list(_stream(PacedSource(idle), TextFormat(), heartbeat=0.1)) == [b"", b"x"]


def test_close_mid_stream_counts_a_disconnect_and_kills_the_producer(stream_metrics):
    metrics = stream_metrics
    finished = []

    def produce(emit):
        try:
            while True:
                emit(Token(0, "x"))
        finally:
            finished.append(True)

    stream = _stream(ProducerSource(produce), metrics=metrics)
    body = iter(stream)
    next(body)
    next(body)
    stream.close()  # what gunicorn does after a failed write
    gevent.sleep(0.01)
    assert finished == [True]
    assert (metrics.active, metrics.disconnects) == (0, 1)


def test_cancellation_while_idle_ends_the_stream(stream_metrics):
    metrics = stream_metrics
    cancellation = Cancellation()
    stream = EventStream(PacedSource([(30.0, Token(0, "x"))]), SSEFormat(3000), environ={},
                         heartbeat=15.0, transport="sse", metrics=metrics,
                         cancellation=cancellation)
    gevent.spawn_later(0.05, cancellation.cancel, "disconnect")
    assert list(stream) == [b""]
    assert (metrics.active, metrics.disconnects) == (0, 1)


def test_a_failing_source_ends_with_the_error_record():
    def items():
        yield 0.0, Token(0, "kept")
        raise RuntimeError("secret internals")

    body = b"".join(_stream(PacedSource(items())))
    assert body.endswith(b'event: error\ndata: {"type":"stream_error",'
                         b'"message":"the stream failed before it could finish"}\n\n')
    assert b"kept" in body
    assert b"secret" not in body


def _tracked(fmt, lifetimes):
    return EventStream(PacedSource([(30.0, Token(0, "x"))]), fmt, environ={}, heartbeat=15.0,
                       transport="sse", metrics=RecordingMetrics(), lifetimes=lifetimes)


def test_a_stopping_worker_ends_the_stream_with_the_restart_record():
    lifetimes = Lifetimes()
    stream = _tracked(SSEFormat(3000), lifetimes)
    gevent.spawn_later(0.05, lifetimes.stop_all, 0)
    assert list(stream) == [b"", SSEFormat(3000).restart("server_restart")]
    assert lifetimes.open == 0


def test_the_maximum_age_ends_the_stream_with_the_restart_record():
    stream = _tracked(NDJSONFormat(), Lifetimes(max_age=0.05))
    assert list(stream) == [b"", b'{"type":"restart","reason":"max_age"}\n']


def test_a_format_without_a_restart_record_ends_with_its_failure_record():
    lifetimes = Lifetimes(max_age=0.05)
    fmt = NDJSONFormat()
    fmt.restart = None  # as the proxy's and the mock's formats: no way to resume
    chunks = list(_tracked(fmt, lifetimes))
    record = chunks[-1].decode()
    assert '"type":"error"' in record and f'"type":"{MAX_AGE}"' in record
    assert "send the request again" in record

def _fails_after_one_token():
    yield 0.0, Token(0, "kept")
    raise RuntimeError("internal detail")


def test_a_client_leaving_while_the_error_record_is_written_counts_a_disconnect(stream_metrics):
    stream = _stream(PacedSource(_fails_after_one_token()), metrics=stream_metrics)
    body = iter(stream)
    assert next(body) == b""
    assert b"kept" in next(body)
    assert next(body).startswith(b"event: error")  # gunicorn's write of it fails...
    stream.close()  # ...and it closes the body
    assert stream_metrics.ends == [("sse", True)]


class GoneClientSocket:
    """gunicorn's client socket after the peer left: shutdown() raises ENOTCONN."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def fileno(self) -> int:
        return self._sock.fileno()

    def shutdown(self, how: int) -> None:
        raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")


def test_cutting_the_connection_of_a_client_that_left_counts_a_disconnect(stream_metrics):
    ours, theirs = socket.socketpair()
    with ours, theirs:
        stream = EventStream(PacedSource(_fails_after_one_token()), TextFormat(),
                             environ={"gunicorn.socket": GoneClientSocket(ours)},
                             heartbeat=15.0, transport="text", metrics=stream_metrics)
        assert b"".join(stream) == b"kept"  # and no OSError out of the body
    assert stream_metrics.ends == [("text", True)]


def test_heartbeat_must_be_positive():
    with pytest.raises(ValueError, match="heartbeat"):
        _stream(PacedSource([]), heartbeat=0)


def test_event_tally_reports_at_most_once_a_second(monkeypatch, stream_metrics):
    metrics = stream_metrics
    reports = []
    metrics.sent = lambda transport, events: reports.append(events)
    clock = iter([0.0, 0.1, 0.5, 1.2, 1.3, 2.5])
    monkeypatch.setattr("streaming.metrics.time.monotonic", lambda: next(clock))
    tally = EventTally(metrics, "sse")  # reads the clock: 0.0
    for events in (1, 2, 3, 4, 5):
        tally.add(events)  # at 0.1, 0.5, 1.2 (reports 6), 1.3, 2.5 (reports 9)
    tally.flush()  # nothing left unreported
    assert reports == [6, 9]


def test_event_tally_flush_reports_the_remainder(stream_metrics):
    metrics = stream_metrics
    tally = EventTally(metrics, "sse")
    tally.add(3)
    assert metrics.events == 0
    tally.flush()
    tally.flush()
    assert metrics.events == 3


@pytest.mark.parametrize("started", [True, False])
def test_close_callbacks_run_once_whether_or_not_the_body_was_iterated(started):
    closed = []
    stream = _stream(PacedSource([(0.0, Token(0, "x"))]))
    stream.call_on_close(lambda: closed.append(True))
    if started:
        list(stream)
    stream.close()
    stream.close()
    assert closed == [True]
