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


# --- parser vectors (WHATWG "Interpreting an event stream") -----------------------------


def _ev(data: str, type: str = "message", last_event_id: str = "") -> ParsedEvent:
    return ParsedEvent(data, type, last_event_id)


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        pytest.param(b"\xef\xbb\xbfdata: x\n\n", [_ev("x")], id="bom-at-start-stripped"),
        pytest.param(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n", [], id="only-one-bom-stripped"),
        pytest.param(
            b"data: a\n\n\xef\xbb\xbfdata: b\n\n", [_ev("a")], id="bom-later-is-not-stripped"
        ),
        pytest.param(b"data: \xef\xbb\xbfb\n\n", [_ev("\ufeffb")], id="bom-in-value-kept"),
        pytest.param(b"data: a\r\rdata: b\r\r", [_ev("a"), _ev("b")], id="cr"),
        pytest.param(b"data: a\n\ndata: b\n\n", [_ev("a"), _ev("b")], id="lf"),
        pytest.param(b"data: a\r\n\r\ndata: b\r\n\r\n", [_ev("a"), _ev("b")], id="crlf"),
        pytest.param(b"data: a\rdata: b\r\ndata: c\n\r\n", [_ev("a\nb\nc")], id="mixed"),
        pytest.param(b"data: a\n\r\r\n", [_ev("a")], id="lf-cr-crlf-is-one-blank-line-plus"),
        pytest.param(b"data:  x\n\n", [_ev(" x")], id="one-space-stripped"),
        pytest.param(b"data:x\n\n", [_ev("x")], id="no-space"),
        pytest.param(b"data:\n\n", [_ev("")], id="empty-value"),
        pytest.param(b"data: a:b\n\n", [_ev("a:b")], id="colon-in-value"),
        pytest.param(b"data\ndata\n\n", [_ev("\n")], id="bare-data-is-empty-line"),
        pytest.param(b"data\ndata: x\n\n", [_ev("\nx")], id="leading-empty-data-kept"),
        pytest.param(b"data: a\ndata: \n\n", [_ev("a\n")], id="trailing-empty-data-kept"),
        pytest.param(b"data: x\n\n", [_ev("x")], id="single"),
        pytest.param(b"event: add\ndata: 1\n\n", [_ev("1", "add")], id="event-type"),
        pytest.param(b"event:\ndata: 1\n\n", [_ev("1")], id="empty-type-is-message"),
        pytest.param(
            b"event: a\nevent: b\ndata: 1\n\n", [_ev("1", "b")], id="last-event-field-wins"
        ),
        pytest.param(
            b"event: lost\n\ndata: 1\n\n", [_ev("1")], id="type-without-data-does-not-leak"
        ),
        pytest.param(b"\n\n\n", [], id="blank-lines-dispatch-nothing"),
        pytest.param(b": hi\n:\n\n", [], id="comments-only"),
        pytest.param(b": c\ndata: 1\n: d\n\n", [_ev("1")], id="comments-ignored"),
        pytest.param(
            b"id: 1\ndata: a\n\ndata: b\n\n",
            [_ev("a", last_event_id="1"), _ev("b", "message", "1")],
            id="id-persists",
        ),
        pytest.param(
            b"id: 1\ndata: a\n\nid\ndata: b\n\n",
            [_ev("a", last_event_id="1"), _ev("b")],
            id="bare-id-resets",
        ),
        pytest.param(
            b"id: 1\ndata: a\n\nid: \ndata: b\n\n",
            [_ev("a", last_event_id="1"), _ev("b")],
            id="empty-id-resets",
        ),
        pytest.param(
            b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n",
            [_ev("a", last_event_id="1"), _ev("b", last_event_id="1")],
            id="id-with-nul-ignored",
        ),
        pytest.param(
            b"id: 5\n\ndata: a\n\n", [_ev("a", last_event_id="5")], id="id-without-data-kept"
        ),
        pytest.param(b"id:  7\ndata: a\n\n", [_ev("a", last_event_id=" 7")], id="id-one-space"),
        pytest.param(b"foo: bar\ndata: a\nDATA: b\n\n", [_ev("a")], id="unknown-fields-ignored"),
        pytest.param(b"data : a\n\n", [], id="field-name-is-exact"),
        pytest.param(b"event\ndata: a\n\n", [_ev("a")], id="bare-event-is-empty-type"),
        pytest.param(b"foo\nretry\ndata: a\n\n", [_ev("a")], id="bare-other-fields-ignored"),
        pytest.param(b"data: a\n\ndata: b\n", [_ev("a")], id="incomplete-event-discarded"),
        pytest.param(b"data: a\n\ndata: b", [_ev("a")], id="incomplete-line-discarded"),
        pytest.param(b"data: \xff\xfeok\n\n", [_ev("\ufffd\ufffdok")], id="invalid-utf8"),
        pytest.param("data: 流式 🙂\n\n".encode(), [_ev("流式 🙂")], id="non-ascii"),
        pytest.param(b"data: a\x00b\n\n", [_ev("a\x00b")], id="nul-in-data-kept"),
    ],
)
def test_parse_vectors(stream: bytes, expected: list[ParsedEvent]) -> None:
    assert parse(stream) == expected
    assert parse(stream.decode("utf-8", errors="replace")) == expected


