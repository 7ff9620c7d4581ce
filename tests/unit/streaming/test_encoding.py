import pytest

from streaming.encoding import compact_json


def test_compact_json_is_compact_and_leaves_utf8_as_is():
    assert compact_json({"a": [1, 2.5], "é": None}) == '{"a":[1,2.5],"é":null}'


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_float_fails_where_it_is_encoded_rather_than_going_out(number):
    with pytest.raises(ValueError, match="not JSON compliant"):
        compact_json({"data": [number]})
