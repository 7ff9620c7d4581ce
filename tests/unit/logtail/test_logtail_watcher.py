"""logtail/watcher.py, tails.py and source.py in one process: viewers of a growing file.

Each reader is a greenlet driving a `LogTailSource` as the pipeline would. The same behaviour is
tested against the real server in test_logs_server.py; here the slow viewer is deterministic.
"""

from __future__ import annotations

import json
import os
import time

import gevent
import pytest

from logtail.directory import LogDirectory
from logtail.source import LogTailSource
from logtail.tails import LogTails
from logtail.watcher import LogWatcher
from streaming.cancellation import Cancellation
from streaming.sources import IDLE
from streaming.sse import SSEParser
from tests.support.clients import descriptors_on


class Reader:
    """One viewer in a greenlet; `consume=False` makes it a client that reads nothing."""

    def __init__(self, tails: LogTails, name: str, **options) -> None:
        self.cancellation = Cancellation()
        self.events = []
        self.ended = False
        self._parser = SSEParser()
        self._source = LogTailSource(tails, name, **options)
        self._batches = self._source.batches(0.2, self.cancellation)
        self.greenlet = None

    def start(self) -> Reader:
        self.greenlet = gevent.spawn(self._run)
        return self

    def _run(self) -> None:
        for batch in self._batches:
            if batch is not IDLE:
                self.events += self._parser.feed(b"".join(batch))
        self.ended = True

    def lines(self) -> list[str]:
        return [event.data for event in self.events if event.type == "message"]

    def wait_for(self, count: int, timeout: float = 5) -> list:
        deadline = time.monotonic() + timeout
        while len(self.events) < count:
            assert time.monotonic() < deadline, [e.data for e in self.events]
            gevent.sleep(0.01)
        return self.events

    def close(self) -> None:
        self.cancellation.cancel()
        if self.greenlet is not None:
            self.greenlet.join(timeout=2)
        self._batches.close()


@pytest.fixture
def logdir(tmp_path):
    (tmp_path / "app.log").write_bytes(b"".join(b"old %d\n" % i for i in range(5)))
    return tmp_path


@pytest.fixture
def tails(logdir):
    return LogTails(LogDirectory(str(logdir)))


def append(path, text: str) -> None:
    with open(path, "a") as file:
        file.write(text)


def test_tail_then_follow_with_offsets_as_ids(tails, logdir):
    reader = Reader(tails, "app.log", tail=2).start()
    reader.wait_for(2)
    append(logdir / "app.log", "new 1\nnew 2\n")
    events = reader.wait_for(4)
    assert [e.data for e in events] == ["old 3", "old 4", "new 1", "new 2"]
    size = (logdir / "app.log").stat().st_size
    assert [int(e.last_event_id) for e in events] == [24, 30, size - 6, size]
    reader.close()


def test_resume_from_an_offset_ignores_tail_and_repeats_nothing(tails, logdir):
    reader = Reader(tails, "app.log", tail=0, resume=12).start()
    events = reader.wait_for(3)
    assert [e.data for e in events] == ["old 2", "old 3", "old 4"]
    reader.close()


def test_resume_ahead_of_the_watcher_skips_what_the_client_has(tails, logdir):
    """Another worker's watcher may have handed out lines this one has not read yet."""
    first = Reader(tails, "app.log", tail=0).start()
    gevent.sleep(0.05)
    append(logdir / "app.log", "a\nb\nc\n")
    size = (logdir / "app.log").stat().st_size
    resumed = Reader(tails, "app.log", resume=size - 2).start()  # it already has "a" and "b"
    assert [e.data for e in resumed.wait_for(1)] == ["c"]
    gevent.sleep(0.3)
    assert resumed.lines() == ["c"]
    first.close()
    resumed.close()


def test_an_offset_past_the_end_resets_to_the_start(tails):
    reader = Reader(tails, "app.log", resume=10_000).start()
    events = reader.wait_for(6)
    assert (events[0].type, json.loads(events[0].data), events[0].last_event_id) == (
        "reset", {"reason": "offset_past_end"}, "0")
    assert reader.lines() == [f"old {i}" for i in range(5)]
    reader.close()


