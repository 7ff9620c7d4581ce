"""Tasks against the real server: progress streams, late and resuming subscribers, cancel,
state from any instance, a dead worker's task, and a real RQ worker's job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import redis
import requests
from rq import Queue

from broker import make_broker
from tasks import TaskReporter
from tests.support.channel_clients import data, subscribe, take
from tests.support.clients import wait_until


@pytest.fixture(scope="module", params=["memory", "redis"])
def server(request, start_server):
    env = {"HEARTBEAT_SECONDS": "1"}
    if request.param == "redis":
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    return start_server(env=env)


def start_task(url: str, **body) -> dict:
    response = requests.post(f"{url}/api/tasks", json=body, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()


def state(url: str, task: dict) -> dict:
    return requests.get(url + task["status_url"], timeout=10).json()


def read_to_the_end(url: str, path: str, last_id: str | None = None) -> list:
    with subscribe(url, path, last_id) as stream:
        return [event for _, event in stream.events()]


def test_a_task_streams_its_progress_then_done(server):
    task = start_task(server.url, steps=4, step_ms=50)
    assert task["events_url"] == f"/sse/tasks/{task['id']}"
    assert task["status_url"] == f"/api/tasks/{task['id']}"
    events = read_to_the_end(server.url, task["events_url"])
    assert [e.type for e in events] == ["progress"] * 5 + ["done"]
    assert data(events)[1] == {"step": 1, "steps": 4, "percent": 25, "message": "step 1 of 4"}
    assert data(events)[-1] == {"result": {"steps": 4}}
    assert state(server.url, task) == {"id": task["id"], "status": "done", "step": 4, "steps": 4,
                                       "percent": 100, "message": "step 4 of 4",
                                       "result": {"steps": 4}}


def test_a_late_subscriber_starts_with_the_current_step(server):
    task = start_task(server.url, steps=40, step_ms=50)
    time.sleep(0.5)
    with subscribe(server.url, task["events_url"]) as stream:
        events = stream.events()
        first = take(events, 1)[0]
        assert first.type == "progress" and json.loads(first.data)["step"] >= 3
        following = [json.loads(e.data)["step"] for e in take(events, 3)]
        assert following == list(range(json.loads(first.data)["step"] + 1,
                                       json.loads(first.data)["step"] + 4))


def test_after_the_end_a_subscriber_gets_the_final_event_or_nothing(server):
    task = start_task(server.url, steps=3, step_ms=0)
    wait_until(lambda: state(server.url, task)["status"] == "done", timeout=10)
    everything = read_to_the_end(server.url, task["events_url"], "0-0")
    assert [e.type for e in everything][-2:] == ["progress", "done"]
    assert [e.type for e in read_to_the_end(server.url, task["events_url"])] == ["done"]
    # Resuming mid-way: exactly what followed, even after the end.
    tail = read_to_the_end(server.url, task["events_url"], everything[1].last_event_id)
    assert [e.last_event_id for e in tail] == [e.last_event_id for e in everything[2:]]
    # A client that saw the end gets 204, which stops EventSource's reconnecting.
    seen_end = requests.get(server.url + task["events_url"], timeout=10,
                            headers={"Last-Event-ID": everything[-1].last_event_id})
    assert seen_end.status_code == 204


def test_cancel_ends_the_task_and_its_streams(server):
    task = start_task(server.url, steps=100, step_ms=100)
    with subscribe(server.url, task["events_url"]) as stream:
        events = stream.events()
        take(events, 2)
        cancelled = requests.delete(server.url + task["status_url"], timeout=10)
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        rest = [event for _, event in events]
    assert rest[-1].type == "cancelled"
    assert json.loads(rest[-1].data) == {"message": "cancelled by a client"}
    time.sleep(0.3)  # the task greenlet stopped: no progress after the end
    assert state(server.url, task)["status"] == "cancelled"
    again = requests.delete(server.url + task["status_url"], timeout=10)
    assert again.status_code == 200
    done = start_task(server.url, steps=1, step_ms=0)
    wait_until(lambda: state(server.url, done)["status"] == "done", timeout=10)
    assert requests.delete(server.url + done["status_url"], timeout=10).status_code == 409


@pytest.mark.parametrize(("body", "param"), [
    ({"steps": 0}, "steps"), ({"steps": 10_001}, "steps"), ({"steps": "5"}, "steps"),
    ({"steps": True}, "steps"), ({"step_ms": -1}, "step_ms"), ({"step_ms": 60_001}, "step_ms"),
])
def test_bad_input_is_400_and_unknown_ids_404(server, body, param):
    response = requests.post(f"{server.url}/api/tasks", json=body, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    for path in ("/api/tasks/", "/sse/tasks/"):
        for unknown in ("f" * 32, "not-an-id"):
            assert requests.get(server.url + path + unknown, timeout=10).status_code == 404
    assert requests.delete(f"{server.url}/api/tasks/{'f' * 32}", timeout=10).status_code == 404


def test_defaults_without_a_body(server):
    task = requests.post(f"{server.url}/api/tasks", timeout=10).json()
    assert state(server.url, task)["steps"] == 20
    requests.delete(server.url + task["status_url"], timeout=10)


@pytest.fixture(scope="module")
def pair(start_server, redis_url):
    env = {"REDIS_URL": redis_url, "HEARTBEAT_SECONDS": "1", "TASK_LEASE_SECONDS": "1.5"}
    return start_server(env=env), start_server(env=env)


def test_a_task_started_on_one_instance_streams_from_the_other(pair):
    first, second = pair
    task = start_task(first.url, steps=5, step_ms=50)
    events = read_to_the_end(second.url, task["events_url"])
    assert events[-1].type == "done"
    assert state(second.url, task)["status"] == "done"


def test_a_task_whose_worker_died_is_failed_within_its_lease(pair):
    first, second = pair
    task = start_task(first.url, steps=1000, step_ms=200)
    with subscribe(second.url, task["events_url"]) as stream:
        events = stream.events()
        take(events, 2)
        (worker,) = first.worker_pids()
        os.kill(worker, signal.SIGKILL)
        killed_at = time.monotonic()
        rest = [event for _, event in events]
    # Lease 1.5 s, checked every 0.5 s while quiet: well within the 60 s a lost worker may take
    # to be noticed.
    assert time.monotonic() - killed_at < 10
    assert rest[-1].type == "failed"
    assert json.loads(rest[-1].data) == {"message": "the worker running the task stopped"}
    assert state(second.url, task)["status"] == "failed"
    wait_until(lambda: len(first.worker_pids()) == 1, timeout=20)  # gunicorn replaced it


def test_an_rq_job_reports_progress_through_the_reporter(pair, redis_url):
    first, _ = pair
    broker = make_broker(redis_url, 100, 10)
    queue = Queue(f"test-{os.getpid()}", connection=redis.Redis.from_url(redis_url))
    counted, broken = TaskReporter(broker=broker), TaskReporter(broker=broker)
    counted.start(steps=5, message="queued")
    broken.start(steps=5, message="queued")
    queue.enqueue("tests.support.rq_jobs.count_to", counted.id, 5)
    queue.enqueue("tests.support.rq_jobs.break_at", broken.id, 2)
    with subscribe(first.url, f"/sse/tasks/{counted.id}") as stream:
        assert data(take(stream.events(), 1))[0]["message"] == "queued"
        worker = subprocess.run(
            [sys.executable, "-m", "rq.cli", "worker", "--burst", "--url", redis_url,
             queue.name], text=True, capture_output=True, timeout=60,
            env={**os.environ, "REDIS_URL": redis_url})
        assert worker.returncode == 0, worker.stderr
        events = [event for _, event in stream.events()]
    steps = [json.loads(e.data).get("step") for e in events[:-1]]
    assert steps == [1, 2, 3, 4, 5], worker.stderr
    assert (events[-1].type, json.loads(events[-1].data)) == ("done", {"result": {"counted": 5}})
    failed = read_to_the_end(first.url, f"/sse/tasks/{broken.id}")
    assert failed[-1].type == "failed"
    assert json.loads(failed[-1].data) == {"message": "the job raised ValueError"}
    broker.close()
