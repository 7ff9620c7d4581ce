"""Generations on the memory broker, in process: runs, views, cancels, grace, expiry."""

from __future__ import annotations

import time

import gevent
import pytest

from broker import AT_END
from broker.memory import MemoryBroker
from generation.backends import ModelError
from generation.events import End, Reset, Start, Token
from generation.params import GenerationParams
from generations import (
    CANCELLED,
    DONE,
    EXPIRED,
    FAILED,
    Generations,
    RunLimits,
    UnknownGeneration,
    parse_resume_id,
    record,
)
from http_policy.validation import InvalidParameter
from streaming.cancellation import Cancellation
from streaming.failure import Failure
from streaming.sources import IDLE
from tests.support.scripted_backend import ScriptedBackend

WORDS = [f" w{i}" for i in range(40)]
USAGE = {"prompt_tokens": 3, "completion_tokens": 40, "total_tokens": 43}
PARAMS = GenerationParams("hello", 40, 0)


def make(backend: ScriptedBackend, *, grace: float = 10.0, max_seconds: float = 60.0,
         ttl: float = 60.0, lease: float = 30.0) -> Generations:
    limits = RunLimits(max_seconds=max_seconds, ttl_seconds=ttl, lease_seconds=lease)
    return Generations(MemoryBroker(100, 1000), backend, limits, grace)


def run_to_end(generations: Generations, **start) -> str:
    run = generations.start(PARAMS, "http://unused", **start)
    gevent.wait([generations_greenlet(generations, run.id)], timeout=5)
    return run.id


def generations_greenlet(generations: Generations, id_: str):
    """Wait until the run is gone from the worker (its greenlet ended)."""
    def wait() -> None:
        while id_ in generations._running:
            gevent.sleep(0.005)
    return gevent.spawn(wait)


def view_items(generations: Generations, id_: str, after: int | None = None,
               timeout: float = 5.0) -> list:
    view = generations.watch(id_, after)
    assert view is not None
    items: list = []
    cancellation = Cancellation()
    with gevent.Timeout(timeout):
        for batch in view.batches(None, cancellation):
            if batch is not IDLE:
                items += batch
    return items


def test_a_run_answers_to_its_end_and_its_state_says_so():
    generations = make(ScriptedBackend(WORDS, usage=USAGE, finish_reason="length"))
    id_ = run_to_end(generations)
    state = generations.state(id_).as_json()
    assert state == {"id": id_, "status": DONE, "tokens": 40, "finish_reason": "length",
                     "usage": USAGE, "text": "".join(WORDS)}


def test_a_fast_answer_is_written_in_batches_not_a_write_per_token():
    generations = make(ScriptedBackend(WORDS * 25))
    id_ = run_to_end(generations)
    events = generations.broker.read_after(record.topic(id_), (0, 0), 10_000)
    assert len(events) < 10 and generations.state(id_).tokens == 1000


def test_a_viewer_from_the_start_gets_start_every_token_and_the_end():
    generations = make(ScriptedBackend(WORDS, delay=0.002, usage=USAGE))
    run = generations.start(PARAMS, "http://unused")
    items = view_items(generations, run.id)
    assert items[0] == Start("scripted", 40, "upstream", run.id)
    assert items[1:-1] == [Token(i, text) for i, text in enumerate(WORDS)]
    assert items[-1] == End("stop", 40, USAGE)


def test_a_resumed_viewer_gets_exactly_the_tokens_after_its_last():
    generations = make(ScriptedBackend(WORDS, delay=0.002))
    run = generations.start(PARAMS, "http://unused")
    gevent.sleep(0.03)  # part of it written, part still to come: resume spans both
    for after in (-1, 0, 7):
        items = view_items(generations, run.id, after)
        assert [item.index for item in items if type(item) is Token] == list(range(after + 1, 40))
        assert type(items[0]) is Token and items[-1] == End("stop", 40)


def test_a_viewer_that_had_the_end_gets_nothing_and_one_ahead_of_the_broker_waits():
    generations = make(ScriptedBackend(WORDS))
    id_ = run_to_end(generations)
    assert generations.watch(id_, 40) is None and generations.watch(id_, 41) is None
    # A viewer of the run's own copy may be ahead of the broker: it gets what follows its
    # last token as the broker catches up, never a token twice.
    slow = make(ScriptedBackend(WORDS, delay=0.01))
    running = slow.start(PARAMS, "http://unused")
    items = view_items(slow, running.id, 3)
    assert [item.index for item in items if type(item) is Token] == list(range(4, 40))


