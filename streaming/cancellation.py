"""A cancellation signal a stream's handlers can check, wait on, or be called back by."""

from __future__ import annotations

from collections.abc import Callable

from gevent.event import Event


class Cancellation:
    """Set once, by whoever decides the work must stop (a disconnect, a cancel message).

    Safe to call from the gevent hub (a watcher callback): `cancel()` never blocks, and callbacks
    registered with `on_cancel` must not block either.
    """

    __slots__ = ("_callbacks", "_event", "reason")

    def __init__(self) -> None:
        self._event = Event()
        self._callbacks: list[Callable[[], None]] = []
        self.reason: str | None = None

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self, reason: str = "cancelled") -> None:
        if self._event.is_set():
            return
        self.reason = reason
        self._event.set()
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Call `callback` on cancellation (at once if already cancelled)."""
        if self._event.is_set():
            callback()
        else:
            self._callbacks.append(callback)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until cancelled or `timeout` seconds pass; True if cancelled."""
        return self._event.wait(timeout)
