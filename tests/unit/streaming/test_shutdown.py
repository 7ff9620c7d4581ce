"""Lifetimes: streams ended on a worker's stop (staggered) and at their maximum age."""

from __future__ import annotations

import itertools
import random
import time

import gevent
import pytest

from streaming.cancellation import Cancellation
from streaming.shutdown import MAX_AGE, SERVER_RESTART, Lifetimes, is_restart


def _ended_at(cancellations: list[Cancellation], began: float) -> list[float]:
    ended = {}
    for index, cancellation in enumerate(cancellations):
        cancellation.on_cancel(lambda i=index: ended.setdefault(i, time.monotonic() - began))
    return ended


def test_a_tracked_stream_is_counted_until_released():
    lifetimes = Lifetimes()
    lease = lifetimes.track(Cancellation())
    assert lifetimes.open == 1
    lease.release()
    lease.release()
    assert lifetimes.open == 0


def test_stop_all_ends_every_stream_spread_over_the_window():
    lifetimes = Lifetimes(rng=random.Random(7))
    cancellations = [Cancellation() for _ in range(20)]
    for cancellation in cancellations:
        lifetimes.track(cancellation)
    began = time.monotonic()
    ended = _ended_at(cancellations, began)
    lifetimes.stop_all(window=0.5).join(timeout=5)
    assert all(c.reason == SERVER_RESTART for c in cancellations)
    offsets = sorted(ended.values())
    assert offsets[0] < 0.05
    assert 0.4 < offsets[-1] < 0.5 + 0.2
    gaps = [later - earlier for earlier, later in itertools.pairwise(offsets)]
    assert max(gaps) < 0.1  # evenly spread: 25 ms apart, give or take the timer


def test_released_streams_are_not_ended_and_a_second_stop_does_nothing():
    lifetimes = Lifetimes()
    gone, kept = Cancellation(), Cancellation()
    lifetimes.track(gone).release()
    lifetimes.track(kept)
    lifetimes.stop_all(window=0).join(timeout=5)
    assert not gone.cancelled
    assert kept.reason == SERVER_RESTART
    assert lifetimes.stop_all() is None


def test_a_stream_that_starts_while_stopping_is_told_at_once():
    lifetimes = Lifetimes()
    lifetimes.stop_all(window=0).join(timeout=5)
    late = Cancellation()
    lifetimes.track(late)
    assert late.reason == SERVER_RESTART


def test_maximum_age_with_jitter_never_past_the_limit():
    lifetimes = Lifetimes(max_age=0.3, rng=random.Random(1))
    cancellations = [Cancellation() for _ in range(10)]
    began = time.monotonic()
    ended = _ended_at(cancellations, began)
    for cancellation in cancellations:
        lifetimes.track(cancellation)
    gevent.sleep(0.5)
    assert all(c.reason == MAX_AGE for c in cancellations)
    ages = sorted(ended.values())
    assert ages[0] > 0.3 * (1 - Lifetimes.JITTER) - 0.02
    assert ages[-1] < 0.3 + 0.1
    assert ages[-1] - ages[0] > 0.005  # jittered, not all at once


def test_a_released_stream_outlives_its_maximum_age_timer():
    lifetimes = Lifetimes(max_age=0.05)
    cancellation = Cancellation()
    lifetimes.track(cancellation).release()
    gevent.sleep(0.1)
    assert not cancellation.cancelled


def test_follow_stops_all_once_alive_turns_false():
    lifetimes = Lifetimes()
    cancellation = Cancellation()
    lifetimes.track(cancellation)
    alive = [True]
    watcher = lifetimes.follow(lambda: alive[0], graceful_timeout=10)
    gevent.sleep(0.25)
    assert not cancellation.cancelled
    alive[0] = False
    began = time.monotonic()
    watcher.join(timeout=2)
    gevent.sleep(0.01)
    assert cancellation.reason == SERVER_RESTART
    assert time.monotonic() - began < Lifetimes.POLL_SECONDS + 0.1


@pytest.mark.parametrize(("graceful_timeout", "window"), [(10, 2.0), (2.5, 1.5), (1, 0.0)])
def test_the_window_leaves_gunicorn_a_second_of_its_graceful_timeout(graceful_timeout, window):
    lifetimes = Lifetimes()
    cancellations = [Cancellation() for _ in range(4)]
    for cancellation in cancellations:
        lifetimes.track(cancellation)
    began = time.monotonic()
    ended = _ended_at(cancellations, began)
    lifetimes.follow(lambda: False, graceful_timeout).join(timeout=1)
    gevent.sleep(window + 0.2)
    assert max(ended.values()) == pytest.approx(window * 3 / 4, abs=0.15)


def test_restart_reasons():
    assert is_restart(SERVER_RESTART) and is_restart(MAX_AGE)
    assert not is_restart("disconnect") and not is_restart(None)


def test_a_maximum_age_must_be_positive():
    with pytest.raises(ValueError, match="max_age"):
        Lifetimes(max_age=0)
