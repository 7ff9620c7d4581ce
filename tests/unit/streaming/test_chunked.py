"""streaming/chunked.py: chunked transfer coding decoded from pieces of any size."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streaming.chunked import MAX_LINE, ChunkedDecoder, ChunkedError


def encode(chunks: list[bytes], extension: bytes = b"", trailers: bytes = b"") -> bytes:
    framed = b"".join(b"%X%s\r\n%s\r\n" % (len(c), extension, c) for c in chunks)
    return framed + b"0\r\n" + trailers + b"\r\n"


def decode_in(pieces: list[bytes]) -> tuple[list[bytes], bytes, bool]:
    decoder = ChunkedDecoder()
    payloads, rest = [], b""
    for piece in pieces:
        payload, rest = decoder.feed(piece)
        payloads.append(payload)
        if decoder.done:
            break
    return payloads, rest, decoder.done


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def test_every_event_of_one_read_comes_out_at_once():
    events = [b"data: {\"n\":%d}\n\n" % i for i in range(50)]
    payload, rest = ChunkedDecoder().feed(encode(events))
    assert payload == b"".join(events)
    assert rest == b""


@given(chunks=st.lists(st.binary(min_size=1, max_size=300), max_size=20),
       cuts=st.lists(st.integers(min_value=0), max_size=30),
       extension=st.sampled_from([b"", b";name=value", b" ; a=1;b"]),
       trailers=st.sampled_from([b"", b"X-Trailer: 1\r\n", b"A: b\r\nC: d\r\n"]),
       after=st.sampled_from([b"", b"HTTP/1.1 200 OK\r\n"]))
def test_round_trip_whatever_the_pieces(chunks, cuts, extension, trailers, after):
    body = encode(chunks, extension, trailers)
    payloads, rest, done = decode_in(split(body + after, cuts))
    assert b"".join(payloads) == b"".join(chunks)
    assert done
    assert rest == after or after.startswith(rest)  # what follows is left unread


def test_bare_lf_line_endings_are_accepted():
    assert ChunkedDecoder().feed(b"3\nabc\n0\n\n") == (b"abc", b"")


def test_not_done_before_the_blank_line_after_the_last_chunk():
    decoder = ChunkedDecoder()
    assert decoder.feed(b"3\r\nabc\r\n0\r\n") == (b"abc", b"")
    assert not decoder.done
    decoder.feed(b"\r\n")
    assert decoder.done


@pytest.mark.parametrize("framing", [
    b"zz\r\nabc\r\n",  # not hexadecimal
    b"\r\nabc\r\n",  # no size at all
    b"2\r\nabc\r\n",  # data longer than its size
    b"-1\r\n",
])
def test_bad_framing_raises(framing):
    with pytest.raises(ChunkedError):
        ChunkedDecoder().feed(framing)


def test_an_endless_size_line_raises():
    with pytest.raises(ChunkedError):
        ChunkedDecoder().feed(b"1" * (MAX_LINE + 1))
