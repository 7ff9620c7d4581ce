"""The strict JSON parser: what RFC 8259 allows is read as json.loads reads it; non-finite
numbers and nesting past MAX_DEPTH are refused with InvalidJSON, never a RecursionError."""

from __future__ import annotations

import contextlib
import json
import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from http_policy.json_body import MAX_DEPTH, InvalidJSON, parse_json


def _depth(value: object) -> int:
    """How many arrays and objects are nested in one another in `value`."""
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


def _nested(depth: int, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + closer * depth


def _refused(data: bytes | str) -> str:
    with pytest.raises(InvalidJSON) as caught:
        parse_json(data)
    return str(caught.value)


# --- what JSON allows ------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    '{"prompt": "hi", "tokens": 5}', "[]", "{}", "null", "0", "-0.5", "1e308", "1e-400",
    '"[[[{{{"', '{"a": "\\"[", "b": "\\\\"}', '["\\u005b", "é\\u2028"]', '{"a": [1, {"b": []}]}',
    "1" * 4300,
])
def test_json_is_read_as_json_loads_reads_it(text):
    assert parse_json(text) == json.loads(text)
    assert parse_json(text.encode()) == json.loads(text)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
def test_bytes_are_decoded_as_json_loads_decodes_them(encoding):
    text = '{"a": [' + _nested(MAX_DEPTH - 2) + ', "é["]}'
    assert parse_json(text.encode(encoding)) == json.loads(text)


def test_a_lone_surrogate_escape_is_left_to_the_caller():
    assert parse_json('"\\ud800"') == "\ud800"


# --- nesting ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("opener", "closer"), [("[", "]"), ('{"a":', "}")])
def test_nesting_up_to_max_depth_is_read_and_one_more_is_refused(opener, closer):
    inner = "[]" if opener == "[" else "{}"
    at_limit = opener * (MAX_DEPTH - 1) + inner + closer * (MAX_DEPTH - 1)
    assert _depth(parse_json(at_limit)) == MAX_DEPTH
    past = opener * MAX_DEPTH + inner + closer * MAX_DEPTH
    assert _refused(past) == f"it nests deeper than {MAX_DEPTH} levels"


@pytest.mark.parametrize("text", [
    "[" * 20_000, _nested(20_000), _nested(20_000, "{", "}"), '{"a":' * 13_000,
    "[" * 20_000 + "]" * 19_999, "[{" * 10_000 + "}]" * 10_000, "[]," + "[" * 20_000,
    '["\\\\"' + "[" * 20_000,
])
def test_deep_nesting_is_refused_before_the_parser_recurses(text):
    assert "nests deeper" in _refused(text) or "do not balance" in _refused(text)


@pytest.mark.parametrize("text", ["]" + "[" * 20_000, "[]]" + _nested(20_000),
                                  '{"a":1}}' + "[" * 99])
def test_a_stray_closer_is_the_parsers_to_report(text):
    assert _refused(text).startswith("Expecting value") or "Extra data" in _refused(text)


def test_brackets_inside_strings_do_not_count():
    text = json.dumps({"prompt": "[" * 30_000 + '"\\[{' * 1000, "b": ["\\"] * 100})
    assert parse_json(text) == json.loads(text)


def test_a_quote_escaped_after_escaped_backslashes_still_ends_no_string():
    # "\\\"[" is a backslash, a quote and a bracket, all inside the string.
    text = '["\\\\\\"' + "[" * 100 + '"' + ", []" * 100 + "]"
    assert parse_json(text) == json.loads(text)


# Values nested to a drawn depth, strings full of what the depth count must see through.
TRICKY_TEXT = st.text(st.sampled_from('[]{}"\\/ ,:aé\u2028\U0001f600'), max_size=8)
SCALARS = (st.none() | st.booleans() | st.integers() | TRICKY_TEXT
           | st.floats(allow_nan=False, allow_infinity=False))
SHALLOW = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(TRICKY_TEXT, inner, max_size=3), max_leaves=6)


@st.composite
def deep_values(draw) -> object:
    value = draw(SHALLOW)
    for _ in range(draw(st.integers(0, MAX_DEPTH + 8))):
        siblings = draw(st.lists(SCALARS | st.sampled_from([[], {}]), max_size=2))
        if draw(st.booleans()):
            value = [*siblings, value] if draw(st.booleans()) else [value, *siblings]
        else:
            value = {**{f"k{n}": s for n, s in enumerate(siblings)}, draw(TRICKY_TEXT): value}
    return value