def test_cancel_ends_it_for_every_viewer_and_cuts_the_model_off():
    backend = ScriptedBackend(WORDS, delay=0.05)
    generations = make(backend)
    run = generations.start(PARAMS, "http://unused")
    watching = gevent.spawn(view_items, generations, run.id)
    gevent.sleep(0.12)
    began = time.monotonic()
    state = generations.cancel(run.id)
    items = watching.get(timeout=5)
    assert state.status == CANCELLED and items[-1].finish_reason == "cancelled"
    assert items[-1].tokens == len([item for item in items if type(item) is Token]) < 40
    gevent.sleep(0.01)
    assert backend.closed == 1 and time.monotonic() - began < 1


def test_a_refusal_before_the_answer_is_the_runs_opened_error_and_fails_it():
    refusal = ModelError(429, "upstream_rate_limited", "slow down", upstream_status=429,
                         retry_after="7")
    generations = make(ScriptedBackend(WORDS, refusal=refusal))
    run = generations.start(PARAMS, "http://unused")
    assert run.opened.get(timeout=5) is refusal
    gevent.sleep(0.01)
    state = generations.state(run.id).as_json()
    assert state["status"] == FAILED
    assert state["error"] == {"type": "upstream_rate_limited", "message": "slow down",
                              "upstream_status": 429}


def test_a_failure_midway_keeps_the_tokens_before_it_and_ends_in_band():
    generations = make(ScriptedBackend(WORDS, fail_at=5))
    id_ = run_to_end(generations)
    items = view_items(generations, id_)
    assert [item.text for item in items if type(item) is Token] == WORDS[:5]
    assert items[-1] == Failure("stream_error", "the model's stream was cut")
    assert generations.state(id_).status == FAILED


def test_an_unwatched_graced_run_is_cancelled_after_its_grace_and_a_watched_one_is_not():
    backend = ScriptedBackend(WORDS, delay=0.02)
    generations = make(backend, grace=0.1)
    watched = generations.start(PARAMS, "http://unused", graced=True)
    watched.joined()
    lonely = generations.start(PARAMS, "http://unused", graced=True)
    lonely.joined()
    lonely.left()
    gevent.sleep(0.3)
    assert generations.state(lonely.id).status == CANCELLED
    assert generations.state(watched.id).status == "running"
    watched.left()
    gevent.sleep(0.25)
    assert generations.state(watched.id).status == CANCELLED and backend.closed == 2


def test_a_grace_of_zero_cuts_the_model_off_as_the_last_viewer_leaves():
    backend = ScriptedBackend(WORDS, delay=0.02)
    generations = make(backend, grace=0.0)
    run = generations.start(PARAMS, "http://unused", graced=True)
    run.joined()
    gevent.sleep(0.05)
    run.left()
    gevent.sleep(0.02)
    assert backend.closed == 1 and generations.state(run.id).status == CANCELLED


def test_a_run_past_its_maximum_time_fails():
    generations = make(ScriptedBackend(WORDS, delay=0.05), max_seconds=0.1)
    id_ = run_to_end(generations)
    state = generations.state(id_).as_json()
    assert state["status"] == FAILED and state["error"]["type"] == "generation_timeout"
    assert 0 < state["tokens"] < 40


def test_a_generation_whose_runner_died_is_failed_when_read():
    generations = make(ScriptedBackend(WORDS))
    id_ = record.new_id()  # started by a worker that is gone: no lease, no end
    generations.broker.publish_open(record.topic(id_), record.START,
                                    record.start_data("m", 5, "upstream"), position=0)
    generations.broker.publish_open(record.topic(id_), record.TOKENS,
                                    record.tokens_data(0, ["a", "b"]), position=2)
    state = generations.state(id_).as_json()
    assert state["status"] == FAILED and state["error"]["type"] == "generation_failed"
    assert state["text"] == "ab" and state["tokens"] == 2
    assert generations.broker.publish_open(record.topic(id_), "x", "{}",
                                           position=AT_END) is None


def test_a_generation_past_its_ttl_is_unknown():
    generations = make(ScriptedBackend(WORDS), ttl=0.05)
    id_ = run_to_end(generations)
    assert generations.state(id_).status == DONE
    time.sleep(0.1)
    with pytest.raises(UnknownGeneration):
        generations.state(id_)
    with pytest.raises(UnknownGeneration):
        generations.watch(id_, None)


def test_resume_ids_name_the_generation_and_the_last_token():
    id_ = record.new_id()
    assert parse_resume_id(id_) == (id_, -1)
    assert parse_resume_id(f"{id_}:12") == (id_, 12)
    for bad in ("12", f"{id_}:", f"{id_}:-1", f"{id_}:\uff13", "x" * 32 + ":1", f"{id_}:1:2"):
        with pytest.raises(InvalidParameter):
            parse_resume_id(bad)


def test_the_expired_notice_is_a_reset():
    assert Reset("generation_expired") == EXPIRED
