"""Tests for llm.relay: header rules, the pass-through format, the producer over a body."""

from __future__ import annotations

import gzip
import io
import socket

import gevent
import pytest
import requests
from urllib3 import HTTPResponse

from llm.relay import (
    BROKEN,
    STALLED,
    PassThroughFormat,
    Relay,
    connection_listed,
    end_to_end,
)
from llm.wire import error_event
from streaming.cancellation import Cancellation
from streaming.sources import ProducerFailed
from testbed.loopback import LoopbackServer
from testbed.raw_http import chunked, read_request
from tests.support.fake_upstream import SSE_HEAD


class Body(io.RawIOBase):
    """An upstream body arriving in `pieces`, then `error` (or the end); `wait` blocks a read."""

    def __init__(self, pieces: list[bytes], error: BaseException | None = None,
                 wait: float = 0) -> None:
        self.pieces = list(pieces)
        self.error = error
        self.wait = wait

    def readable(self) -> bool:
        return True

    def read1(self, size: int = -1) -> bytes:
        if self.wait:  # a read of data already buffered returns without switching greenlets
            gevent.sleep(self.wait)
        if self.pieces:
            return self.pieces.pop(0)
        if self.error is not None:
            raise self.error
        return b""


def _relay(body: io.RawIOBase, headers: list[tuple[str, str]], status: int = 200) -> Relay:
    response = requests.Response()
    response.status_code = status
    response.raw = HTTPResponse(body=body, headers=headers, status=status,
                                preload_content=False, decode_content=False)
    return Relay(response)


SSE = [("Content-Type", "text/event-stream; charset=utf-8")]


def test_connection_lists_more_hop_by_hop_names():
    assert connection_listed([("Connection", "Keep-Alive, X-A ,x-b"), ("X-A", "1")]) == {
        "keep-alive", "x-a", "x-b"}


def test_end_to_end_drops_hop_by_hop_and_keeps_repeats_in_order():
    headers = [("Connection", "close, X-Hop"), ("X-Hop", "1"), ("keep-alive", "5"),
               ("TE", "trailers"), ("Trailer", "X-Sum"), ("Transfer-Encoding", "chunked"),
               ("Upgrade", "h2c"), ("Proxy-Authenticate", "Basic"), ("Proxy-Foo", "1"),
               ("Set-Cookie", "a=1"), ("X-Request-Id", "r"), ("Set-Cookie", "b=2"),
               ("Content-Length", "3")]
    assert end_to_end(headers, {"content-length"}) == [
        ("Set-Cookie", "a=1"), ("X-Request-Id", "r"), ("Set-Cookie", "b=2")]


def test_response_headers_of_a_relay():
    relay = _relay(Body([]), [*SSE, ("Content-Length", "9"), ("Content-Encoding", "identity"),
                              ("Date", "x"), ("Server", "up"), ("Retry-After", "3"),
                              ("openai-version", "2020-10-01"), ("Set-Cookie", "a=1"),
                              ("Set-Cookie", "b=2")], status=429)
    assert relay.status == 429
    assert relay.event_stream
    assert relay.headers == [*SSE, ("Retry-After", "3"), ("openai-version", "2020-10-01"),
                             ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]


def test_pieces_are_relayed_unchanged_and_queued_ones_joined():
    pieces = [b"data: a\n", b"\ndata: b\r\n\r\n", b"\xe6\xb5", b"\x81 no newline"]
    relay = _relay(Body(pieces), SSE)
    batches = list(relay.batches(None, Cancellation()))
    assert b"".join(relay.format.chunk(batch) for batch in batches) == b"".join(pieces)
    assert len(batches) < len(pieces)  # the producer ran ahead: one write for several reads


def test_a_compressed_body_is_decoded_since_content_encoding_is_dropped():
    data = b"data: compressed\n\n" * 50
    relay = _relay(Body([gzip.compress(data)]), [*SSE, ("Content-Encoding", "gzip")])
    assert ("Content-Encoding", "gzip") not in relay.headers
    assert b"".join(b"".join(batch) for batch in relay.batches(None, Cancellation())) == data


