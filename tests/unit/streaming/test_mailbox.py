import time

import gevent

from streaming.cancellation import Cancellation
from streaming.mailbox import Mailbox, batches_of
from streaming.sources import IDLE

OVERFLOW = "overflow!"


def test_everything_pending_is_taken_as_one_batch():
    mailbox = Mailbox(10, OVERFLOW)
    assert mailbox.put([1, 2]) and mailbox.put([3])
    assert mailbox.take(0) == [1, 2, 3]
    assert mailbox.take(0.01) is None  # nothing came: timed out


def test_a_waiting_reader_is_woken_by_a_put_from_another_greenlet():
    mailbox = Mailbox(10, OVERFLOW)
    gevent.spawn_later(0.05, mailbox.put, ["late"])
    began = time.monotonic()
    assert mailbox.take(5) == ["late"]
    assert time.monotonic() - began < 2


def test_each_wait_times_out_counted_from_its_own_start():
    # The reader's idle timer is reused: after it fired, or after a put cut a wait short, the
    # next wait must still last its whole timeout, not end at once.
    mailbox = Mailbox(10, OVERFLOW)
    assert mailbox.take(0.05) is None
    gevent.spawn_later(0.02, mailbox.put, ["early"])
    assert mailbox.take(0.3) == ["early"]
    for _ in range(2):
        began = time.monotonic()
        assert mailbox.take(0.3) is None
        assert time.monotonic() - began >= 0.25


def test_a_reader_that_falls_behind_gets_only_the_overflow_then_the_end():
    mailbox = Mailbox(3, OVERFLOW)
    assert mailbox.put([1, 2])
    assert not mailbox.put([3, 4])  # 4 > 3: dropped, pending items freed
    assert mailbox.overflowed and mailbox.closed
    assert not mailbox.put([5])
    assert mailbox.take(0) == [OVERFLOW]
    assert mailbox.take(0) == []


def test_close_delivers_what_is_pending_then_the_final_item_once():
    mailbox = Mailbox(10, OVERFLOW)
    mailbox.put(["a"])
    mailbox.close("bye")
    assert mailbox.take(None) == ["a", "bye"]
    assert mailbox.take(None) == []


def test_put_never_blocks_the_writer():
    mailbox = Mailbox(1000, OVERFLOW)
    began = time.monotonic()
    for i in range(100):
        mailbox.put([i])
    assert time.monotonic() - began < 1
    assert len(mailbox.take(0)) == 100


def test_batches_reports_idle_and_ends_on_cancellation():
    mailbox = Mailbox(10, OVERFLOW)
    cancellation = Cancellation()
    batches = mailbox.batches(0.02, cancellation)
    assert next(batches) is IDLE
    mailbox.put(["x"])
    assert next(batches) == ["x"]
    gevent.spawn_later(0.02, cancellation.cancel)
    began = time.monotonic()
    assert list(batches) in ([], [IDLE])
    assert time.monotonic() - began < 2


def test_batches_end_after_the_final_item():
    mailbox = Mailbox(10, OVERFLOW)
    mailbox.put(["x"])
    mailbox.close("end")
    assert list(mailbox.batches(None, Cancellation())) == [["x", "end"]]


def test_with_weigh_the_bound_counts_weights_not_items():
    mailbox = Mailbox(10, OVERFLOW, weigh=len)
    assert mailbox.put(["abcd", "efgh"])  # 8 of 10
    assert mailbox.take(0) == ["abcd", "efgh"]  # taking frees the whole load
    assert mailbox.put(["0123456789"])
    assert not mailbox.put(["x"])  # 11 > 10
    assert mailbox.take(0) == [OVERFLOW]


def test_batches_of_stops_at_an_empty_batch_and_reports_none_as_idle():
    answers = iter([None, ["a"], ["b", "c"], [], ["never"]])
    batches = list(batches_of(lambda timeout: next(answers), 0.01, Cancellation()))
    assert batches == [IDLE, ["a"], ["b", "c"]]
