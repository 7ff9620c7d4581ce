"""Key names and cluster URLs: every key of a topic in one slot, and the URLs REDIS_URL takes."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

import config
from broker import redis_keys
from broker.redis_cluster import is_cluster, parse_url


@pytest.mark.parametrize("topic", ["channel/news", "task/" + "a" * 32, "generation/g1",
                                   "channel/with}brace", "channel/{tagged}"])
def test_every_key_of_a_topic_is_in_one_slot(topic):
    keys = [redis_keys.stream(topic), redis_keys.presence(topic), redis_keys.lease(topic),
            redis_keys.lease(f"{topic}/viewers")]
    assert len({key_slot(key.encode()) for key in keys}) == 1, keys
    assert len({redis_keys.tag(key) for key in keys}) == 1, keys
    assert redis_keys.topic_of(redis_keys.stream(topic)) == topic


def test_topics_spread_over_slots():
    slots = {key_slot(redis_keys.stream(f"channel/c{i}").encode()) for i in range(100)}
    assert len(slots) > 90


def test_the_names():
    assert redis_keys.stream("channel/a") == "sse:{channel/a}"
    assert redis_keys.presence("channel/a") == "sse:presence:{channel/a}"
    assert redis_keys.lease("task/1") == "sse:lease:{task/1}"
    assert redis_keys.lease("generation/1/viewers") == "sse:lease:{generation/1}/viewers"
    assert redis_keys.lease("plain") == "sse:lease:{plain}"


def test_cluster_urls():
    assert not is_cluster("redis://127.0.0.1:6379/0")
    assert is_cluster("redis+cluster://a:1")
    assert parse_url("redis+cluster://a:7000,[::1]:7001/0") == (
        [("a", 7000), ("::1", 7001)], {"ssl": False})
    assert parse_url("rediss+cluster://user:p%40ss@a:7000") == (
        [("a", 7000)], {"ssl": True, "username": "user", "password": "p@ss"})
    for bad in ("redis+cluster://a", "redis+cluster://a:1/3", "redis+cluster://a:1?x=1",
                "redis+cluster://a:99999", "redis://a:1"):
        with pytest.raises(ValueError):
            parse_url(bad)


@pytest.mark.parametrize("url", ["", "redis://127.0.0.1:6379/0", "rediss://h:1", "unix:///r.sock",
                                 "redis+cluster://127.0.0.1:7000,127.0.0.1:7001",
                                 "rediss+cluster://u:pw@h:7000/0"])
def test_config_takes_redis_urls(url):
    assert config.load({"REDIS_URL": url})["REDIS_URL"] == url


@pytest.mark.parametrize("url", ["127.0.0.1:6379", "http://h:1", "redis+cluster://h",
                                 "redis+cluster://h:1/2", "redis+cluster://u:secret@h"])
def test_config_refuses_other_urls_without_showing_a_password(url):
    with pytest.raises(config.ConfigError, match="REDIS_URL") as refused:
        config.load({"REDIS_URL": url})
    assert "secret" not in str(refused.value)