def test_many_viewers_share_one_watcher_and_one_descriptor(tails, logdir):
    readers = [Reader(tails, "app.log", tail=1).start() for _ in range(25)]
    for reader in readers:
        reader.wait_for(1)
    assert tails.watched() == ["app.log"]
    assert descriptors_on(os.getpid(), logdir / "app.log") == 1
    append(logdir / "app.log", "for everyone\n")
    for reader in readers:
        assert reader.wait_for(2)[-1].data == "for everyone"
    for reader in readers:
        reader.close()
    gevent.sleep(0.2)
    assert tails.watched() == []
    assert descriptors_on(os.getpid(), logdir / "app.log") == 0


def test_a_partial_line_waits_for_its_newline(tails, logdir):
    reader = Reader(tails, "app.log", tail=0).start()
    gevent.sleep(0.05)
    append(logdir / "app.log", "half")
    gevent.sleep(0.4)
    assert reader.events == []
    append(logdir / "app.log", " and half\n")
    assert [e.data for e in reader.wait_for(1)] == ["half and half"]
    reader.close()


def test_truncation_resets_and_follows_from_zero(tails, logdir):
    reader = Reader(tails, "app.log", tail=1).start()
    reader.wait_for(1)
    os.truncate(logdir / "app.log", 0)
    gevent.sleep(0.3)
    append(logdir / "app.log", "fresh\n")
    events = reader.wait_for(3)
    assert [(e.type, e.data) for e in events[1:]] == [
        ("reset", '{"reason":"truncated"}'), ("message", "fresh")]
    assert events[2].last_event_id == "6"
    reader.close()


def test_rotation_sends_the_old_files_last_lines_then_the_new_file(tails, logdir):
    reader = Reader(tails, "app.log", tail=0).start()
    gevent.sleep(0.05)
    path = logdir / "app.log"
    append(path, "last words\nunterminated")
    os.rename(path, logdir / "app.log.1")
    path.write_text("new file\n")
    events = reader.wait_for(4)
    assert [(e.type, e.data) for e in events] == [
        ("message", "last words"), ("message", "unterminated"),
        ("reset", '{"reason":"rotated"}'), ("message", "new file")]
    assert events[-1].last_event_id == "9"
    append(path, "more\n")
    assert reader.wait_for(5)[-1].data == "more"
    reader.close()


def test_a_slow_viewer_overflows_alone(logdir):
    tails = LogTails(LogDirectory(str(logdir)), backlog_limit=2000)
    fast = Reader(tails, "app.log", tail=0).start()
    slow = Reader(tails, "app.log", tail=0)
    next(slow._batches)  # joined (an empty tail), then it reads nothing more
    lines = [f"line {i:04d} " + "x" * 40 for i in range(200)]
    for start in range(0, 200, 20):
        append(logdir / "app.log", "".join(line + "\n" for line in lines[start:start + 20]))
        gevent.sleep(0.05)
    assert fast.wait_for(200)[-1].data == lines[-1]
    slow.start()
    # Like a broker subscriber (streaming/mailbox.py), an overflowing viewer's pending lines are
    # dropped at once: it may get only the error, and resumes from its Last-Event-ID.
    events = slow.wait_for(1)
    gevent.sleep(0.1)
    assert slow.ended
    assert events[-1].type == "error"
    assert json.loads(events[-1].data)["type"] == "overflow"
    received = [e.data for e in events if e.type == "message"]
    assert received == lines[:len(received)]
    assert tails.watched() == ["app.log"]  # the fast viewer still follows
    fast.close()
    slow.close()


def test_a_log_removed_before_the_stream_starts_ends_with_an_error(tails, logdir):
    os.remove(logdir / "app.log")
    reader = Reader(tails, "app.log").start()
    events = reader.wait_for(1)
    assert events[0].type == "error"
    assert json.loads(events[0].data)["type"] == "not_found"


def test_a_watcher_that_fails_ends_every_viewer_with_an_error(tails, logdir, monkeypatch):
    readers = [Reader(tails, "app.log", tail=1).start() for _ in range(2)]
    for reader in readers:
        reader.wait_for(1)

    def unreadable(watcher):
        raise OSError("the disk went away")

    monkeypatch.setattr(LogWatcher, "_poll", unreadable)
    append(logdir / "app.log", "never seen\n")
    for reader in readers:
        events = reader.wait_for(2)
        gevent.sleep(0.05)
        assert reader.ended
        assert [e.type for e in events] == ["message", "error"]
        assert json.loads(events[-1].data)["type"] == "log_unavailable"
        reader.close()
    assert tails.watched() == []
