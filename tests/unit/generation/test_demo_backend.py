"""generation/demo_backend.py: the demo model's answer, paced, and stopped by a cancel."""

from __future__ import annotations

import time

import gevent

from generation import demo_model
from generation.demo_backend import DemoBackend
from generation.events import End, Token
from generation.params import GenerationParams
from streaming.cancellation import Cancellation


def _open(params: GenerationParams, cancellation: Cancellation | None = None):
    return DemoBackend().open(params, cancellation or Cancellation(), "http://unused/mock/v1")


def test_the_answer_is_the_demo_models_then_stop():
    params = GenerationParams("a prompt", 600, 0)  # past the tokens given out between yields
    answer = _open(params)
    events = list(answer)
    texts = list(demo_model.generate("a prompt", 600))
    assert events == [*(Token(i, text) for i, text in enumerate(texts)), End("stop", 600)]
    assert (answer.model, DemoBackend.name) == ("demo", "demo")


def test_tokens_due_at_once_let_the_loop_run_others():
    ran = []
    gevent.spawn(ran.append, "other")
    for event in _open(GenerationParams("p", 300, 0)):
        if event == Token(255, demo_model.token(demo_model.seed("p"), 255)):
            break
    assert ran == ["other"]


def test_tokens_are_paced_from_the_start():
    began = time.monotonic()
    times = [time.monotonic() - began for _ in _open(GenerationParams("p", 5, 30))]
    assert times[0] >= 0.03 * 0.9
    assert times[4] >= 0.15 * 0.9  # the fifth token at 5 delays, End with it
    assert times[5] - times[4] < 0.02
    assert times[5] < 1.0


def _first_tokens_then(stop, params: GenerationParams,
                       cancellation: Cancellation) -> tuple[list, float]:
    answer = _open(params, cancellation)
    events = []
    gevent.spawn_later(0.1, stop, answer)
    began = time.monotonic()
    events.extend(answer)
    return events, time.monotonic() - began


def test_a_cancel_mid_way_stops_the_answer_at_once():
    cancellation = Cancellation()
    events, took = _first_tokens_then(lambda _: cancellation.cancel("gone"),
                                      GenerationParams("p", 10, 40), cancellation)
    assert 1 <= len(events) <= 3 and all(type(e) is Token for e in events)
    assert took < 0.2  # woken, not left to wait for its next token


def test_close_mid_way_stops_the_answer_at_once():
    events, took = _first_tokens_then(lambda answer: answer.close(),
                                      GenerationParams("p", 3, 1000), Cancellation())
    assert events == []
    assert took < 0.5


def test_an_answer_cancelled_before_it_began_gives_nothing():
    cancellation = Cancellation()
    cancellation.cancel()
    assert list(_open(GenerationParams("p", 3, 0), cancellation)) == []


def test_after_close_iteration_stops():
    answer = _open(GenerationParams("p", 5, 0))
    assert next(iter(answer)) == Token(0, demo_model.token(demo_model.seed("p"), 0))
    answer.close()
    assert list(answer) == []


def test_the_backend_names_itself_and_its_model_as_start_reports_them():
    backend = DemoBackend()
    assert (backend.name, backend.model) == ("demo", demo_model.MODEL_NAME)
