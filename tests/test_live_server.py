"""The test harness itself: the blocking monitor every test server runs (tests/live_server.py)."""

from __future__ import annotations

import requests

from tests.clients import wait_until


def test_the_monitor_reports_a_view_that_holds_the_loop_with_its_stack(failing_server):
    response = requests.get(failing_server.url + "/test/hold-the-loop?ms=150", timeout=10)
    assert response.text == "held"
    reports: list[str] = []
    wait_until(lambda: reports.extend(failing_server.blocking_reports()) or reports, timeout=5)
    # Taken here, so loop_never_blocked does not fail this test for it.
    assert "appears to be blocked" in reports[0]
    assert "in hold_the_loop" in reports[0]
    assert "Info:" not in reports[0]


def test_a_short_hold_is_not_reported(failing_server):
    requests.get(failing_server.url + "/test/hold-the-loop?ms=2", timeout=10)
    requests.get(failing_server.url + "/healthz", timeout=10)
    assert failing_server.blocking_reports() == []
