"""The test harness itself: the blocking monitor every test server runs
(testbed/live_server.py, tests/support/blocking_monitor.py)."""

from __future__ import annotations

import pytest
import requests

from tests.support.blocking_monitor import HoldMeter, Sample
from tests.support.clients import wait_until


@pytest.fixture(scope="module")
def monitored(start_server):
    """A server of this module's own: the failing app, fresh, with the monitor at 20 ms.

    Not the session's failing_server: in two of four full CI runs a 150 ms hold on that
    long-lived server went unreported (see the closing note of the stop that added this).
    """
    return start_server(app="tests.support.failing_app:app")


@pytest.mark.parametrize("how", ["busy", "sleep"])
def test_the_monitor_reports_a_view_that_holds_the_loop_with_its_stack(monitored, how):
    failing_server = monitored
    url = f"{failing_server.url}/test/hold-the-loop?ms=150&how={how}"
    assert requests.get(url, timeout=10).text == "held"
    reports: list[str] = []
    wait_until(lambda: reports.extend(failing_server.blocking_reports()) or reports, timeout=5)
    # Taken here, so loop_never_blocked does not fail this test for it.
    assert len(reports) == 1  # one report per hold
    assert "appears to be blocked" in reports[0]
    assert "in hold_the_loop" in reports[0]
    assert "Info:" not in reports[0]


def test_a_short_hold_is_not_reported(monitored):
    failing_server = monitored
    requests.get(failing_server.url + "/test/hold-the-loop?ms=2", timeout=10)
    requests.get(failing_server.url + "/healthz", timeout=10)
    assert failing_server.blocking_reports() == []


def sample(wall: float, cpu: float, waited: float = 0.0, asleep: bool = False) -> Sample:
    return Sample(wall, cpu, waited, asleep)


def test_time_spent_waiting_for_a_cpu_is_not_a_hold():
    meter = HoldMeter(0.02, sample(0.0, 0.0))
    # 25 ms without a switch, 1 ms of it on a CPU, and runnable (waiting for one) at the end.
    assert not meter.blocked(sample(0.025, 0.001, 0.0))
    # Then the wait is counted: asleep in a call, schedstat says 24 ms were spent waiting.
    assert not meter.blocked(sample(0.05, 0.002, 0.048, asleep=True))
    assert meter.held < 0.02


def test_waiting_for_the_gil_is_not_a_hold():
    meter = HoldMeter(0.02, sample(0.0, 0.0))
    # Asleep in futex (waiting for the monitor's GIL): not asleep in a call, CPU time only.
    assert not meter.blocked(sample(0.03, 0.002, 0.0, asleep=False))
    assert meter.held == 0.002


def test_a_blocking_call_counts_its_sleep():
    meter = HoldMeter(0.02, sample(0.0, 0.0))
    assert not meter.blocked(sample(0.012, 0.0, 0.0, asleep=True))
    assert meter.blocked(sample(0.024, 0.0, 0.001, asleep=True))  # 23 ms of its own
    assert round(meter.held, 3) == 0.023


def test_a_hold_is_reported_once_when_its_own_time_reaches_the_limit():
    meter = HoldMeter(0.02, sample(0.0, 0.0))
    assert not meter.blocked(sample(0.02, 0.012))  # 12 ms on a CPU: not yet
    assert meter.blocked(sample(0.04, 0.026))  # 14 ms more: 26 ms
    assert not meter.blocked(sample(0.06, 0.046))  # the same hold goes on: not again
    assert not meter.blocked(sample(0.08, 0.066), counted=False)  # a period not counted
    assert round(meter.held, 3) == 0.046
    meter.switched(sample(0.1, 0.07))  # a check with a switch: the hold is over
    assert (meter.held, meter.reported) == (0.0, False)
    assert not meter.blocked(sample(0.12, 0.08))  # a new hold starts from the switch
