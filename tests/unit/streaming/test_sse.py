"""Tests for streaming.sse: the encoder byte for byte, the parser against WHATWG rules."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streaming.sse import HEARTBEAT, ParsedEvent, ServerSentEvent, SSEParser, parse

# --- encoder ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        pytest.param(ServerSentEvent("token"), b"data: token\n\n", id="plain"),
        pytest.param(ServerSentEvent(" hello"), b"data:  hello\n\n", id="leading-space"),
        pytest.param(ServerSentEvent(""), b"data: \n\n", id="empty-data"),
        pytest.param(ServerSentEvent("a\nb"), b"data: a\ndata: b\n\n", id="lf"),
        pytest.param(ServerSentEvent("a\r\nb"), b"data: a\ndata: b\n\n", id="crlf"),
        pytest.param(ServerSentEvent("a\rb"), b"data: a\ndata: b\n\n", id="cr"),
        pytest.param(
            ServerSentEvent("a\r\nb\rc\nd\r\re"),
            b"data: a\ndata: b\ndata: c\ndata: d\ndata: \ndata: e\n\n",
            id="mixed",
        ),
        pytest.param(ServerSentEvent("\r\r\n"), b"data: \ndata: \ndata: \n\n", id="cr-then-crlf"),
        pytest.param(ServerSentEvent("a\n"), b"data: a\ndata: \n\n", id="trailing-newline"),
        pytest.param(ServerSentEvent("\n"), b"data: \ndata: \n\n", id="only-newline"),
        pytest.param(
            ServerSentEvent("x\x0by\u2028z"), b"data: x\x0by\xe2\x80\xa8z\n\n", id="not-splitlines"
        ),
        pytest.param(
            ServerSentEvent("tok", event="delta", id="7", retry=3000),
            b"event: delta\nid: 7\nretry: 3000\ndata: tok\n\n",
            id="event-id-retry",
        ),
        pytest.param(ServerSentEvent("t", id="42"), b"id: 42\ndata: t\n\n", id="id-fast-path"),
        pytest.param(ServerSentEvent(id=""), b"id: \n\n", id="empty-id-resets"),
        pytest.param(ServerSentEvent(retry=0), b"retry: 0\n\n", id="retry-only"),
        pytest.param(ServerSentEvent(comment="ping"), b": ping\n\n", id="comment-only"),
        pytest.param(ServerSentEvent(comment="a\r\nb"), b": a\n: b\n\n", id="comment-split"),
        pytest.param(
            ServerSentEvent("d", comment="c", event="e"),
            b": c\nevent: e\ndata: d\n\n",
            id="comment-first",
        ),
        pytest.param(
            ServerSentEvent("流式", event="中文"),
            "event: 中文\ndata: 流式\n\n".encode(),
            id="cjk",
        ),
        pytest.param(ServerSentEvent("🙂"), b"data: \xf0\x9f\x99\x82\n\n", id="emoji"),
    ],
)
def test_encode(event: ServerSentEvent, expected: bytes) -> None:
    assert event.encode() == expected
    assert event.text() == expected.decode("utf-8")


def test_heartbeat_is_a_comment_line_that_ends_no_block() -> None:
    assert HEARTBEAT == b": ping\n"
    assert parse(HEARTBEAT) == []
    stream = b"id: 0\ndata: a\n\n" + HEARTBEAT + HEARTBEAT + b"id: 1\ndata: b\n\n"
    assert [event.data for event in parse(stream)] == ["a", "b"]


def test_event_is_immutable_value() -> None:
    event = ServerSentEvent("x", id="1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.data = "y"  # type: ignore[misc]
    assert event == ServerSentEvent("x", id="1")
    assert hash(event) == hash(ServerSentEvent("x", id="1"))


@pytest.mark.parametrize("field", ["id", "event"])
@pytest.mark.parametrize("bad", ["a\rb", "a\nb", "a\0b", "\n"])
def test_rejects_line_breaks_and_nul_in_id_and_event(field: str, bad: str) -> None:
    with pytest.raises(ValueError, match=field):
        ServerSentEvent("x", **{field: bad})


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_rejects_bad_retry(bad: object) -> None:
    with pytest.raises(ValueError, match="retry"):
        ServerSentEvent("x", retry=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"data": b"bytes"}, "data"),
        ({"data": 1}, "data"),
        ({"id": 1}, "id"),
        ({"event": ""}, "event"),
        ({"comment": 1}, "comment"),
    ],
)
def test_rejects_wrong_types(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ServerSentEvent(**kwargs)  # type: ignore[arg-type]


def test_rejects_event_without_fields() -> None:
    with pytest.raises(ValueError, match="at least one field"):
        ServerSentEvent()


# --- parser ------------------------------------------------------------------------------
# The spec's cases are vectors shared with the JavaScript parser: tests/test_sse_vectors.py.


def _ev(data: str, type: str = "message", last_event_id: str = "") -> ParsedEvent:
    return ParsedEvent(data, type, last_event_id)


def test_cr_at_chunk_end_dispatches_without_waiting() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r\r") == [_ev("a")]
    # The LF that completes the CRLF must not count as another line end.
    assert parser.feed(b"\ndata: b\r") == []
    assert parser.feed(b"\n") == []
    assert parser.feed(b"\n") == [_ev("b")]


def _feed_all(parser: SSEParser, chunks: list[bytes]) -> list[ParsedEvent]:
    events: list[ParsedEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    events.extend(parser.close())
    return events


def test_empty_chunks_keep_pending_cr() -> None:
    assert _feed_all(SSEParser(), [b"data: a\r", b"", b"\n", b"", b"\n"]) == [_ev("a")]


# --- properties -------------------------------------------------------------------------

_names = st.text().filter(lambda s: not any(c in s for c in "\r\n\0"))
# st.text() already excludes surrogates, which cannot be encoded as UTF-8.
_data = st.text() | st.sampled_from(["\r\n", "a\r", "\r\r\n", "\n\n", " x"])


def _events(data: st.SearchStrategy[str | None]) -> st.SearchStrategy[ServerSentEvent]:
    fields = st.fixed_dictionaries(
        {
            "data": data,
            "event": st.none() | _names.filter(bool),
            "id": st.none() | _names,
            "retry": st.none() | st.integers(min_value=0),
            "comment": st.none() | st.text(),
        }
    )
    # An event with no field at all is rejected (tested above); do not generate it.
    return fields.filter(lambda f: any(v is not None for v in f.values())).map(
        lambda f: ServerSentEvent(**f)
    )


def _normalized(data: str) -> str:
    # The wire has no way to say which line break was used: the parser joins with LF.
    return data.replace("\r\n", "\n").replace("\r", "\n")


@settings(max_examples=300)
@given(_events(_data))
def test_round_trip(event: ServerSentEvent) -> None:
    assert event.data is not None
    parser = SSEParser()
    assert _feed_all(parser, [event.encode()]) == [
        ParsedEvent(_normalized(event.data), event.event or "message", event.id or "")
    ]
    assert parser.retry == event.retry


@settings(max_examples=150)
@given(st.lists(_events(st.none() | _data), max_size=8), st.integers(min_value=1, max_value=7))
def test_concatenated_events_in_order(events: list[ServerSentEvent], step: int) -> None:
    stream = b"".join(e.encode() for e in events)
    expected = []
    last_id = ""
    for e in events:
        # An event without data dispatches nothing but still commits its id.
        last_id = e.id if e.id is not None else last_id
        if e.data is not None:
            expected.append(ParsedEvent(_normalized(e.data), e.event or "message", last_id))
    assert parse(stream) == expected
    chunks = [stream[i : i + step] for i in range(0, len(stream), step)]
    assert _feed_all(SSEParser(), chunks) == expected
