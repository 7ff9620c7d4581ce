import pytest

from generation.params import (
    GenerationParams,
    InvalidParameter,
    parse_generation,
    parse_last_event_id,
    parse_resume,
)


def test_defaults():
    assert parse_generation({"prompt": "hi"}) == GenerationParams("hi", 50, 50)


def test_query_strings_carry_integers_as_text():
    params = parse_generation({"prompt": "hi", "tokens": "7", "delay_ms": "0"}, from_text=True)
    assert params == GenerationParams("hi", 7, 0)


@pytest.mark.parametrize(("values", "param"), [
    ({}, "prompt"),
    ({"prompt": ""}, "prompt"),
    ({"prompt": "x" * 4001}, "prompt"),
    ({"prompt": 3}, "prompt"),
    ({"prompt": "a", "tokens": "7"}, "tokens"),  # JSON must carry a number
    ({"prompt": "a", "tokens": True}, "tokens"),
    ({"prompt": "a", "tokens": 0}, "tokens"),
    ({"prompt": "a", "tokens": 10_001}, "tokens"),
    ({"prompt": "a", "delay_ms": -1}, "delay_ms"),
    ({"prompt": "a", "delay_ms": 10_001}, "delay_ms"),
    ({"prompt": "a", "delay_ms": 2.5}, "delay_ms"),
])
def test_rejections_name_the_parameter(values, param):
    with pytest.raises(InvalidParameter) as caught:
        parse_generation(values)
    assert caught.value.param == param


def test_limits_are_inclusive():
    params = parse_generation({"prompt": "x" * 4000, "tokens": 10_000, "delay_ms": 10_000})
    assert (params.tokens, params.delay_ms) == (10_000, 10_000)


@pytest.mark.parametrize(("raw", "expected"), [(None, None), ("", None), ("0", 0), ("9", 9)])
def test_last_event_id(raw, expected):
    assert parse_last_event_id(raw, 10) == expected


@pytest.mark.parametrize("raw", ["10", "-1", "-0", "x", "1.0", "٣", "\uff13", "+1", " 1",
                                 "1_0", "9" * 5000])
def test_last_event_id_rejections(raw):
    with pytest.raises(InvalidParameter):
        parse_last_event_id(raw, 10)


@pytest.mark.parametrize(("values", "after"), [
    ({}, None), ({"last_event_id": 4}, 4), ({"last_event_id": "4"}, 4),
    ({"last_event_id": ""}, None),
])
def test_a_websocket_prompt_resumes_after_its_last_event_id(values, after):
    assert parse_resume(values, 10) == after


@pytest.mark.parametrize("raw", [10, -1, True, 1.5, [1], "1\r\nx", "1\x00"])
def test_a_bad_websocket_last_event_id_is_refused(raw):
    with pytest.raises(InvalidParameter) as caught:
        parse_resume({"last_event_id": raw}, 10)
    assert caught.value.param == "last_event_id"


@pytest.mark.parametrize("raw", ["\uff13", "٣", " 3", "3 ", "+3", "3_0", "0x3", "", "-",
                                 "1" * 5000])
@pytest.mark.parametrize("name", ["tokens", "delay_ms"])
def test_query_integers_are_ascii_digits_only(name, raw):
    with pytest.raises(InvalidParameter) as caught:
        parse_generation({"prompt": "hi", name: raw}, from_text=True)
    assert caught.value.param == name
    assert "must be an integer" in caught.value.message


def test_a_negative_query_integer_is_read_to_say_it_is_out_of_range():
    with pytest.raises(InvalidParameter, match="between 1 and 10000, got -3"):
        parse_generation({"prompt": "hi", "tokens": "-3"}, from_text=True)
