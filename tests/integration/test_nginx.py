"""deploy/nginx.conf in front of the real server: nothing held back, nothing lost, the real client.

nginx runs the committed file, rendered only with test ports and paths
(tests/support/nginx_front.py), over TLS with a certificate made for the run, HTTP/1.1 and
HTTP/2 to the client, HTTP/1.1 keep-alive to gunicorn. The shared server's heartbeat is 1 s.
"""

from __future__ import annotations

import http.client
import json
import re
import runpy
import time
import uuid

import httpx
import pytest
import websocket
from openai import OpenAI

import config
from generation import demo_model
from streaming.sse import parse
from testbed.live_server import free_port
from tests.support.clients import wait_until
from tests.support.nginx_front import CONFIG
from tests.support.ws_clients import receive, send, until_end

TOKENS, DELAY_MS = 20, 50
SPREAD = TOKENS * DELAY_MS / 1000 / 2  # a stream's first and last bytes at least this far apart


def timed_body(response: httpx.Response) -> list[tuple[float, bytes]]:
    """The body's pieces as they arrive, with seconds since the first."""
    chunks: list[tuple[float, bytes]] = []
    for chunk in response.iter_raw():
        chunks.append((time.monotonic(), chunk))
    return [(at - chunks[0][0], chunk) for at, chunk in chunks]


# --- the committed file -------------------------------------------------------------------


def _seconds(directive: str) -> list[int]:
    return [int(value) for value in re.findall(rf"^\s*{directive} (\d+)s;", CONFIG.read_text(),
                                               re.MULTILINE)]


def test_read_timeouts_outlast_the_heartbeat_ping_and_upstream_timeout():
    defaults = config.load({})
    timeouts = _seconds("proxy_read_timeout")
    assert timeouts and min(timeouts) > 2 * defaults["HEARTBEAT_SECONDS"]
    assert min(timeouts) > 2 * defaults["WS_PING_SECONDS"]
    assert max(timeouts) > defaults["UPSTREAM_READ_TIMEOUT"]


def test_upstream_keepalive_ends_before_gunicorns():
    settings = runpy.run_path(str(CONFIG.parent.parent / "gunicorn.conf.py"))
    assert _seconds("keepalive_timeout")[0] < settings["keepalive"]


def test_streams_are_neither_buffered_nor_compressed():
    text = CONFIG.read_text()
    # At server level, for every location; the app's X-Accel-Buffering covers only its streams.
    assert re.search(r"^ {8}proxy_buffering off;", text, re.MULTILINE)
    gzip_types = re.search(r"gzip_types ([^;]+);", text).group(1).split()
    assert not {"text/event-stream", "application/x-ndjson", "text/plain", "*"} & set(gzip_types)


# --- streams through nginx ----------------------------------------------------------------

BODY = {"prompt": "nginx", "tokens": TOKENS, "delay_ms": DELAY_MS}
STREAMS = {
    "sse": ("GET", f"/sse/chat?prompt=nginx&tokens={TOKENS}&delay_ms={DELAY_MS}", None),
    "fetch-sse": ("POST", "/api/chat", "text/event-stream"),
    "ndjson": ("POST", "/api/chat", "application/x-ndjson"),
    "text": ("POST", "/api/chat", "text/plain"),
}


def _complete(kind: str, body: bytes) -> bool:
    text = "".join(demo_model.generate("nginx", TOKENS))
    if kind in ("sse", "fetch-sse"):
        events = parse(body)
        return ("".join(e.data for e in events if e.type == "message") == text
                and events[-1].type == "end")
    if kind == "ndjson":
        lines = [json.loads(line) for line in body.splitlines() if line]
        tokens = "".join(line.get("text", "") for line in lines)
        return tokens == text and lines[-1]["type"] == "end"
    return body.decode() == text


@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "http2"])
@pytest.mark.parametrize("kind", STREAMS)
def test_streams_arrive_as_produced_and_uncompressed(nginx, kind, http2):
    method, path, accept = STREAMS[kind]
    headers = {"Accept-Encoding": "gzip", **({"Accept": accept} if accept else {})}
    with nginx.client(http2=http2) as client, client.stream(
            method, path, headers=headers, json=BODY if method == "POST" else None) as response:
        assert response.status_code == 200
        assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
        assert "content-encoding" not in response.headers
        chunks = timed_body(response)
    assert _complete(kind, b"".join(chunk for _, chunk in chunks))
    # Incremental: many pieces, the last long after the first (a buffered body comes in one
    # lump at the end).
    assert len(chunks) >= TOKENS // 2
    assert chunks[-1][0] >= SPREAD


def test_pages_and_scripts_are_compressed(nginx):
    with nginx.client() as client:
        script = client.get("/static/js/readers.js", headers={"Accept-Encoding": "gzip"})
        page = client.get("/", headers={"Accept-Encoding": "gzip"})
    assert script.status_code == page.status_code == 200
    assert script.headers["content-encoding"] == page.headers["content-encoding"] == "gzip"


