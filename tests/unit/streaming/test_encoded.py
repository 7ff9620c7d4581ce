"""streaming/encoded.py: the format of events encoded once for many streams."""

from __future__ import annotations

from streaming.encoded import EncodedSSEFormat, error_event, json_event
from streaming.failure import Failure
from streaming.sse import parse


def test_batches_are_written_as_they_are():
    fmt = EncodedSSEFormat(retry_ms=1500)
    assert fmt.media_type == "text/event-stream"
    assert fmt.preamble() == b""
    assert fmt.heartbeat == b": ping\n"
    assert fmt.chunk([b"id: 1\ndata: a\n\n", b"id: 2\ndata: b\n\n"]) == (
        b"retry: 1500\nid: 1\ndata: a\n\nid: 2\ndata: b\n\n")
    assert fmt.chunk([b"id: 3\ndata: c\n\n"]) == b"id: 3\ndata: c\n\n"


def test_retry_rides_in_a_failure_that_comes_first():
    failure = Failure("overflow", "behind")
    assert EncodedSSEFormat(10).failure(failure) == b"retry: 10\n" + error_event(failure)


def test_a_failure_is_an_error_event():
    failure = Failure("overflow", "behind\nby a lot")
    assert error_event(failure) == (
        b'event: error\ndata: {"type":"overflow","message":"behind\\nby a lot"}\n\n')
    [event] = parse(error_event(failure))
    assert event.type == "error"


def test_a_json_event_carries_its_type_id_and_compact_json():
    assert json_event("reset", {"reason": "rotated"}, id="0") == (
        b'event: reset\nid: 0\ndata: {"reason":"rotated"}\n\n')
    assert json_event("overflow", {"n": 1}) == b'event: overflow\ndata: {"n":1}\n\n'
