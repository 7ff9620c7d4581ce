import pytest
from hypothesis import given
from hypothesis import strategies as st

from auth import ChannelPattern, patterns

NAME = st.text(alphabet="abcxyz019_.-", min_size=1, max_size=12)


@pytest.mark.parametrize(("pattern", "channel", "subject", "matches"), [
    ("news", "news", None, True),
    ("news", "newsletter", None, False),
    ("orders:*", "orders:42", None, True),
    ("orders:*", "orders:", None, False),          # `*` is one character or more
    ("orders:*", "orders:42:refunds", None, False),  # never across a `:`
    ("orders:*:refunds", "orders:42:refunds", None, True),
    ("user:{sub}", "user:alice", "alice", True),
    ("user:{sub}", "user:bob", "alice", False),
    ("user:{sub}", "user:", None, False),          # no subject: covers nothing
    ("user:{sub}", "user:a.b", "a.b", True),
    ("user:{sub}", "user:aXb", "a.b", False),       # the subject is literal, `.` included
    ("user:{sub}", "user:anything", "*", False),    # a subject `*` is no wildcard
    ("room.*", "room.x", None, True),
    ("room.*", "roomAx", None, False),
])
def test_a_pattern_matches_what_its_grammar_says(pattern, channel, subject, matches):
    assert ChannelPattern(pattern).matches(channel, subject) is matches


@given(prefix=NAME, rest=NAME, deeper=NAME)
def test_a_wildcard_covers_one_level_and_never_the_next(prefix, rest, deeper):
    pattern = ChannelPattern(f"{prefix}:*")
    assert pattern.matches(f"{prefix}:{rest}", None)
    assert not pattern.matches(f"{prefix}:{rest}:{deeper}", None)


@given(subject=NAME, other=NAME)
def test_sub_stands_for_the_bearer_only(subject, other):
    pattern = ChannelPattern("user:{sub}")
    assert pattern.matches(f"user:{subject}", subject)
    assert pattern.matches(f"user:{other}", subject) is (other == subject)


@pytest.mark.parametrize("claim", ["news", [1], [""], {"a": 1}])
def test_a_claim_that_is_not_a_list_of_patterns_is_refused(claim):
    with pytest.raises(ValueError, match="subscribe"):
        patterns(claim, "subscribe")


def test_no_claim_is_no_pattern():
    assert patterns(None, "publish") == ()
