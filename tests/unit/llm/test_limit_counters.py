"""Tests for llm.limit_counters: the same counting in memory and in Redis, and Redis down."""

from __future__ import annotations

import logging
import uuid

import pytest
import redis

from llm.limit_counters import PREFIX, TTL_MS, MemoryCounter, RedisCounter, make_counter
from llm.limits import Counts
from testbed.live_server import free_port

WINDOW = 30_000_000


@pytest.fixture(params=["memory", "redis", "cluster"])
def counter(request):
    if request.param == "memory":
        return MemoryCounter()
    if request.param == "cluster":
        return RedisCounter(request.getfixturevalue("redis_cluster").url)
    return RedisCounter(request.getfixturevalue("redis_url"))


@pytest.fixture
def name() -> str:
    return f"team-{uuid.uuid4().hex[:8]}"  # the run's Redis is shared: a name of this test's


def test_requests_are_counted_up_to_rpm_then_refused_uncounted(counter, name):
    assert counter.admit(name, WINDOW, 2, None) == (True, Counts(1, 0))
    assert counter.admit(name, WINDOW, 2, None) == (True, Counts(2, 0))
    assert counter.admit(name, WINDOW, 2, None) == (False, Counts(2, 0))
    assert counter.admit(name, WINDOW + 1, 2, None) == (True, Counts(1, 0))


def test_tokens_refuse_once_tpm_is_reached(counter, name):
    assert counter.admit(name, WINDOW, None, 100) == (True, Counts(1, 0))
    counter.add_tokens(name, WINDOW, 99)
    assert counter.admit(name, WINDOW, None, 100) == (True, Counts(2, 99))
    counter.add_tokens(name, WINDOW, 30)
    assert counter.admit(name, WINDOW, None, 100) == (False, Counts(2, 129))
    assert counter.admit(name, WINDOW, None, None) == (True, Counts(3, 129))


def test_keys_count_apart(counter, name):
    counter.admit(name, WINDOW, 1, None)
    assert counter.admit(name + "-other", WINDOW, 1, None) == (True, Counts(1, 0))


def test_redis_counts_are_shared_and_expire(redis_url, name):
    first, second = RedisCounter(redis_url), RedisCounter(redis_url)
    first.admit(name, WINDOW, 10, 10)
    second.add_tokens(name, WINDOW, 4)
    assert first.admit(name, WINDOW, 10, 10) == (True, Counts(2, 4))
    ttl = redis.Redis.from_url(redis_url).pttl(f"{PREFIX}{name}:{WINDOW}")
    assert TTL_MS - 5_000 < ttl <= TTL_MS


def test_redis_down_fails_open_with_one_warning(caplog, name):
    counter = RedisCounter(f"redis://127.0.0.1:{free_port()}/0")
    with caplog.at_level(logging.WARNING, logger="llm.limit_counters"):
        assert counter.admit(name, WINDOW, 1, 1) is None
        counter.add_tokens(name, WINDOW, 5)
        assert counter.admit(name, WINDOW, 1, 1) is None
    warnings = [record for record in caplog.records if "not enforced" in record.getMessage()]
    assert len(warnings) == 1


def test_the_counter_is_redis_with_a_url_else_memory(redis_url):
    assert isinstance(make_counter(""), MemoryCounter)
    assert isinstance(make_counter(redis_url), RedisCounter)
