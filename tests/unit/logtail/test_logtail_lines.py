"""logtail/lines.py and logtail/events.py: offsets, pieces, tails, and the bytes on the wire."""

from __future__ import annotations

from unittest import mock

from hypothesis import given
from hypothesis import strategies as st

from logtail import lines as lines_module
from logtail.events import line_event, reset_event
from logtail.lines import MAX_LINE, last_boundary, read_lines, split_lines, tail_start
from streaming.sse import parse


def reader(data: bytes):
    return lambda offset, size: data[offset:offset + size]


def test_lines_end_at_lf_with_the_offset_after_it():
    assert split_lines(b"a\nbb\r\n\nc", 10) == ([(12, b"a"), (16, b"bb"), (17, b"")], 7)


def test_a_partial_line_waits_unless_the_data_is_final():
    assert split_lines(b"abc", 0) == ([], 0)
    assert split_lines(b"abc", 5, final=True) == ([(8, b"abc")], 3)


def test_only_a_cr_right_before_the_lf_is_dropped():
    assert split_lines(b"a\rb\r\n", 0)[0] == [(5, b"a\rb")]


def test_an_overlong_line_arrives_in_pieces_each_with_its_own_offset():
    data = b"x" * (2 * MAX_LINE + 5) + b"\n"
    found, used = split_lines(data, 0)
    assert [end for end, _ in found] == [MAX_LINE, 2 * MAX_LINE, 2 * MAX_LINE + 6]
    assert b"".join(body for _, body in found) == data[:-1]
    assert used == len(data)


def test_a_line_of_exactly_max_line_is_whole_and_its_partial_waits():
    assert split_lines(b"y" * MAX_LINE + b"\n", 0)[0] == [(MAX_LINE + 1, b"y" * MAX_LINE)]
    assert split_lines(b"y" * MAX_LINE, 0) == ([], 0)
    assert split_lines(b"y" * (MAX_LINE + 1), 0)[0] == [(MAX_LINE, b"y" * MAX_LINE)]


def test_pieces_are_never_cut_inside_a_utf8_character():
    data = b"a" * (MAX_LINE - 1) + "é".encode() + b"b" * 10 + b"\n"
    found, _ = split_lines(data, 0)
    assert found[0] == (MAX_LINE - 1, b"a" * (MAX_LINE - 1))
    assert found[1][1].decode() == "é" + "b" * 10


def log_texts():
    line = st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"."))
    return st.lists(line, max_size=30).map(lambda ls: b"".join(b + b"\n" for b in ls))


@given(data=log_texts(), partial=st.binary(max_size=25).map(lambda b: b.replace(b"\n", b".")),
       cuts=st.lists(st.integers(0, 400), max_size=8), chunk=st.integers(1, 40))
def test_following_an_appended_file_finds_the_same_lines_as_reading_it_whole(
        data, partial, cuts, chunk):
    """The watcher reads a file as it grows, in arbitrary steps; a viewer catching up reads it
    all at once. Both must agree on every line and offset, pieces of long lines included."""
    data += partial
    with mock.patch.object(lines_module, "MAX_LINE", 8):
        whole = [line for batch in read_lines(reader(data), 0, len(data), final=False,
                                              chunk=chunk) for line in batch]
        followed, published = [], 0
        for size in [*sorted(min(c, len(data)) for c in cuts), len(data)]:
            for batch in read_lines(reader(data[:size]), published, size, final=False,
                                    chunk=chunk):
                followed += batch
                published = batch[-1][0]
        assert followed == whole
        # Catching up from any boundary to the last one handed out gives the same lines.
        ends = [0] + [end for end, _ in whole]
        for index, start in enumerate(ends):
            caught_up = [line for batch in read_lines(reader(data), start, ends[-1],
                                                      final=True, chunk=chunk)
                         for line in batch]
            assert caught_up == whole[index:]


@given(data=log_texts(), wanted=st.integers(0, 40), chunk=st.integers(1, 50))
def test_tail_start_is_where_the_last_lines_begin(data, wanted, chunk):
    starts = [0] + [index + 1 for index, byte in enumerate(data) if byte == 0x0A]
    expected = starts[max(0, len(starts) - 1 - wanted)] if wanted else len(data)
    with mock.patch.object(lines_module, "MAX_LINE", 1000):
        assert tail_start(reader(data), len(data), wanted, chunk=chunk) == expected


def test_tail_scan_stops_after_lines_times_max_line_bytes():
    data = b"z" * (5 * MAX_LINE) + b"\n"
    seen = []

    def read(offset, size):
        seen.append(size)
        return data[offset:offset + size]

    assert tail_start(read, len(data), 2) == len(data) - 2 * MAX_LINE
    assert sum(seen) < 2 * MAX_LINE


def test_last_boundary_is_the_end_of_the_last_complete_line():
    assert last_boundary(reader(b""), 0) == 0
    assert last_boundary(reader(b"a\nb\npartial"), 11) == 4
    assert last_boundary(reader(b"no newline"), 10) == 0
    huge = b"\n" + b"q" * (2 * lines_module.READ_CHUNK)
    assert last_boundary(reader(huge), len(huge)) == len(huge)


def test_line_event_bytes():
    assert line_event((42, b"hello")) == b"id: 42\ndata: hello\n\n"
    assert line_event((1, b"")) == b"id: 1\ndata: \n\n"
    assert line_event((9, b"bad \xff byte")) == "id: 9\ndata: bad \ufffd byte\n\n".encode()


def test_control_characters_never_break_the_framing():
    lines = [(10, b"progress 10%\rprogress 90%"), (20, b"nul\0esc\x1b[31mred\x1b[0m\ttab"),
             (30, "sep\u2028arator".encode()), (40, b"next")]
    events = parse(b"".join(map(line_event, lines)))
    assert [(e.last_event_id, e.data, e.type) for e in events] == [
        ("10", "progress 10%\nprogress 90%", "message"),
        ("20", "nul\0esc\x1b[31mred\x1b[0m\ttab", "message"),
        ("30", "sep\u2028arator", "message"),
        ("40", "next", "message"),
    ]


def test_reset_event_bytes():
    assert reset_event("rotated") == b'event: reset\nid: 0\ndata: {"reason":"rotated"}\n\n'
