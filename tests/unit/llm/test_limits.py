"""Tests for llm.limits: windows, deciding, the headers and the 429, over the memory counter."""

from __future__ import annotations

import pytest

from llm.keys import ClientKey, ClientKeys
from llm.limit_counters import MemoryCounter
from llm.limits import Counts, Decision, Limits, reset_duration, window_at

RPM = ClientKey("team-r", rpm=2)
TPM = ClientKey("team-t", tpm=100)
BOTH = ClientKey("team-rt", rpm=5, tpm=100)
START = 1_800_000_000.0  # a window's first instant: a multiple of 60


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _limits(clock: Clock) -> Limits:
    keys = ClientKeys([(f"sk-{client.name}", client) for client in (RPM, TPM, BOTH)],
                      required=True)
    return Limits(keys, MemoryCounter(), clock)


@pytest.mark.parametrize(("now", "index", "resets_in"), [
    (START, START // 60, 60.0), (START + 0.5, START // 60, 59.5),
    (START + 59.75, START // 60, 0.25), (START + 60, START // 60 + 1, 60.0),
])
def test_windows_are_fixed_minutes(now, index, resets_in):
    window = window_at(now)
    assert window.index == index
    assert window.resets_in == pytest.approx(resets_in)


@pytest.mark.parametrize(("seconds", "written"), [
    (1, "1s"), (59.52, "59.52s"), (0.0001, "0.001s"), (0.25, "0.25s"), (60, "1m0s"),
])
def test_reset_durations_are_written_as_openai_writes_them(seconds, written):
    assert reset_duration(seconds) == written


def test_requests_past_rpm_are_refused_until_the_window_ends():
    clock = Clock(START + 15.2)
    limits = _limits(clock)
    first, second, third = (limits.check(RPM) for _ in range(3))
    assert (first.refused, second.refused, third.refused) == (None, None, "requests")
    assert dict(first.headers()) == {"x-ratelimit-limit-requests": "2",
                                     "x-ratelimit-remaining-requests": "1",
                                     "x-ratelimit-reset-requests": "44.8s"}
    assert dict(second.headers())["x-ratelimit-remaining-requests"] == "0"
    assert dict(third.headers())["Retry-After"] == "45"
    assert limits.check(RPM).counts == Counts(2, 0)  # a refused request is not counted
    clock.now = START + 60
    assert limits.check(RPM).refused is None


def test_tokens_count_against_the_next_requests_of_the_window():
    clock = Clock(START)
    limits = _limits(clock)
    assert limits.check(TPM).refused is None
    limits.record_tokens("team-t", 60)
    assert dict(limits.check(TPM).headers())["x-ratelimit-remaining-tokens"] == "40"
    limits.record_tokens("team-t", 60)  # a started stream is not cut: past the limit it goes
    refused = limits.check(TPM)
    assert refused.refused == "tokens"
    assert refused.counts == Counts(2, 120)
    assert dict(refused.headers())["x-ratelimit-remaining-tokens"] == "0"
    clock.now = START + 61
    assert limits.check(TPM).refused is None


def test_only_the_limits_a_key_has_get_headers():
    limits = _limits(Clock(START))
    assert {name for name, _ in limits.check(TPM).headers()} == {
        "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"}
    assert len(limits.check(BOTH).headers()) == 6
    assert limits.check(ClientKey("free")) is None


def test_tokens_of_keys_without_tpm_or_unknown_are_not_counted():
    limits = _limits(Clock(START))
    for name in ("team-r", "nobody", "team-rt"):
        limits.record_tokens(name, 500)
    assert limits.check(RPM).counts == Counts(1, 0)
    assert limits.check(BOTH).refused == "tokens"


def test_each_key_counts_alone():
    limits = _limits(Clock(START))
    limits.check(RPM), limits.check(RPM)
    assert limits.check(RPM).refused == "requests"
    assert limits.check(BOTH).refused is None


@pytest.mark.parametrize(("client", "counts", "kind", "says"), [
    (RPM, Counts(2, 0), "requests", "requests per min (RPM): Limit 2, Used 2"),
    (TPM, Counts(1, 150), "tokens", "tokens per min (TPM): Limit 100, Used 150"),
])
def test_the_429_is_in_openais_shape_and_names_the_key_by_name(client, counts, kind, says):
    error = Decision(client, counts, 12.5, kind).error()
    assert error.status == 429
    body = error.body()["error"]
    assert body["type"] == kind and body["code"] == "rate_limit_exceeded"
    assert body["param"] is None
    assert f"Rate limit reached for {client.name} on {says}" in body["message"]
    assert "try again in 13s" in body["message"]


def test_retry_after_is_at_least_one_second():
    assert Decision(RPM, Counts(2, 0), 0.01, "requests").retry_after == 1
