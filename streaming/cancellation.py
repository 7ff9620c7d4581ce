"""A cancellation signal a stream's handlers can check, wait on, or be called back by."""

from __future__ import annotations

from collections.abc import Callable

from gevent.hub import Waiter, get_hub


class Cancellation:
    """Set once, by whoever decides the work must stop (a disconnect, a cancel message).

    `cancel()` may be called from any greenlet or from the hub itself (a watcher callback): it
    never blocks, and callbacks registered with `on_cancel` must not block either. `wait()` is
    for the greenlets doing the work; several may wait at once.

    `wait()` is on the hot path of every paced stream (once per token), so it is a bare timer
    and a Waiter rather than `gevent.event.Event.wait`, whose timeout allocates a Timeout
    exception and throws it into the waiting greenlet each time it expires.
    """

    __slots__ = ("_callbacks", "_waiters", "cancelled", "reason")

    def __init__(self) -> None:
        # Read-only for everyone but `cancel()`; a plain attribute, not a property, because
        # every paced stream reads it several times per token.
        self.cancelled = False
        self._callbacks: list[Callable[[], None]] = []
        self._waiters: list[Waiter] = []
        self.reason: str | None = None

    def cancel(self, reason: str = "cancelled") -> None:
        if self.cancelled:
            return
        self.cancelled = True
        self.reason = reason
        waiters, self._waiters = self._waiters, []
        loop = get_hub().loop
        for waiter in waiters:
            # A Waiter is switched from the hub, whoever cancels.
            loop.run_callback(waiter.switch, True)
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Call `callback` on cancellation (at once if already cancelled)."""
        if self.cancelled:
            callback()
        else:
            self._callbacks.append(callback)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until cancelled or `timeout` seconds pass; True if cancelled."""
        if self.cancelled:
            return True
        hub = get_hub()
        waiter = Waiter(hub)
        timer = None
        if timeout is not None:
            timer = hub.loop.timer(max(timeout, 0.0))
            # update: libev counts `timeout` from the time it cached when this loop turn began,
            # so a turn busy with other streams made the timer fire early and the caller wait
            # again (44% more waits with 50 paced streams); refreshing its clock costs less.
            timer.start(waiter.switch, False, update=True)
        self._waiters.append(waiter)
        try:
            return waiter.get()
        finally:
            if timer is not None:
                timer.close()
            if not self.cancelled:
                self._waiters.remove(waiter)
