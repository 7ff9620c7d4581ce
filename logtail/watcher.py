"""One watcher per followed file per worker: one greenlet, one descriptor, every viewer.

The greenlet sleeps until libev's stat watcher reports a change of the path (immediate where
inotify works, which libev uses when it can) or `POLL_SECONDS` pass (filesystems inotify does
not see), then reads what was appended in bounded chunks, encodes each line once and puts the
same bytes in every viewer's mailbox (`streaming/mailbox.py`). Between two reads it waits
`MIN_GAP_SECONDS`, so a chatty log costs at most that many reads and writes per viewer a
second, whatever its line rate.

It follows the file the way `tail -F` does: a file shorter than what was read was truncated
(copytruncate), a different file under the name was rotated in. Either way the viewers get a
`Reset` and the lines from offset 0; on rotation the old file's last lines go out first.
The watcher stops, closing its descriptor, as soon as its last viewer leaves.

A viewer's mailbox is bounded in bytes of encoded events (`backlog_limit`): one that falls
further behind is dropped with the overflow error, what it had pending freed at once, never
slowing the watcher or the other viewers; its client resumes from its Last-Event-ID, as every
id is a file offset. If the watcher itself fails, every viewer's mailbox ends with an error.

Everything runs in the worker's greenlets and none of it is thread-safe; a `Viewer` belongs to
the greenlet serving its stream.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter

import gevent
from gevent.event import Event

from streaming.mailbox import Mailbox

from .directory import LogDirectory
from .events import OVERFLOW_ERROR, UNREADABLE_ERROR, line_event, reset_event
from .lines import Line, last_boundary, read_lines

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Published:
    """Consecutive lines of the file, encoded once and shared by every viewer."""

    ends: tuple[int, ...]
    events: tuple[bytes, ...]
    size: int

    @classmethod
    def of(cls, lines: list[Line]) -> Published:
        events = tuple(map(line_event, lines))
        return cls(tuple(end for end, _ in lines), events, sum(map(len, events)))

    def after(self, offset: int) -> tuple[bytes, ...]:
        """The events of the lines ending after `offset` (a client already has the others)."""
        if self.ends[0] > offset:
            return self.events
        return tuple(event for end, event in zip(self.ends, self.events, strict=True)
                     if end > offset)


@dataclass(frozen=True, slots=True)
class Reset:
    """What follows starts at offset 0 of the file now under the name."""

    reason: str
    event: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "event", reset_event(self.reason))

    @property
    def size(self) -> int:
        return len(self.event)


TRUNCATED, ROTATED = Reset("truncated"), Reset("rotated")

_size = attrgetter("size")
"""What a `Published` or a `Reset` weighs in a viewer's mailbox: the bytes it will write."""


class Viewer:
    """One stream's membership of a watcher.

    `published` and `size` are the file as it was when the viewer joined: lines up to
    `published` are read from `read` (a descriptor of that same file, so a rotation meanwhile
    does not matter), later ones arrive in `mailbox` as `Published` and `Reset` items; a
    mailbox that overflowed or whose watcher failed ends with an encoded error event.
    """

    __slots__ = ("_descriptor", "_watcher", "mailbox", "published", "size")

    def __init__(self, watcher: LogWatcher, descriptor: int, published: int,
                 backlog_limit: int) -> None:
        self._watcher = watcher
        self._descriptor: int | None = descriptor
        self.published = published
        self.size = os.fstat(descriptor).st_size
        self.mailbox = Mailbox(backlog_limit, OVERFLOW_ERROR, weigh=_size)

    def read(self, offset: int, size: int) -> bytes:
        """`size` bytes at `offset` of the file as joined, yielding to other greenlets first."""
        gevent.sleep(0)
        if self._descriptor is None:
            return b""
        return os.pread(self._descriptor, size, offset)

    def release_file(self) -> None:
        """Close the descriptor used to catch up; safe to call more than once."""
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is not None:
            os.close(descriptor)

    def leave(self) -> None:
        """Stop receiving lines and release the file; safe to call more than once."""
        self.release_file()
        self._watcher.drop(self)


