"""One viewer's stream of a log: its catch-up read from the file, then the watcher's lines.

`LogTailSource` is a pipeline `Source` (`streaming/pipeline.py`). It joins the file's watcher
when the stream starts (not in the view, so a response that is never iterated holds nothing),
reads what the client is missing straight from the file in bounded chunks (the last `tail`
lines, or everything after its Last-Event-ID), then writes whatever its queue holds as one
chunk per wake-up. The catch-up ends exactly where the watcher's queue begins, so nothing is
sent twice and nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from gevent.queue import Empty

from streaming.cancellation import Cancellation
from streaming.encoded import error_event
from streaming.failure import Failure
from streaming.sources import IDLE
from streaming.validation import InvalidParameter, integer

from .events import OVERFLOW_FAILURE, line_event, reset_event
from .lines import last_boundary, read_lines, tail_start
from .tails import LogTails
from .watcher import FAILED, OVERFLOW, Published, Reset, Viewer

TAIL_DEFAULT, TAIL_MAX = 50, 1000
OFFSET_MAX_DIGITS = 19  # a signed 64-bit file offset

NOT_FOUND = Failure("not_found", "no such log")


class LogUnavailable(Exception):
    """The file's watcher failed; the stream ends with `event: error`."""

    failure = Failure("log_unavailable", "the log could not be read")


def parse_tail(values: Mapping[str, Any]) -> int:
    """`tail`: how many past lines to send first, 0..1000, default 50."""
    return integer(values, "tail", TAIL_DEFAULT, 0, TAIL_MAX, from_text=True)


def parse_offset(raw: str | None) -> int | None:
    """The offset a Last-Event-ID names (digits only), or None for a new stream."""
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= OFFSET_MAX_DIGITS):
        raise InvalidParameter("last_event_id",
                               f"Last-Event-ID must be a byte offset, got {raw[:40]!r}")
    return int(raw)


class LogTailSource:
    """The stream of log `name`: the last `tail` lines, or those after offset `resume`, then
    every line appended, until the client leaves.

    `since` is the file's size when the request came: the tail is counted up to there, so a
    line appended while the stream starts is sent after the tail, never mistaken for part of
    it (and so never left out with `tail=0`).
    """

    def __init__(self, tails: LogTails, name: str, *, tail: int = TAIL_DEFAULT,
                 resume: int | None = None, since: int | None = None) -> None:
        self._tails = tails
        self._name = name
        self._tail = tail
        self._resume = resume
        self._since = since

    def batches(self, idle: float | None,
                cancellation: Cancellation) -> Iterator[list | object]:
        viewer = self._tails.join(self._name)
        if viewer is None:  # removed since the view checked it
            yield [error_event(NOT_FOUND)]
            return
        cancellation.on_cancel(viewer.wake)
        try:
            skip = yield from self._catch_up(viewer)
            yield from self._follow(viewer, skip, idle, cancellation)
        finally:
            viewer.leave()

    def _catch_up(self, viewer: Viewer) -> Iterator[list]:
        """Send what the client lacks up to where the watcher's queue starts; return the offset
        up to which the client has the file."""
        resume = self._resume
        if resume is None:
            end = viewer.published
            if self._since is not None and end > self._since:
                end = last_boundary(viewer.read, self._since)
            start = resume = tail_start(viewer.read, end, self._tail)
        elif resume > viewer.size:  # a shorter file than the client saw: truncated or rotated
            yield [reset_event("offset_past_end")]
            start = resume = 0
        else:
            start = min(resume, viewer.published)
        for lines in read_lines(viewer.read, start, viewer.published, final=True):
            yield [line_event(line) for line in lines]
        viewer.release_file()
        return resume

    def _follow(self, viewer: Viewer, skip: int, idle: float | None,
                cancellation: Cancellation) -> Iterator[list | object]:
        queue = viewer.queue
        while not cancellation.cancelled:
            try:
                item = queue.get(timeout=idle)
            except Empty:
                yield IDLE
                continue
            batch: list[bytes] = []
            while True:
                if type(item) is Published:
                    viewer.backlog -= item.size
                    batch.extend(item.after(skip))
                elif type(item) is Reset:
                    batch.append(reset_event(item.reason))
                    skip = 0
                elif item is OVERFLOW:
                    batch.append(error_event(OVERFLOW_FAILURE))
                    yield batch
                    return
                elif item is FAILED:
                    if batch:
                        yield batch
                    raise LogUnavailable()
                if queue.empty():
                    break
                item = queue.get_nowait()
            if batch:
                yield batch