@pytest.mark.parametrize(
    ("stream", "retry"),
    [
        (b"retry: 500\n\n", 500),
        (b"retry:500\n\n", 500),
        (b"retry: 0\n\n", 0),
        (b"retry: 12a\n\n", None),
        (b"retry: -1\n\n", None),
        (b"retry: \n\n", None),
        (b"retry: 1.5\n\n", None),
        (b"retry: \xc2\xb2\n\n", None),  # superscript two: a digit, but not ASCII
        (b"retry: 500\n\nretry: x\n\n", 500),
        (b"retry: 500\n", 500),  # takes effect at once, not at dispatch
    ],
)
def test_retry(stream: bytes, retry: int | None) -> None:
    parser = SSEParser()
    parser.feed(stream)
    assert parser.retry == retry


def test_last_event_id_is_committed_on_blank_line() -> None:
    parser = SSEParser()
    assert parser.feed(b"id: 9\n") == []
    assert parser.last_event_id == ""
    assert parser.feed(b"\n") == []
    assert parser.last_event_id == "9"


def test_close_discards_incomplete_event_and_its_id() -> None:
    parser = SSEParser()
    assert parser.feed(b"id: 1\ndata: a\n\nid: 2\ndata: b\n") == [_ev("a", last_event_id="1")]
    assert parser.close() == []
    assert parser.last_event_id == "1"
    # A new stream (a reconnection) starts clean but keeps the last event id.
    assert parser.feed(b"\xef\xbb\xbfdata: c\n\n") == [_ev("c", last_event_id="1")]


def test_cr_at_chunk_end_dispatches_without_waiting() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r\r") == [_ev("a")]
    # The LF that completes the CRLF must not count as another line end.
    assert parser.feed(b"\ndata: b\r") == []
    assert parser.feed(b"\n") == []
    assert parser.feed(b"\n") == [_ev("b")]


# --- incremental feeding ----------------------------------------------------------------

_SPLIT_STREAM = (
    b"\xef\xbb\xbf: comment\r\n"
    b"event: \xe6\xb5\x81\r\nid: 1\r\ndata: \xe5\xbc\x8f \xf0\x9f\x99\x82\r\r"
    b"data\ndata:x\n\n"
    b"retry: 250\rid: \rdata: a\r\n\r\n"
    b"data: \xff tail\n\n"
    b"data: incomplete"
)


def _feed_all(parser: SSEParser, chunks: list[bytes]) -> list[ParsedEvent]:
    events: list[ParsedEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    events.extend(parser.close())
    return events


def test_split_stream_reference() -> None:
    assert parse(_SPLIT_STREAM) == [
        _ev("式 🙂", "流", "1"),
        _ev("\nx", "message", "1"),
        _ev("a", "message", ""),
        _ev("\ufffd tail", "message", ""),
    ]


@pytest.mark.parametrize("cut", range(1, len(_SPLIT_STREAM)))
def test_split_at_every_byte(cut: int) -> None:
    parser = SSEParser()
    chunks = [_SPLIT_STREAM[:cut], _SPLIT_STREAM[cut:]]
    assert _feed_all(parser, chunks) == parse(_SPLIT_STREAM)
    assert parser.retry == 250


def test_byte_by_byte() -> None:
    chunks = [_SPLIT_STREAM[i : i + 1] for i in range(len(_SPLIT_STREAM))]
    assert _feed_all(SSEParser(), chunks) == parse(_SPLIT_STREAM)


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
