"""`LogTails`: the worker's log files and the one watcher each followed file has."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Gauge

from .directory import LogDirectory
from .watcher import LogWatcher, Viewer

BACKLOG_LIMIT = 1024 * 1024
"""Bytes of encoded lines a viewer may fall behind before it gets `overflow`."""


class LogTails:
    """Hands out viewers of the logs in `directory`, one `LogWatcher` per followed file.

    One per app (so per worker), created by `create_app`; shared by the worker's greenlets.
    With a `registry`, the gauge `log_watchers` counts the files followed now.
    """

    def __init__(self, directory: LogDirectory, *, registry: CollectorRegistry | None = None,
                 backlog_limit: int = BACKLOG_LIMIT) -> None:
        if backlog_limit < 1:
            raise ValueError(f"backlog_limit must be >= 1 byte, got {backlog_limit!r}")
        self.directory = directory
        self._backlog_limit = backlog_limit
        self._watchers: dict[str, LogWatcher] = {}
        self._gauge = None
        if registry is not None:
            self._gauge = Gauge("log_watchers", "Log files followed now, one watcher each.",
                                registry=registry, multiprocess_mode="livesum")

    def names(self) -> list[str]:
        """The logs a client may follow, sorted."""
        return self.directory.names()

    def size(self, name: str) -> int | None:
        """The size of the log `name` now, or None if there is no such log."""
        info = self.directory.stat(name)
        return None if info is None else info.st_size

    def watched(self) -> list[str]:
        """The names followed now (each by one watcher)."""
        return sorted(self._watchers)

    def join(self, name: str) -> Viewer | None:
        """A viewer of the log `name`, or None if there is no such log."""
        watcher = self._watchers.get(name)
        if watcher is None:
            descriptor = self.directory.open(name)
            if descriptor is None:
                return None
            try:
                watcher = LogWatcher(self.directory, name, descriptor,
                                     backlog_limit=self._backlog_limit, on_stop=self._forget)
            except BaseException:
                os.close(descriptor)
                raise
            self._watchers[name] = watcher
            if self._gauge is not None:
                self._gauge.inc()
        return watcher.join()

    def _forget(self, watcher: LogWatcher) -> None:
        if self._watchers.get(watcher.name) is watcher:
            del self._watchers[watcher.name]
            if self._gauge is not None:
                self._gauge.dec()
