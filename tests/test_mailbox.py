import time

import gevent

from streaming.cancellation import Cancellation
from streaming.mailbox import Mailbox
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