def test_heartbeats_pass_through(nginx):
    # The first token is due after 2.5 s; the server's heartbeat fills the silence every 1 s.
    with nginx.client() as client, client.stream(
            "GET", "/sse/chat?prompt=quiet&tokens=1&delay_ms=2500") as response:
        chunks = timed_body(response)
    body = b"".join(chunk for _, chunk in chunks)
    assert body.index(b": ping") < body.index(b"id: 0")
    first_ping = next(at for at, chunk in chunks if b": ping" in chunk)
    assert first_ping < chunks[-1][0]  # it arrived while the stream waited, not with the end


def test_websocket_chat_and_cancel_through_nginx(nginx, tls_certificate):
    # A browser on the site sends its own origin: nginx passes the Host with its port, so the
    # same-origin check holds behind the proxy.
    url = nginx.url.replace("https://", "wss://") + "/ws/chat"
    ws = websocket.create_connection(url, timeout=10, origin=nginx.url,
                                     sslopt={"ca_certs": str(tls_certificate.cert)})
    try:
        send(ws, type="prompt", prompt="cancel me", tokens=500, delay_ms=20)
        assert receive(ws)["type"] == "start"
        assert [receive(ws)["type"] for _ in range(3)] == ["token"] * 3
        send(ws, type="cancel")
        end = until_end(ws)[-1]
        assert end["finish_reason"] == "cancelled" and 3 <= end["tokens"] < 500
        send(ws, type="prompt", prompt="again", tokens=3, delay_ms=0)
        messages = until_end(ws)
        assert [m["type"] for m in messages] == ["start", "token", "token", "token", "end"]
        assert messages[-1]["finish_reason"] == "stop"
    finally:
        ws.close()


def test_the_openai_proxy_streams_through_nginx(nginx, tls_certificate):
    http_client = httpx.Client(verify=tls_certificate.client_context())
    with OpenAI(base_url=nginx.url + "/v1", api_key="anything", max_retries=0,
                http_client=http_client) as client:
        stream = client.chat.completions.create(
            model="demo", messages=[{"role": "user", "content": "nginx"}], stream=True,
            max_tokens=TOKENS, extra_body={"delay_ms": DELAY_MS})
        arrivals, text = [], []
        for chunk in stream:
            arrivals.append(time.monotonic())
            text.extend(choice.delta.content or "" for choice in chunk.choices)
    assert "".join(text) == demo_model.complete("nginx", TOKENS)
    assert arrivals[-1] - arrivals[0] >= SPREAD


# --- the client's address, keep-alive, errors, redirects ----------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/v1/models", "/ws/chat"])
def test_the_app_sees_the_client_not_nginx_nor_a_forged_header(nginx, server, tls_certificate,
                                                               path):
    # The client connects from 127.0.0.2 and claims another address; nginx replaces the header
    # with the address it saw, and gunicorn's access line (formatted from the environ the app
    # saw) shows it, though the connection gunicorn accepted came from nginx at 127.0.0.1. One
    # path per nginx location: a location that set its own headers would drop the others.
    target = f"{path}?{uuid.uuid4().hex}"
    connection = http.client.HTTPSConnection(
        "127.0.0.1", nginx.tls_port, timeout=10, source_address=("127.0.0.2", 0),
        context=tls_certificate.client_context())
    try:
        connection.request("GET", target, headers={"X-Forwarded-For": "6.6.6.6"})
        connection.getresponse().read()
    finally:
        connection.close()
    request_line = f'"GET {target} HTTP/1.'
    # Both write their access line once the response is done: give them a moment.
    wait_until(lambda: request_line in server.log(), timeout=5)
    wait_until(lambda: any(request_line in line for line in nginx.access_log()), timeout=5)
    app_line = next(line for line in server.log().splitlines() if request_line in line)
    assert app_line.startswith("127.0.0.2 "), app_line
    nginx_line = next(line for line in nginx.access_log() if request_line in line)
    assert nginx_line.startswith("127.0.0.2 "), nginx_line


def test_connections_to_gunicorn_are_kept_alive(nginx, server):
    with nginx.client() as client:
        for _ in range(5):
            assert client.get("/healthz").status_code == 200
    # Idle upstream connections stay open for the next request instead of closing after each.
    assert sum(server.connections_by_worker().values()) >= 1


def test_an_unreachable_app_is_a_json_502(start_nginx, tls_certificate):
    front = start_nginx(free_port())  # nothing listens there
    with front.client() as client:
        response = client.get("/sse/chat?prompt=x")
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["type"] == "bad_gateway"
    assert set(response.json()["error"]) == {"type", "message"}


def test_plain_http_redirects_to_https(nginx):
    response = httpx.get(f"http://127.0.0.1:{nginx.http_port}/sse/chat?prompt=x")
    assert response.status_code == 301
    assert response.headers["location"] == "https://127.0.0.1/sse/chat?prompt=x"