@settings(max_examples=100, deadline=None)
@given(value=deep_values(), ascii_only=st.booleans(), indent=st.sampled_from([None, 0, 2]))
def test_any_value_is_read_back_unless_it_nests_too_deep(value, ascii_only, indent):
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent)
    if _depth(value) <= MAX_DEPTH:
        assert parse_json(text) == value
        assert parse_json(text.encode()) == value
    else:
        assert _refused(text) == f"it nests deeper than {MAX_DEPTH} levels"


@settings(max_examples=200, deadline=None)
@given(pieces=st.lists(st.tuples(st.sampled_from(['[', ']', '{', '}', '"', '\\', '1', ',', ':',
                                                  '"a":', '[]', "NaN"]),
                                 st.integers(1, 3000)), max_size=8))
def test_any_text_is_read_as_json_loads_reads_it_or_refused(pieces):
    text = "".join(piece * count for piece, count in pieces)
    try:
        value = parse_json(text)
    except InvalidJSON:
        return
    assert value == json.loads(text)
    assert _depth(value) <= MAX_DEPTH


# --- numbers ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("literal", "reason"), [
    ("NaN", "NaN is not a JSON number"), ("Infinity", "Infinity is not a JSON number"),
    ("-Infinity", "-Infinity is not a JSON number"), ("1e400", "the number 1e400 is out of range"),
    ("-1E+400", "the number -1E+400 is out of range"), ("2e308", "the number 2e308 is out"),
    ("1" + "0" * 400 + ".5", "the number 1000"),
])
def test_a_number_no_float_can_carry_is_refused(literal, reason):
    assert _refused(f'{{"data": [1, {{"x": {literal}}}]}}').startswith(reason)


def test_the_largest_finite_float_is_read():
    assert parse_json("[1.7976931348623157e308, -5e-324]") == [1.7976931348623157e308, -5e-324]


def test_an_integer_past_pythons_digit_limit_is_refused():
    assert _refused("1" * 5000) == "an integer has more than 4300 digits"


NON_FINITE = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e309", "9e999",
                              "1" * 310 + ".0", "1.8e308"])
MARKER = "@@"


@settings(max_examples=50, deadline=None)
@given(value=deep_values(), literal=NON_FINITE)
def test_a_non_finite_number_anywhere_is_refused(value, literal):
    # No TRICKY_TEXT holds "@", so the marker is this one string value and nothing else.
    text = json.dumps([value, {"at": MARKER}]).replace(json.dumps(MARKER), literal)
    reason = _refused(text)
    assert "not a JSON number" in reason or "out of range" in reason or "nests deeper" in reason


@given(number=st.floats(allow_nan=False, allow_infinity=False))
def test_every_finite_float_is_read_back_exactly(number):
    assert parse_json(json.dumps([number])) == [number]
    assert math.isfinite(parse_json(repr(number)))


# --- other refusals ---------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "reason"), [
    (b"", "Expecting value at line 1 column 1"), (b"{", "Expecting property name"),
    (b'{"a": 1} x', "Extra data at line 1 column 10"), (b"\xff\xfe\xfd", "it is not valid"),
    (b'"\xc3"', "it is not valid utf-8"),
])
def test_other_refusals_say_why(data, reason):
    assert _refused(data).startswith(reason)


# --- cost -------------------------------------------------------------------------------------

BODY_BYTES = 64 * 1024  # MAX_BODY_BYTES's default


def _fill(unit: bytes) -> bytes:
    count = (BODY_BYTES - 2) // (len(unit) + 1)
    return b"[" + b",".join([unit] * count) + b"]"


@pytest.mark.parametrize("body", [
    b"[" * (BODY_BYTES // 2) + b"]" * (BODY_BYTES // 2), b"[" * BODY_BYTES, _fill(b"[]"),
    _fill(b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1)), _fill(b'{"a":[1.5]}'), _fill(b'"["'),
    b'{"p":"' + b'\\"[' * (BODY_BYTES // 3 - 3) + b'"}',
], ids=["deep", "open", "pairs", "max-depth-groups", "objects", "strings", "escapes"])
def test_a_worst_case_body_is_parsed_in_a_few_milliseconds(body):
    """This thread's CPU time, best of five, so neither another process on the machine nor
    another thread of this one counts (a test process runs many files' tests, and their
    threads: with the process's CPU time, 15.9 ms at best was seen): about 3.5 ms here for the
    slowest, most of it json.loads itself. A depth count that backtracked or walked the bytes
    in Python would take 10 to 1000 times as long."""
    assert len(body) <= BODY_BYTES
    timings = []
    for _ in range(5):
        began = time.thread_time()
        with contextlib.suppress(InvalidJSON):
            parse_json(body)
        timings.append(time.thread_time() - began)
    assert min(timings) < 0.015, f"{min(timings) * 1000:.1f} ms"
