"""The validators views share: here the query flag."""

from __future__ import annotations

import pytest

from http_policy.validation import InvalidParameter, flag


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("true", True), ("0", False),
                                               ("false", False)])
def test_a_flag_is_one_of_four_spellings(raw, expected):
    assert flag({"presence": raw}, "presence") is expected


def test_an_absent_flag_is_its_default():
    assert flag({}, "presence") is False
    assert flag({}, "presence", default=True) is True


@pytest.mark.parametrize("raw", ["", "yes", "TRUE", "2", " 1"])
def test_anything_else_names_the_parameter(raw):
    with pytest.raises(InvalidParameter) as caught:
        flag({"presence": raw}, "presence")
    assert caught.value.param == "presence"
    assert repr(raw) in caught.value.message
