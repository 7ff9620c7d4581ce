"""gunicorn's access log on the real server: a line for each request, showing the client address
the app saw (streaming.forwarded believes X-Forwarded-For from a trusted proxy only)."""

from __future__ import annotations

import http.client
import uuid

from testbed.live_server import LiveServer
from tests.support.clients import wait_until


def _logged_line(server: LiveServer, source: str = "127.0.0.1", **headers: str) -> str:
    """Send a request from `source` (a loopback address) with `headers`; its access line."""
    marker = uuid.uuid4().hex
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10,
                                            source_address=(source, 0))
    try:
        connection.request("GET", f"/healthz?{marker}", headers=headers)
        assert connection.getresponse().status == 200
    finally:
        connection.close()
    # gunicorn writes the access line after the response; give it a moment to reach the file.
    wait_until(lambda: marker in server.log(), timeout=5)
    return next(line for line in server.log().splitlines() if marker in line)


def test_the_server_logs_each_request(server):
    line = _logged_line(server, **{"User-Agent": "access-test"})
    assert '"GET /healthz?' in line and ' HTTP/1.1" 200 ' in line
    assert '"-" "access-test"' in line


def test_access_log_shows_the_client_a_trusted_proxy_names(server):
    line = _logged_line(server, **{"X-Forwarded-For": "203.0.113.9"})
    assert line.split(" ", 1)[0] == "203.0.113.9"


def test_a_peer_outside_the_trust_list_cannot_claim_another_address(server):
    # 127.0.0.3 is loopback too, so it reaches the server, but FORWARDED_ALLOW_IPS is 127.0.0.1.
    line = _logged_line(server, "127.0.0.3", **{"X-Forwarded-For": "203.0.113.9"})
    assert line.split(" ", 1)[0] == "127.0.0.3"
