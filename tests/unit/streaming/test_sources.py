import time

import gevent
import pytest

from streaming.cancellation import Cancellation
from streaming.sources import IDLE, MAX_BATCH, PacedSource, ProducerFailed, ProducerSource


def test_paced_items_are_released_when_due():
    source = PacedSource([(0.0, "a"), (0.05, "b"), (0.10, "c")])
    began = time.monotonic()
    arrivals = [(batch, time.monotonic() - began)
                for batch in source.batches(None, Cancellation())]
    assert [batch for batch, _ in arrivals] == [["a"], ["b"], ["c"]]
    assert arrivals[1][1] >= 0.05
    assert arrivals[2][1] >= 0.10


def test_items_already_due_go_out_together_in_bounded_batches():
    source = PacedSource((0.0, i) for i in range(MAX_BATCH * 2 + 3))
    sizes = [len(batch) for batch in source.batches(None, Cancellation())]
    assert sizes == [MAX_BATCH, MAX_BATCH, 3]


def test_idle_is_reported_while_waiting():
    source = PacedSource([(0.25, "late")])
    batches = list(source.batches(0.1, Cancellation()))
    assert batches[:2] == [IDLE, IDLE]
    assert batches[-1] == ["late"]


def test_cancellation_ends_the_wait_at_once():
    cancellation = Cancellation()
    source = PacedSource([(10.0, "never")])
    gevent.spawn_later(0.05, cancellation.cancel)
    began = time.monotonic()
    assert list(source.batches(None, cancellation)) == []
    assert time.monotonic() - began < 1.0


def test_a_paced_source_cancelled_before_it_runs_releases_nothing():
    cancellation = Cancellation()
    cancellation.cancel()
    assert list(PacedSource([(0.0, "due"), (0.0, "due too")]).batches(None, cancellation)) == []


def test_a_paced_source_stops_between_batches_once_cancelled():
    cancellation = Cancellation()
    batches = PacedSource([(0.0, "a"), (0.01, "b")]).batches(None, cancellation)
    assert next(batches) == ["a"]
    cancellation.cancel()
    assert list(batches) == []


def test_a_fast_paced_source_lets_other_greenlets_run_between_batches():
    ticks = []
    ticker = gevent.spawn(lambda: [ticks.append(time.monotonic()) or gevent.sleep(0)
                                   for _ in range(10_000)])
    batches = list(PacedSource((0.0, i) for i in range(MAX_BATCH * 20)).batches(None,
                                                                                 Cancellation()))
    ticker.kill()
    assert len(batches) == 20
    assert len(ticks) >= 19


def test_a_failing_iterator_delivers_what_it_made_then_raises():
    def items():
        yield 0.0, "a"
        yield 0.0, "b"
        raise ValueError("boom")

    got = []
    with pytest.raises(ValueError, match="boom"):
        for batch in PacedSource(items()).batches(None, Cancellation()):
            got.extend(batch)
    assert got == ["a", "b"]


def test_producer_items_arrive_in_order():
    def produce(emit):
        for i in range(1000):
            emit(i)

    got = [item for batch in ProducerSource(produce, maxsize=8).batches(None, Cancellation())
           for item in batch]
    assert got == list(range(1000))


def test_a_slow_reader_blocks_the_producer():
    produced = []

    def produce(emit):
        for i in range(100):
            emit(i)
            produced.append(i)

    batches = ProducerSource(produce, maxsize=4).batches(None, Cancellation())
    next(batches)
    gevent.sleep(0.05)
    # The batch the reader holds, a full queue behind it, and the item being emitted: memory
    # stays bounded however slow the reader is.
    assert len(produced) <= 2 * 4 + 1
    batches.close()


def test_cancel_kills_the_producer_and_wakes_the_reader():
    cancellation = Cancellation()
    finished = []

    def produce(emit):
        try:
            emit("first")
            gevent.sleep(30)
        finally:
            finished.append(True)

    batches = ProducerSource(produce).batches(None, cancellation)
    assert next(batches) == ["first"]
    gevent.spawn_later(0.05, cancellation.cancel)
    began = time.monotonic()
    assert list(batches) == []
    gevent.sleep(0.01)
    assert time.monotonic() - began < 1.0
    assert finished == [True]


def test_producer_failure_is_raised_after_its_items():
    def produce(emit):
        emit("made")
        raise OSError("upstream gone")

    got = []
    with pytest.raises(ProducerFailed) as caught:
        for batch in ProducerSource(produce).batches(None, Cancellation()):
            got.extend(batch)
    assert got == ["made"]
    assert isinstance(caught.value.__cause__, OSError)


def test_producer_idle_reports_idle():
    def produce(emit):
        gevent.sleep(0.25)
        emit("late")

    batches = list(ProducerSource(produce).batches(0.1, Cancellation()))
    assert batches[0] is IDLE
    assert batches[-1] == ["late"]
