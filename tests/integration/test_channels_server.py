"""Channels against the real server, for both brokers: delivery, resume, reset, overflow."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support.channel_clients import SlowReader, data, new_channel, publish, subscribe, take
from tests.support.clients import wait_until

HISTORY, QUEUE = 50, 20


@pytest.fixture(scope="module", params=["memory", "redis"])
def server(request, start_server):
    """One server per backend, with a short history and queue so the edges are near."""
    env = {"HEARTBEAT_SECONDS": "1", "CHANNEL_HISTORY": str(HISTORY),
           "SUBSCRIBER_QUEUE": str(QUEUE)}
    if request.param == "redis":
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    return start_server(env=env)


def test_every_subscriber_gets_each_event_with_its_id_type_and_json_data(server):
    channel = new_channel()
    with subscribe(server.url, f"/sse/channels/{channel}") as first, \
            subscribe(server.url, f"/sse/channels/{channel}") as second:
        assert first.response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert first.response.headers["Cache-Control"] == "no-cache"
        sent = [{"n": 1}, "two", [3, None], {"text": "ünïcode\nline"}]
        ids = [publish(server.url, channel, value, event=f"kind.{i}")
               for i, value in enumerate(sent)]
        for stream in (first, second):
            events = take(stream.events(), len(sent))
            assert data(events) == sent
            assert [e.last_event_id for e in events] == ids
            assert [e.type for e in events] == [f"kind.{i}" for i in range(len(sent))]


def test_an_event_published_once_the_headers_arrived_is_never_missed(server):
    channel = new_channel()
    for attempt in range(5):
        with subscribe(server.url, f"/sse/channels/{channel}") as stream:
            publish(server.url, channel, attempt)
            assert data(take(stream.events(), 1)) == [attempt]


@pytest.mark.parametrize("how", ["header", "query"])
def test_resume_replays_exactly_the_events_after_the_id_then_live(server, how):
    channel = new_channel()
    ids = [publish(server.url, channel, i) for i in range(6)]
    path = f"/sse/channels/{channel}"
    if how == "query":
        path += f"?last_event_id={ids[2]}"
    with subscribe(server.url, path, ids[2] if how == "header" else None) as stream:
        events = stream.events()
        assert data(take(events, 3)) == [3, 4, 5]
        publish(server.url, channel, 6)
        assert data(take(events, 1)) == [6]


def test_an_id_older_than_the_history_starts_with_a_reset(server):
    channel = new_channel()
    first = publish(server.url, channel, 0)
    # Redis trims `MAXLEN ~` by whole nodes of 100 entries: go well past one.
    ids = [publish(server.url, channel, i) for i in range(1, 260)]
    with subscribe(server.url, f"/sse/channels/{channel}", first) as stream:
        events = stream.events()
        reset = take(events, 1)[0]
        assert reset.type == "reset"
        assert json.loads(reset.data) == {"reason": "history_trimmed"}
        retained = [take(events, 1)[0]]
        while retained[-1].last_event_id != ids[-1]:
            retained += take(events, 1)
    got = [e.last_event_id for e in retained]
    assert HISTORY <= len(got) < 260
    assert got == ids[-len(got):]  # the oldest retained onward, no gap


def test_a_bad_last_event_id_or_channel_name_is_a_400_before_streaming(server):
    bad = requests.get(f"{server.url}/sse/channels/ok", headers={"Last-Event-ID": "nope"},
                       timeout=5)
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "last_event_id"
    long_name = requests.get(f"{server.url}/sse/channels/{'x' * 129}", timeout=5)
    assert long_name.status_code == 400
    assert long_name.json()["error"]["param"] == "channel"


def test_a_slow_consumer_overflows_while_a_fast_one_gets_everything(server):
    channel = new_channel()
    path = f"/sse/channels/{channel}"
    slow = SlowReader(server.url, path)
    count = 150
    with subscribe(server.url, path) as fast, ThreadPoolExecutor(1) as pool:
        wait_until(lambda: requests.get(server.url + "/healthz", timeout=5)
                   .json()["broker"]["subscribers"] >= 2, timeout=10)
        fast_reading = pool.submit(take, fast.events(), count)
        payload = "x" * 60_000  # 9 MB in all: more than the socket buffers hold
        ids = [publish(server.url, channel, payload) for _ in range(count)]  # never blocked
        assert [e.last_event_id for e in fast_reading.result(timeout=60)] == ids
    events = slow.read_events()
    assert events[-1].type == "overflow"
    assert json.loads(events[-1].data)["reason"] == "subscriber_queue_full"
    delivered = [e.last_event_id for e in events[:-1]]
    assert delivered == ids[:len(delivered)] and len(delivered) < len(ids)


def publish_batch(url: str, channel: str, values: list) -> list[str]:
    events = [{"event": "batch", "data": value} for value in values]
    response = requests.post(f"{url}/api/channels/{channel}", json={"events": events},
                             timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["ids"]


def test_a_batch_reaches_every_subscriber_in_order_with_its_ids(server):
    channel = new_channel()
    with subscribe(server.url, f"/sse/channels/{channel}") as first, \
            subscribe(server.url, f"/sse/channels/{channel}") as second:
        before = publish(server.url, channel, "single")
        ids = publish_batch(server.url, channel, list(range(10)))
        for stream in (first, second):
            events = take(stream.events(), 11)
            assert data(events) == ["single", *range(10)]
            assert [e.last_event_id for e in events] == [before, *ids]
    with subscribe(server.url, f"/sse/channels/{channel}", before) as resumed:
        assert [e.last_event_id for e in take(resumed.events(), 10)] == ids


def test_concurrent_batches_are_each_appended_whole(server):
    channel = new_channel()
    start = publish(server.url, channel, "start")
    # Within the history (4 x 12 events of 50), and each batch longer than what Redis reads
    # of a client at a time (16 KiB), so that without MULTI others' commands could fall between.
    with ThreadPoolExecutor(4) as pool:
        batches = list(pool.map(lambda n: publish_batch(server.url, channel, [str(n) * 4000] * 12),
                                range(4)))
    with subscribe(server.url, f"/sse/channels/{channel}", start, timeout=5) as stream:
        got = take(stream.events(), 4 * 12)
    # Nothing of another batch falls between a batch's events.
    order = [e.last_event_id for e in got]
    for ids in batches:
        start = order.index(ids[0])
        assert order[start:start + len(ids)] == ids
