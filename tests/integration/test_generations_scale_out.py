"""Generations across workers and instances sharing Redis: watched, resumed and cancelled
from elsewhere than the worker that runs them, and failed when that worker dies."""

from __future__ import annotations

import http.client
import itertools
import json
import os
import signal
import time

import pytest
import requests

from streaming.sse import ParsedEvent, SSEParser
from tests.support.clients import Stream, wait_until
from tests.support.generation_clients import mock_answer, start_generation, state, view

PROMPT = "scale-out"


@pytest.fixture(scope="module")
def pair(start_server, redis_url):
    # The model is a third server's mock: a worker of the pair stopping must not stop it.
    mock = start_server()
    env = {"REDIS_URL": redis_url, "CHAT_BACKEND": "upstream", "HEARTBEAT_SECONDS": "1",
           "TASK_LEASE_SECONDS": "1.5", "GENERATION_GRACE_SECONDS": "3",
           "UPSTREAM_BASE_URL": f"{mock.url}/mock/v1"}
    return start_server(env=env), start_server(env=env)


@pytest.fixture(scope="module")
def two_workers(start_server, redis_url):
    return start_server(env={"REDIS_URL": redis_url, "CHAT_BACKEND": "upstream",
                             "WEB_CONCURRENCY": "2", "GENERATION_GRACE_SECONDS": "3"})


def test_a_generation_started_on_one_instance_is_watched_and_resumed_on_the_other(pair):
    first, second = pair
    created = start_generation(first.url, prompt=PROMPT, tokens=12)
    early = view(second.url, created["events_url"], stop_after=4)
    rest = view(second.url, created["events_url"], last_id=early.ids[-1])
    assert "".join(early.tokens + rest.tokens) == mock_answer(first.url, PROMPT, 12)
    assert rest.ids[0] == "4" and rest.of("end")[0]["tokens"] == 12
    assert state(second.url, created["id"])["status"] == "done"


def test_a_direct_stream_dropped_on_one_instance_continues_on_the_other(pair):
    first, second = pair
    path = f"/sse/chat?prompt={PROMPT}&tokens=15"
    early = view(first.url, path, stop_after=5)
    rest = view(second.url, path, last_id=early.ids[-1])
    generation = early.of("start")[0]["generation"]
    assert rest.ids == [f"{generation}:{i}" for i in range(5, 15)]
    assert "".join(early.tokens + rest.tokens) == mock_answer(first.url, PROMPT, 15)


def test_a_delete_on_the_other_instance_cancels_the_run_at_once(pair):
    first, second = pair
    created = start_generation(first.url, prompt=PROMPT, tokens=400)
    watched = view(first.url, created["events_url"], stop_after=3)
    assert len(watched.tokens) == 3
    response = requests.delete(second.url + created["status_url"], timeout=10)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    cancelled_at = state(first.url, created["id"])["tokens"]
    time.sleep(0.3)  # the mock sends a token every 50 ms: a run still going would add some
    assert state(first.url, created["id"])["tokens"] == cancelled_at
    rest = view(first.url, created["events_url"], last_id=watched.ids[-1])
    assert rest.of("end")[0]["finish_reason"] == "cancelled"


def test_a_generation_whose_worker_was_killed_ends_failed_for_its_viewers(pair):
    first, second = pair
    created = start_generation(first.url, prompt=PROMPT, tokens=400)
    with_viewer = view(second.url, created["events_url"], stop_after=2)
    assert len(with_viewer.tokens) == 2
    (worker,) = first.worker_pids()
    os.kill(worker, signal.SIGKILL)
    killed_at = time.monotonic()
    rest = view(second.url, created["events_url"], last_id=with_viewer.ids[-1], timeout=15)
    # Lease 1.5 s, checked every half second while quiet.
    assert time.monotonic() - killed_at < 10
    [failure] = rest.of("error")
    assert failure["type"] == "generation_failed"
    assert state(second.url, created["id"])["status"] == "failed"
    wait_until(lambda: len(first.worker_pids()) == 1, timeout=20)  # gunicorn replaced it
    first.wait_ready()


def _connection_to_worker(server, wanted=None, avoided=None) -> tuple[http.client.HTTPConnection,
                                                                      int]:
    """A keep-alive connection and the pid of the worker that accepted it."""
    for _ in range(200):
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=15)
        connection.request("GET", "/healthz")
        pid = json.loads(connection.getresponse().read())["pid"]
        if (wanted is None or pid == wanted) and pid != avoided:
            return connection, pid
        connection.close()
    raise AssertionError("the kernel never gave a connection to the other worker")


def _read_tokens(connection, path: str, last_id: str | None = None,
                 stop_after: int | None = None) -> list[ParsedEvent]:
    """The token events of an SSE stream read over `connection`, to its end or `stop_after`."""
    connection.request("GET", path, headers={"Last-Event-ID": last_id} if last_id else {})
    response = connection.getresponse()
    assert response.status == 200
    parser, tokens = SSEParser(), []
    while chunk := response.read1(65536):
        tokens += [event for event in parser.feed(chunk) if event.type == "message"]
        if stop_after is not None and len(tokens) >= stop_after:
            break
    connection.close()
    return tokens[:stop_after]


def test_a_direct_stream_resumes_on_the_other_worker(two_workers):
    path = f"/sse/chat?prompt={PROMPT}&tokens=12"
    connection, runner = _connection_to_worker(two_workers)
    early = _read_tokens(connection, path, stop_after=4)
    connection, other = _connection_to_worker(two_workers, avoided=runner)
    rest = _read_tokens(connection, path, last_id=early[-1].last_event_id)
    generation = early[0].last_event_id.split(":")[0]
    assert other != runner
    ids = [event.last_event_id for event in early + rest]
    assert ids == [f"{generation}:{i}" for i in range(12)]
    assert "".join(event.data for event in early + rest) == mock_answer(two_workers.url,
                                                                         PROMPT, 12)


def test_a_stopping_worker_ends_its_generations_failed_at_once_and_viewers_resume_elsewhere(
        pair):
    first, second = pair
    path = f"/sse/chat?prompt={PROMPT}&tokens=400"
    with Stream(first.url, path) as stream:
        events = stream.events()
        seen = [event for _, event in itertools.islice(
            (e for e in events if e[1].type == "message"), 3)]
        (worker,) = first.worker_pids()
        os.kill(worker, signal.SIGTERM)
        rest = [event for _, event in events]
    assert rest[-1].type == "restart"  # told to come back, as every stream of a stopping worker
    had = seen + [event for event in rest if event.type == "message"]
    resumed = view(second.url, path, last_id=had[-1].last_event_id)
    assert resumed.ids[:1] in ([], [f"{had[0].last_event_id.split(':')[0]}:{len(had)}"])
    # Not `generation_failed`: the run wrote its end as the worker stopped, before its
    # lease could expire and a viewer settle it.
    [failure] = resumed.of("error")
    assert failure["type"] == "server_restart"
    wait_until(lambda: len(first.worker_pids()) == 1, timeout=20)
    first.wait_ready()
