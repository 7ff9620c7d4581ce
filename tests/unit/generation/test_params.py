import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from generation.params import (
    GenerationParams,
    InvalidParameter,
    parse_generation,
    parse_last_event_id,
    parse_resume,
)
from llm.mock import parse_chat_request


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


USER = {"role": "user", "content": "hello"}


def _conversation(*messages: dict, **values) -> GenerationParams:
    return parse_generation({"messages": list(messages), **values})


def test_messages_give_the_prompt_of_their_last_user_message():
    params = _conversation({"role": "system", "content": "be brief"}, USER,
                           {"role": "assistant", "content": "hi"},
                           {"role": "user", "content": [{"type": "text", "text": "one "},
                                                        {"type": "text", "text": "two"}]},
                           {"role": "assistant", "content": ""}, tokens=3)
    assert (params.prompt, params.tokens) == ("one two", 3)
    assert params.messages[3] == {"role": "user", "content": [
        {"type": "text", "text": "one "}, {"type": "text", "text": "two"}]}


def test_messages_keep_only_role_and_content():
    params = _conversation({"role": "user", "content": "hi", "name": "ann", "x": 1})
    assert params.messages == ({"role": "user", "content": "hi"},)


def test_a_prompt_has_no_messages():
    assert parse_generation({"prompt": "hi"}).messages is None


def test_every_role_is_accepted():
    roles = ["system", "developer", "assistant", "tool", "user"]
    params = _conversation(*({"role": role, "content": role} for role in roles))
    assert [m["role"] for m in params.messages] == roles


text_parts = st.lists(st.builds(lambda text: {"type": "text", "text": text},
                                st.text(max_size=20)), max_size=3)
messages = st.lists(st.fixed_dictionaries({
    "role": st.sampled_from(["system", "user", "assistant", "developer", "tool"]),
    "content": st.one_of(st.text(max_size=40), text_parts)}), min_size=1, max_size=8)


@given(messages.filter(lambda ms: any(m["role"] == "user" for m in ms)))
def test_the_prompt_is_what_the_mock_makes_of_the_same_messages(conversation):
    mock = parse_chat_request({"model": "m", "messages": conversation}).params.prompt
    try:
        params = parse_generation({"messages": conversation})
    except InvalidParameter as refused:  # only an empty last user message is refused
        assert (mock, refused.param) == ("", "messages")
    else:
        assert params.prompt == mock
        assert list(params.messages) == conversation


@pytest.mark.parametrize(("raw", "says"), [
    ([], "non-empty array"),
    ("hello", "non-empty array"),
    ({"role": "user", "content": "hi"}, "non-empty array"),
    ([USER] * 101, "at most 100 messages, got 101"),
    (["hello"], "messages[0] must be an object"),
    ([USER, {"content": "hi"}], "messages[1].role must be one of"),
    ([{"role": "function", "content": "hi"}], "messages[0].role must be one of"),
    ([{"role": "User", "content": "hi"}], "messages[0].role must be one of"),
    ([{"role": "user"}], "messages[0].content must be a string or an array"),
    ([{"role": "user", "content": 3}], "messages[0].content must be a string or an array"),
    ([{"role": "user", "content": None}], "messages[0].content must be a string"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
     "messages[0].content[0] must be a text part"),
    ([{"role": "user", "content": [{"type": "text", "text": 3}]}],
     "messages[0].content[0] must be a text part"),
    ([{"role": "user", "content": ["hi"]}], "messages[0].content[0] must be a text part"),
    ([{"role": "user", "content": "\ud800"}], "lone surrogate"),
    ([{"role": "user", "content": [{"type": "text", "text": "a\udfff"}]}], "lone surrogate"),
    ([{"role": "system", "content": "hi"}], "must contain a user message"),
    ([USER, {"role": "user", "content": ""}], "last user message must have some text"),
    ([{"role": "user", "content": []}], "last user message must have some text"),
])
def test_bad_messages_say_what_is_wrong(raw, says):
    with pytest.raises(InvalidParameter) as caught:
        parse_generation({"messages": raw})
    assert caught.value.param == "messages"
    assert says in caught.value.message


def test_the_text_bound_counts_every_message():
    quarter = {"role": "user", "content": "x" * 1000}
    assert _conversation(quarter, quarter, quarter, quarter).prompt == "x" * 1000
    parts = {"role": "assistant", "content": [{"type": "text", "text": "y"}]}
    with pytest.raises(InvalidParameter, match="at most 4000 characters of text in all, "
                                               "got 4001"):
        _conversation(quarter, quarter, quarter, quarter, parts)


def test_one_hundred_messages_are_allowed():
    assert len(_conversation(*[USER] * 100).messages) == 100


@pytest.mark.parametrize("values", [
    {"prompt": "hi", "messages": [USER]},
    {"prompt": "", "messages": [USER]},
])
def test_prompt_and_messages_together_are_refused(values):
    with pytest.raises(InvalidParameter, match="either prompt or messages") as caught:
        parse_generation(values)
    assert caught.value.param == "messages"


def test_null_messages_are_absent():
    assert parse_generation({"prompt": "hi", "messages": None}).messages is None


def test_a_query_string_carries_no_messages():
    with pytest.raises(InvalidParameter, match="only be sent in a JSON body") as caught:
        parse_generation({"messages": '[{"role":"user","content":"hi"}]'}, from_text=True)
    assert caught.value.param == "messages"


@pytest.mark.parametrize(("from_text", "says"), [(False, "prompt (or messages) is required"),
                                                 (True, "prompt is required")])
def test_neither_prompt_nor_messages(from_text, says):
    with pytest.raises(InvalidParameter, match=re.escape(says)):
        parse_generation({}, from_text=from_text)