class LogWatcher:
    """Follows the log `name` for every viewer of it; made and forgotten by `LogTails`."""

    POLL_SECONDS = 0.1
    MIN_GAP_SECONDS = 0.025

    def __init__(self, directory: LogDirectory, name: str, descriptor: int, *,
                 backlog_limit: int, on_stop: Callable[[LogWatcher], None]) -> None:
        self.name = name
        self._directory = directory
        self._descriptor = descriptor
        self._identity = _identity(descriptor)
        self._backlog_limit = backlog_limit
        self._on_stop = on_stop
        self._viewers: set[Viewer] = set()
        self._changed = Event()
        self.published = last_boundary(self._read, os.fstat(descriptor).st_size)
        self._stat = gevent.get_hub().loop.stat(os.path.join(directory.path, name),
                                                self.POLL_SECONDS)
        self._greenlet: gevent.Greenlet | None = None

    def join(self) -> Viewer:
        """A new viewer, receiving every line published from now on."""
        viewer = Viewer(self, os.dup(self._descriptor), self.published, self._backlog_limit)
        self._viewers.add(viewer)
        if self._greenlet is None:
            self._stat.start(self._changed.set)
            self._greenlet = gevent.spawn(self._run)
        return viewer

    def drop(self, viewer: Viewer) -> None:
        """Remove `viewer`; the last one to go stops the watcher."""
        if viewer not in self._viewers:
            return
        self._viewers.discard(viewer)
        if not self._viewers:
            self._on_stop(self)
            self._changed.set()  # the greenlet sees no viewers, exits and closes the file

    def _run(self) -> None:
        try:
            while self._viewers:
                self._changed.wait(self.POLL_SECONDS)
                self._changed.clear()
                if not self._viewers:
                    break
                self._poll()
                gevent.sleep(self.MIN_GAP_SECONDS)
        except Exception:
            log.exception("following log %r failed", self.name)
            for viewer in list(self._viewers):
                viewer.mailbox.close(UNREADABLE_ERROR)
                self.drop(viewer)
        finally:
            self._stat.stop()
            self._stat.close()
            os.close(self._descriptor)

    def _poll(self) -> None:
        if os.fstat(self._descriptor).st_size < self.published:
            self._fan_out(TRUNCATED)
        self._publish_new(final=False)
        identity = self._directory.identity(self.name)
        if identity is None or identity == self._identity:
            return  # gone for now (mid-rotation) or unchanged: keep following what we have
        descriptor = self._directory.open(self.name)
        if descriptor is None:
            return
        self._publish_new(final=True)  # the old file is finished: its partial line too
        os.close(self._descriptor)
        self._descriptor, self._identity = descriptor, _identity(descriptor)
        self._fan_out(ROTATED)
        self._publish_new(final=False)

    def _publish_new(self, *, final: bool) -> None:
        size = os.fstat(self._descriptor).st_size
        for lines in read_lines(self._read, self.published, size, final=final):
            self._fan_out(Published.of(lines))
            if not self._viewers:
                return
            gevent.sleep(0)  # a big append is read chunk by chunk, letting streams run

    def _read(self, offset: int, size: int) -> bytes:
        return os.pread(self._descriptor, size, offset)

    def _fan_out(self, item: Published | Reset) -> None:
        # No switch happens in here: a viewer joining sees `published` and the mailboxes agree.
        self.published = 0 if type(item) is Reset else item.ends[-1]
        delivery = [item]  # one list for all: a mailbox copies what it is given
        for viewer in list(self._viewers):
            if not viewer.mailbox.put(delivery):
                self.drop(viewer)  # it overflowed: all it gets now is OVERFLOW_ERROR


def _identity(descriptor: int) -> tuple[int, int]:
    info = os.fstat(descriptor)
    return info.st_dev, info.st_ino
