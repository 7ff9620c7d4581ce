"""gevent's blocking reports in a test server, without the ones a busy machine causes.

gevent's monitor thread (gevent/_monitor.py) runs its functions every `max_blocking_time`. This
replaces its blocking check with one that reports a greenlet that did not switch since the last
check once the hold's own time reaches `max_blocking_time`, counting only time that is the
greenlet's fault:

- time on a CPU (the loop thread's CPU clock), and
- time asleep in a blocking call (a sleep, blocking I/O): wall time minus CPU time minus the
  time spent runnable but waiting for a CPU (Linux's per-thread schedstat), counted for a period
  that ends with the thread asleep in a system call other than `futex`.

Not counted: waiting for a CPU (another process's load), and waiting in `futex`, which is how the
loop thread waits for the GIL while this monitor's own thread holds it, or waits for a monitor
thread that the machine does not schedule. A period that ends runnable counts its CPU time only:
schedstat adds a wait to its total only when the wait ends, so a thread waiting right now has
an uncounted wait that would pass for sleep. One report per hold.

Everything is read at the start of a check, before the report (whose greenlet listing walks the
heap) is built, and the report is built only when printed: that work holds the GIL, and the loop
thread waiting for it must not be counted. Only the main thread's hub is watched, each monitor
with its own state: a hub another thread starts (gevent starts a monitor for it too) shares no
measure with the worker's loop.

One exclusion, deliberate: a period that finds the loop inside the C `send` or `recv` of one of
gevent's sockets is not counted. Those sockets are non-blocking, so the call cannot wait; its
time is the kernel's network work (on loopback it delivers to the receiver in the sender's
call), which other processes' traffic stretches: seen here as 22 ms in `send` of a response's
headers while Chromium and five other test suites ran. Code of ours that spins or blocks shows
up anywhere else in the stack.

Installed in each worker by tests/support/gunicorn_monitored.conf.py.
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path
from threading import get_native_id
from typing import NamedTuple

from gevent.events import PeriodicMonitorThreadStartedEvent, subscribers

# The futex system call's number, as /proc/<tid>/syscall shows it, per architecture.
_FUTEX = {"x86_64": "202", "aarch64": "98"}.get(platform.machine(), "202")


class Sample(NamedTuple):
    wall: float
    cpu: float  # seconds on a CPU
    waited: float  # seconds runnable, waiting for a CPU
    asleep_in_call: bool  # asleep in a system call other than futex


class HoldMeter:
    """The own time of a hold, from samples of the loop thread taken at each check."""

    def __init__(self, max_blocking: float, first: Sample) -> None:
        self.max_blocking = max_blocking
        self.held = 0.0
        self.reported = False
        self._last = first

    def switched(self, sample: Sample) -> None:
        """The loop switched greenlets since the last check: any hold is over."""
        self.held, self.reported, self._last = 0.0, False, sample

    def blocked(self, sample: Sample, counted: bool = True) -> bool:
        """No switch since the last check; whether the hold is to be reported now."""
        if counted:
            self.held += own_time(self._last, sample)
        self._last = sample
        if self.held >= self.max_blocking and not self.reported:
            self.reported = True
            return True
        return False


def own_time(before: Sample, after: Sample) -> float:
    cpu = after.cpu - before.cpu
    if not after.asleep_in_call:
        return cpu
    asleep = (after.wall - before.wall) - cpu - (after.waited - before.waited)
    return cpu + max(asleep, 0.0)


class LoopThread:
    """Reads the scheduler's figures of one thread of this process."""

    def __init__(self, ident: int, native_id: int) -> None:
        self._cpu_clock = time.pthread_getcpuclockid(ident)
        self._task = Path(f"/proc/self/task/{native_id}")

    def sample(self) -> Sample:
        wall = time.monotonic()
        cpu = time.clock_gettime(self._cpu_clock)
        # schedstat: nanoseconds on a CPU, nanoseconds runnable but waiting for one, slices.
        # A kernel without it (no CONFIG_SCHED_INFO) counts CPU time only.
        try:
            waited = int((self._task / "schedstat").read_text().split()[1]) / 1e9
            call = (self._task / "syscall").read_text().split()[0]
        except OSError:
            return Sample(wall, cpu, 0.0, False)
        # "running", "-1" (asleep, not in a call) or the number of the call it is asleep in.
        return Sample(wall, cpu, waited, call not in ("running", "-1", _FUTEX))


class BlockingCheck:
    """The monitor's check for one hub: run every period in the monitor thread."""

    def __init__(self, monitor, hub, max_blocking: float) -> None:
        from gevent._tracer import GreenletTracer

        self._tracer = GreenletTracer()  # traces the calling thread: the hub's
        self._thread = LoopThread(hub.thread_ident, get_native_id())
        self._meter = HoldMeter(max_blocking, self._thread.sample())
        self._monitor_ident = monitor.monitor_thread_ident

    def __call__(self, hub) -> None:
        sample = self._thread.sample()  # first: what follows holds the GIL
        blocked = self._tracer.did_block_hub(hub)
        if not blocked:
            self._meter.switched(sample)
        elif self._meter.blocked(sample, counted=not _in_socket_call(hub)):
            self._print(hub, blocked[1])

    def _print(self, hub, greenlet) -> None:
        report = self._tracer.did_block_hub_report(
            hub, greenlet, {"greenlet_stacks": False, "thread_stacks": False,
                            "current_thread_ident": self._monitor_ident})
        report.insert(2, f"    It held the loop for {self._meter.held * 1000:.0f} ms of its "
                         f"own (running, or blocked in a call), at least.")
        print("\n".join(report), file=sys.stderr, flush=True)


_SOCKET_CALLS = frozenset({"send", "sendto", "recv", "recv_into", "recvfrom", "recvfrom_into"})


def _in_socket_call(hub: object) -> bool:
    """Whether the loop's thread is in a non-blocking socket call of gevent's right now."""
    frame = sys._current_frames().get(getattr(hub, "thread_ident", None))
    return (frame is not None and frame.f_code.co_name in _SOCKET_CALLS
            and Path(frame.f_code.co_filename).name == "_socketcommon.py")


def _on_monitor_started(event: object) -> None:
    if not isinstance(event, PeriodicMonitorThreadStartedEvent):
        return
    from gevent import config

    monitor = event.monitor
    hub = monitor.hub
    # Sent from the hub's own thread. Only the main thread runs the worker's loop.
    if hub is None or not hub.main_hub:
        return
    monitor.add_monitoring_function(BlockingCheck(monitor, hub, config.max_blocking_time),
                                    config.max_blocking_time)
    monitor.add_monitoring_function(monitor.monitor_blocking, None)  # replaced by ours


def install() -> None:
    """Subscribe before the worker's hub starts its monitor thread (gunicorn's post_fork)."""
    subscribers.append(_on_monitor_started)
