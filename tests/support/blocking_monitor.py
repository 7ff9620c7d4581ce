"""gevent's blocking reports in a test server, without the ones a busy machine causes.

gevent's monitor thread (gevent/_monitor.py) checks every `max_blocking_time` whether the event
loop switched greenlets since its last check, and reports the greenlet that did not. That is
wall-clock time: on a machine shared with busy processes a worker can wait that long for a CPU,
even inside a `send` syscall, and get a report with nothing to fix. So test servers turn
gevent's printing off (GEVENT_MONITOR_PRINT_BLOCKING_REPORTS=false) and this prints a report
once the greenlet's own time without a switch reaches `max_blocking_time`: time the loop's
thread ran or slept in a syscall (a blocking call is as bad as a busy loop), not the time it sat
runnable waiting for a CPU (Linux's per-thread schedstat tells them apart). One report per hold.
Installed in each worker by tests/support/gunicorn_monitored.conf.py.

One exclusion, deliberate: a period that finds the loop inside the C `send` or `recv` of one of
gevent's sockets is not counted. Those sockets are non-blocking, so the call cannot wait; its
time is the kernel's network work (on loopback it delivers to the receiver in the sender's
call), which other processes' traffic stretches: seen here as 22 ms in `send` of a response's
headers while Chromium and five other test suites ran. Code of ours that spins or blocks shows
up anywhere else in the stack.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from gevent.events import EventLoopBlocked, PeriodicMonitorThreadStartedEvent, subscribers


class StarvationFilteredReports:
    """A gevent event subscriber, plus a monitoring function run right after each check."""

    def __init__(self, max_blocking: float) -> None:
        self._max_blocking = max_blocking
        self._started = False
        self._schedstat = Path()
        self._sample = (0.0, 0.0)  # (wall clock, seconds waited for a CPU) at the last check
        self._held = 0.0  # the current hold's own time so far
        self._blocked_this_check = False
        self._reported = False

    def __call__(self, event: object) -> None:
        if isinstance(event, PeriodicMonitorThreadStartedEvent):
            import threading  # patched by now: this event comes from the worker's hub

            # Sent from the hub's own thread, so this is the loop's thread.
            self._schedstat = Path(f"/proc/self/task/{threading.get_native_id()}/schedstat")
            self._started = True
            self._sample = self._read()
            # Added after gevent's own check, so it runs right after it every period.
            event.monitor.add_monitoring_function(self._after_check, self._max_blocking)
        elif isinstance(event, EventLoopBlocked) and self._started:
            self._blocked_this_check = True
            if _in_socket_call(event.hub):
                return
            wall, waited = self._read()
            self._held += (wall - self._sample[0]) - (waited - self._sample[1])
            if self._held >= self._max_blocking and not self._reported:
                self._reported = True
                event.info.insert(2, f"    It held the loop for {self._held * 1000:.0f} ms of "
                                     f"its own (running, or blocked in a call), at least.")
                print("\n".join(event.info), file=sys.stderr, flush=True)

    def _after_check(self, hub: object) -> None:
        if not self._blocked_this_check:  # the loop switched: any hold is over
            self._held = 0.0
            self._reported = False
        self._blocked_this_check = False
        self._sample = self._read()

    def _read(self) -> tuple[float, float]:
        # schedstat: nanoseconds on a CPU, nanoseconds runnable but waiting for one, slices.
        # A kernel without it (no CONFIG_SCHED_INFO) leaves gevent's wall-clock measure.
        try:
            waited_ns = int(self._schedstat.read_text().split()[1])
        except OSError:
            waited_ns = 0
        return time.monotonic(), waited_ns / 1e9


_SOCKET_CALLS = frozenset({"send", "sendto", "recv", "recv_into", "recvfrom", "recvfrom_into"})


def _in_socket_call(hub: object) -> bool:
    """Whether the loop's thread is in a non-blocking socket call of gevent's right now."""
    frame = sys._current_frames().get(getattr(hub, "thread_ident", None))
    return (frame is not None and frame.f_code.co_name in _SOCKET_CALLS
            and Path(frame.f_code.co_filename).name == "_socketcommon.py")


def install() -> None:
    """Subscribe before the worker's hub starts its monitor thread (gunicorn's post_fork)."""
    from gevent import config

    subscribers.append(StarvationFilteredReports(config.max_blocking_time))
