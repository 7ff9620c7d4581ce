"""streaming/cancellation.py: waiting for a cancellation or a timeout."""

from __future__ import annotations

import time

import gevent

from streaming.cancellation import Cancellation


def _busy(seconds: float) -> None:
    gevent.sleep(0.005)  # woken by a timer, like a paced stream
    end = time.monotonic() + seconds
    while time.monotonic() < end:  # CPU work that never yields, like other streams' writes
        pass


def test_a_wait_after_a_busy_loop_turn_lasts_its_whole_timeout():
    # Regression: libev counted the timeout from the time cached when the loop turn began,
    # so after 30 ms of other greenlets' work a 10 ms wait returned at once (an early wakeup
    # that made every paced stream wait twice).
    cancellation = Cancellation()
    waited = []

    def wait() -> None:
        gevent.sleep(0.005)  # the same timer tick: runs right after the busy greenlet
        began = time.monotonic()
        assert cancellation.wait(0.01) is False
        waited.append(time.monotonic() - began)

    gevent.joinall([gevent.spawn(_busy, 0.03), gevent.spawn(wait)])
    assert waited[0] >= 0.01


def test_cancel_wakes_every_waiter_with_true():
    cancellation = Cancellation()
    waiters = [gevent.spawn(cancellation.wait, 5) for _ in range(3)]
    gevent.sleep(0)
    cancellation.cancel("gone")
    assert [w.get(timeout=1) for w in waiters] == [True, True, True]
    assert cancellation.reason == "gone"
