"""Per-client stream limits behind nginx count the client, not nginx.

Every request reaches gunicorn from nginx's address; nginx passes the client's in
X-Forwarded-For, and the app believes it from nginx alone (FORWARDED_ALLOW_IPS). With
`MAX_STREAMS_PER_CLIENT=N` the (N+1)th concurrent stream of one client is a `429`, while another
client (another loopback source address here) is still served.

Depends on the per-client limit of the reliability issue (`MAX_STREAMS_PER_CLIENT`, `429` in the
JSON error shape); on a branch without it the 429 never comes and this test fails.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest

from tests.support.clients import wait_until
from tests.support.nginx_front import NginxFront

LIMIT = 2
LONG_STREAM = "/sse/chat?prompt=limits&tokens=3&delay_ms=10000"


@pytest.fixture(scope="module")
def limited(start_server, start_nginx) -> NginxFront:
    server = start_server(env={"MAX_STREAMS_PER_CLIENT": str(LIMIT)})
    return start_nginx(server.port)


@contextmanager
def stream_from(front: NginxFront, source: str) -> Iterator[http.client.HTTPResponse]:
    """A stream through nginx from the loopback address `source`, its first bytes read."""
    connection = http.client.HTTPSConnection(
        "127.0.0.1", front.tls_port, timeout=10, source_address=(source, 0),
        context=front.certificate.client_context())
    try:
        connection.request("GET", LONG_STREAM)
        response = connection.getresponse()
        if response.status == 200:
            response.read1(65536)  # the stream is open and counted at the server
        yield response
    finally:
        connection.close()


def status_from(front: NginxFront, source: str) -> int:
    with stream_from(front, source) as response:
        return response.status


def test_the_limit_counts_each_client_behind_nginx(limited):
    with ExitStack() as streams:
        opened = [streams.enter_context(stream_from(limited, "127.0.0.2")) for _ in range(LIMIT)]
        assert [response.status for response in opened] == [200] * LIMIT

        with stream_from(limited, "127.0.0.2") as refused:
            assert refused.status == 429
            assert refused.getheader("Content-Type") == "application/json"
            assert set(json.loads(refused.read())["error"]) >= {"type", "message"}
        # Another client is not counted with the first, though both arrive from nginx.
        assert status_from(limited, "127.0.0.3") == 200

    # Their streams closed, the first client's slots are free again.
    wait_until(lambda: status_from(limited, "127.0.0.2") == 200, timeout=5, interval=0.2)
