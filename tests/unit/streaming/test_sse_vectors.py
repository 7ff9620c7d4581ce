"""The Python SSE parser against tests/sse_vectors.json, the vectors the JavaScript parser
(static/js/sse-parser.js, tests/js/sse-parser.test.js) passes too: the two agree byte for byte.

Every vector is fed whole, split in two at every byte (inside a UTF-8 character and between
CR and LF included) and one byte at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from streaming.sse import SSEParser

VECTORS = json.loads((Path(__file__).parent / "sse_vectors.json").read_text("utf-8"))["vectors"]


def _bytes(vector: dict, key: str) -> bytes:
    if f"{key}_hex" in vector:
        return bytes.fromhex(vector[f"{key}_hex"])
    return vector[key].encode("utf-8")


def _splits(stream: bytes) -> Iterator[list[bytes]]:
    yield [stream]
    for cut in range(1, len(stream)):
        yield [stream[:cut], stream[cut:]]
    yield [stream[i:i + 1] for i in range(len(stream))]


def _outcome(streams: list[list[bytes]]) -> dict:
    """What the parser made of the streams, one connection each, in the vectors' terms."""
    parser = SSEParser()
    events = []
    for chunks in streams:
        for chunk in chunks:
            events.extend(parser.feed(chunk))
        events.extend(parser.close())
    return {"events": [{"type": e.type, "data": e.data, "lastEventId": e.last_event_id}
                       for e in events],
            "lastEventId": parser.last_event_id, "retry": parser.retry}


def test_the_vectors_are_there():
    assert len(VECTORS) > 50
    assert len({vector["name"] for vector in VECTORS}) == len(VECTORS)


@pytest.mark.parametrize("vector", VECTORS, ids=[vector["name"] for vector in VECTORS])
def test_vector(vector: dict) -> None:
    expected = {key: vector[key] for key in ("events", "lastEventId", "retry")}
    stream = _bytes(vector, "stream")
    reconnect = [[vector["reconnect"].encode("utf-8")]] if "reconnect" in vector else []
    for chunks in _splits(stream):
        assert _outcome([chunks, *reconnect]) == expected, chunks


@pytest.mark.parametrize("vector", [v for v in VECTORS if "stream" in v],
                         ids=[v["name"] for v in VECTORS if "stream" in v])
def test_text_is_parsed_like_its_bytes(vector: dict) -> None:
    parser = SSEParser()
    events = parser.feed(vector["stream"]) + parser.close()
    if "reconnect" in vector:
        events += parser.feed(vector["reconnect"]) + parser.close()
    assert [{"type": e.type, "data": e.data, "lastEventId": e.last_event_id}
            for e in events] == vector["events"]
