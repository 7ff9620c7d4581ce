"""Presence with auth on, over two instances sharing Redis: subjects come from the tokens,
join/leave events name them, presence needs subscribe rights, and a killed worker's subjects
leave within two heartbeats."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import requests

from auth import mint_token
from tests.support.channel_clients import new_channel
from tests.support.clients import Stream, wait_until
from tests.support.presence_clients import close_all, open_subscriptions, wait_for_presence

SECRET = "presence-secret-" + "p" * 32
HEARTBEAT = 2.0


@pytest.fixture(scope="module")
def pair(start_server, redis_url):
    env = {"REDIS_URL": redis_url, "HEARTBEAT_SECONDS": str(HEARTBEAT), "AUTH_SECRET": SECRET}
    return start_server(env=env), start_server(env=env)


def bearer(sub: str, *patterns: str) -> dict[str, str]:
    token = mint_token(SECRET, sub=sub, subscribe=list(patterns) or ["room:*"], ttl=600)
    return {"Authorization": f"Bearer {token}"}


def room() -> str:
    return f"room:{new_channel()}"


def subjects(*names: str):
    return lambda answer: answer["subjects"] == sorted(names)


def test_presence_lists_the_subjects_of_every_instance(pair):
    first, second = pair
    channel = room()
    alice = open_subscriptions(first.url, channel, 2, headers=bearer("alice"))
    bob = open_subscriptions(second.url, channel, 1, headers=bearer("bob"))
    for instance in pair:
        answer, _ = wait_for_presence(instance.url, channel, subjects("alice", "bob"),
                                      timeout=10, headers=bearer("carol"))
        assert answer["subscribers"] == 3
    close_all(alice)
    wait_for_presence(second.url, channel, subjects("bob"), timeout=10, headers=bearer("bob"))
    close_all(bob)


def test_presence_needs_subscribe_rights_on_the_channel(pair):
    first, _ = pair
    channel = room()
    url = f"{first.url}/api/channels/{channel}/presence"
    assert requests.get(url, timeout=10).status_code == 401
    other = requests.get(url, headers=bearer("alice", "news"), timeout=10)
    assert other.status_code == 403
    assert requests.get(url, headers=bearer("alice"), timeout=10).status_code == 200


def presence_events(stream: Stream):
    """The join/leave events of a `?presence=1` stream, as (type, sub) with the raw block."""
    buffer = b""
    for _, chunk in stream.chunks():
        buffer += chunk
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            text = block.decode()
            if "event: join" in text or "event: leave" in text:
                kind = "join" if "event: join" in text else "leave"
                yield kind, json.loads(text.split("data: ", 1)[1])["sub"], text


def test_join_and_leave_name_subjects_across_instances_and_carry_no_id(pair):
    first, second = pair
    channel = room()
    with Stream(first.url, f"/sse/channels/{channel}?presence=1",
                headers=bearer("watcher")) as watcher:
        events = presence_events(watcher)
        assert next(events)[:2] == ("join", "watcher")  # who is there when it opens: itself
        (bob,) = open_subscriptions(second.url, channel, 1, headers=bearer("bob"))
        kind, sub, block = next(events)
        assert (kind, sub) == ("join", "bob") and "id:" not in block
        # A second subscription of the same subject is no new join; its last one leaving is.
        (again,) = open_subscriptions(second.url, channel, 1, headers=bearer("bob"))
        wait_for_presence(first.url, channel, lambda a: a["subscribers"] == 3, timeout=10,
                          headers=bearer("watcher"))
        bob.close()
        again.close()
        kind, sub, block = next(events)
        assert (kind, sub) == ("leave", "bob") and "id:" not in block


def test_a_killed_worker_s_subjects_leave_within_two_heartbeats(pair):
    first, second = pair
    channel = room()
    doomed = open_subscriptions(first.url, channel, 3, headers=bearer("dora"))
    kept = open_subscriptions(second.url, channel, 1, headers=bearer("kim"))
    wait_for_presence(second.url, channel, subjects("dora", "kim"), timeout=10,
                      headers=bearer("kim"))
    (worker,) = first.worker_pids()
    os.kill(worker, signal.SIGKILL)
    killed_at = time.monotonic()
    answer, _ = wait_for_presence(second.url, channel, subjects("kim"), timeout=4 * HEARTBEAT,
                                  headers=bearer("kim"))
    assert time.monotonic() - killed_at < 2 * HEARTBEAT, answer
    assert answer["subscribers"] == 1
    close_all([*doomed, *kept])
    wait_until(lambda: len(first.worker_pids()) == 1, timeout=20)  # gunicorn replaced it
