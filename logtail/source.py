"""One viewer's stream of a log: its catch-up read from the file, then the watcher's lines.

`LogTailSource` is a pipeline `Source` (`streaming/pipeline.py`). It joins the file's watcher
when the stream starts (not in the view, so a response that is never iterated holds nothing),
reads what the client is missing straight from the file in bounded chunks (the last `tail`
lines, or everything after its Last-Event-ID), then writes whatever its mailbox holds as one
chunk per wake-up. The catch-up ends exactly where the watcher's mailbox begins, so nothing is
sent twice and nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from http_policy.validation import InvalidParameter, integer
from streaming.cancellation import Cancellation
from streaming.mailbox import Mailbox, batches_of

from .events import NOT_FOUND_ERROR, line_event, reset_event
from .lines import last_boundary, read_lines, tail_start
from .tails import LogTails
from .watcher import Published, Reset, Viewer

TAIL_DEFAULT, TAIL_MAX = 50, 1000
OFFSET_MAX_DIGITS = 19  # a signed 64-bit file offset


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
        self._client_has = 0  # the offset up to which the client has the file

    def batches(self, idle: float | None,
                cancellation: Cancellation) -> Iterator[list | object]:
        viewer = self._tails.join(self._name)
        if viewer is None:  # removed since the view checked it
            yield [NOT_FOUND_ERROR]
            return
        mailbox = viewer.mailbox
        cancellation.on_cancel(mailbox.wake)
        try:
            self._client_has = yield from self._catch_up(viewer)
            yield from batches_of(lambda timeout: self._next_batch(mailbox, timeout), idle,
                                  cancellation)
        finally:
            viewer.leave()

    def _catch_up(self, viewer: Viewer) -> Iterator[list]:
        """Send what the client lacks up to where the watcher's mailbox starts; return the
        offset up to which the client has the file."""
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

    def _next_batch(self, mailbox: Mailbox, timeout: float | None) -> list[bytes] | None:
        """The events of what `mailbox` holds, but for lines the client has; None when
        `timeout` passed without any, `[]` at the end."""
        while True:
            items = mailbox.take(timeout)
            if not items:
                return items
            batch: list[bytes] = []
            for item in items:
                if type(item) is Published:
                    batch.extend(item.after(self._client_has))
                elif type(item) is Reset:
                    batch.append(item.event)
                    self._client_has = 0
                else:  # the error event a mailbox ends with (an overflow, a failed watcher)
                    batch.append(item)
            if batch:
                return batch
