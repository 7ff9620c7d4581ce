import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from generation.events import End, Start, Token
from generation.formats import NDJSONFormat, SSEFormat, TextFormat
from streaming.encoding import compact_json
from streaming.failure import Failure
from streaming.sse import parse

EVENTS = [Start("demo", 2), Token(0, " 流式"), Token(1, "\n"), End("stop", 2)]


def test_sse_chunk_bytes_with_retry_in_the_first_event_only():
    fmt = SSEFormat(3000)
    assert fmt.preamble() == b""
    assert fmt.chunk(EVENTS[:2]) == (
        'retry: 3000\nevent: start\ndata: {"model":"demo","tokens":2}\n\n'
        "id: 0\ndata:  流式\n\n"
    ).encode()
    assert fmt.chunk(EVENTS[2:]) == (
        b"id: 1\ndata: \ndata: \n\n"
        b'event: end\ndata: {"finish_reason":"stop","tokens":2}\n\n'
    )


def test_sse_resumed_stream_sets_retry_in_its_first_token():
    assert SSEFormat(500).chunk([Token(7, "x")]) == b"retry: 500\nid: 7\ndata: x\n\n"


def test_sse_no_block_without_data():
    """Every block has data: httpx-sse would yield an empty event for one without."""
    fmt = SSEFormat(3000)
    body = fmt.chunk(EVENTS) + fmt.failure(Failure("stream_error", "gone"))
    blocks = body.decode().split("\n\n")[:-1]
    assert len(blocks) == 5
    assert all("\ndata: " in "\n" + block for block in blocks)
    assert parse(body)[0].type == "start"


@pytest.mark.parametrize("retry_ms", [-1, 1.5, True, "3000"])
def test_sse_retry_must_be_a_non_negative_int(retry_ms):
    with pytest.raises(ValueError, match="retry_ms"):
        SSEFormat(retry_ms)


def test_sse_tokens_survive_a_spec_parser():
    parsed = parse(SSEFormat(3000).chunk(EVENTS))
    assert [e.data for e in parsed[1:3]] == [" 流式", "\n"]
    assert [e.last_event_id for e in parsed[1:3]] == ["0", "1"]


def test_sse_failure_record():
    fmt = SSEFormat(3000)
    fmt.chunk([EVENTS[0]])
    record = fmt.failure(Failure("stream_error", "gone"))
    assert record == b'event: error\ndata: {"type":"stream_error","message":"gone"}\n\n'


def test_sse_failure_before_any_event_sets_retry():
    record = SSEFormat(3000).failure(Failure("stream_error", "gone"))
    assert record.startswith(b"retry: 3000\nevent: error\n")


def test_ndjson_lines():
    lines = NDJSONFormat().chunk(EVENTS).decode().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"type": "start", "model": "demo", "tokens": 2},
        {"type": "token", "index": 0, "text": " 流式"},
        {"type": "token", "index": 1, "text": "\n"},
        {"type": "end", "finish_reason": "stop", "tokens": 2},
    ]
    failure = json.loads(NDJSONFormat().failure(Failure("stream_error", "gone")))
    assert failure == {"type": "error", "error": {"type": "stream_error", "message": "gone"}}


def test_text_is_only_the_tokens_and_cannot_report_a_failure():
    fmt = TextFormat()
    assert fmt.chunk(EVENTS) == " 流式\n".encode()
    assert fmt.heartbeat is None
    assert fmt.failure(Failure("stream_error", "gone")) is None


# Finite numbers only: compact_json refuses NaN and the infinities (test_encoding.py).
FINITE = st.floats(allow_nan=False, allow_infinity=False)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | FINITE | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(JSON)
def test_compact_json_is_json_dumps_without_spaces(value):
    assert compact_json(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def test_compact_json_keeps_unicode_and_escapes_controls():
    value = {"text": ' 流式 🚀 "q" \\ \n\x00\u2028'}
    assert json.loads(compact_json(value)) == value
    assert "流式" in compact_json(value)


def test_sse_restart_record_is_a_named_event_with_retry_and_data():
    record = SSEFormat(2500).restart("server_restart")
    assert record == b'event: restart\nretry: 2500\ndata: {"reason":"server_restart"}\n\n'
    [event] = parse(record)  # dispatched (it has data), and never a default `message` event
    assert event.type == "restart"


def test_ndjson_restart_line():
    assert NDJSONFormat().restart("max_age") == b'{"type":"restart","reason":"max_age"}\n'


def test_plain_text_has_no_restart_record():
    assert not hasattr(TextFormat(), "restart")