@pytest.mark.parametrize(("error", "failure"), [
    (TimeoutError("timed out"), STALLED),
    (ConnectionResetError(104, "reset"), BROKEN),
])
def test_a_failing_body_raises_what_the_client_is_told(error, failure):
    relay = _relay(Body([b"data: a\n\n"], error), SSE)
    got = []
    with pytest.raises(ProducerFailed) as caught:
        got.extend(relay.batches(None, Cancellation()))
    assert got == [[b"data: a\n\n"]]
    assert caught.value.__cause__.failure == failure


def test_cancellation_kills_the_reader_and_closes_the_upstream():
    body = Body([b"data: a\n\n"] * 1000, wait=0.01)
    relay = _relay(body, SSE)
    cancellation = Cancellation()
    gevent.spawn_later(0.05, cancellation.cancel)
    list(relay.batches(None, cancellation))
    gevent.sleep(0.01)  # the kill is delivered on the next turn of the loop
    assert body.closed
    assert len(body.pieces) > 900


def test_close_without_reading_releases_the_response():
    body = Body([b"never read"])
    _relay(body, SSE).close()
    assert body.closed


def test_format_joins_and_reports_failures_only_on_event_streams():
    fmt = PassThroughFormat("application/json", event_stream=False)
    assert fmt.chunk([b'{"a"', b":1}"]) == b'{"a":1}'
    assert fmt.failure(BROKEN) is None
    assert fmt.heartbeat is None


@pytest.mark.parametrize(("last", "prefix"), [
    (b"data: a\n\n", b""),
    (b"data: a\r\n\r\n", b""),
    (b"data: a\r\r", b""),
    (b"data: a\n", b"\n\n"),
    (b'data: {"choi', b"\n\n"),
])
def test_failure_after_an_unfinished_event_starts_a_new_one(last, prefix):
    fmt = PassThroughFormat("text/event-stream", event_stream=True)
    assert fmt.chunk([b"data: first\n\n", last]) == b"data: first\n\n" + last
    assert fmt.failure(STALLED) == prefix + error_event(STALLED)


class ChunkedUpstream(LoopbackServer):
    """A keep-alive upstream answering every request with `body` (raw bytes after a chunked
    head), in one write; `close_after` closes the connection after the first answer."""

    def __init__(self, body: bytes, close_after: bool = False) -> None:
        self.body, self.close_after = body, close_after
        super().__init__()

    def handle(self, connection: socket.socket, number: int) -> None:
        with connection.makefile("rb") as incoming:
            while read_request(incoming):
                connection.sendall(SSE_HEAD + self.body)
                if self.close_after:
                    return


EVENTS = [b'data: {"n":%d}\n\n' % i for i in range(50)]


@pytest.fixture
def session():
    with requests.Session() as session:
        yield session


def test_every_chunk_that_arrived_together_is_handed_over_at_once(session):
    with ChunkedUpstream(chunked(EVENTS)) as upstream:
        relay = Relay(session.get(upstream.url, stream=True, timeout=5))
        batches = list(relay.batches(None, Cancellation()))
    assert batches == [[b"".join(EVENTS)]]  # one piece, not one per event


def test_the_connection_goes_back_to_the_pool_after_a_chunked_body(session):
    with ChunkedUpstream(chunked(EVENTS)) as upstream:
        for _ in range(3):
            relay = Relay(session.get(upstream.url, stream=True, timeout=5))
            assert b"".join(b"".join(b) for b in relay.batches(None, Cancellation())) == (
                b"".join(EVENTS))
    assert upstream.connections == 1


@pytest.mark.parametrize("body", [
    chunked(EVENTS)[:-20],  # cut before the last chunk
    b"zz\r\ndata: bad size\r\n",  # not chunked framing at all
])
def test_a_chunked_body_cut_or_malformed_is_broken(session, body):
    with ChunkedUpstream(body, close_after=True) as upstream:
        relay = Relay(session.get(upstream.url, stream=True, timeout=5))
        with pytest.raises(ProducerFailed) as caught:
            list(relay.batches(None, Cancellation()))
    assert caught.value.__cause__.failure == BROKEN
