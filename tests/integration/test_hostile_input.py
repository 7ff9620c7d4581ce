"""Hostile input against the real server: every rejection in the error shape, from gunicorn's
parser to the router; CR, LF and NUL never reaching an SSE field or a response header; no secret
in the access log; a failed authentication that tells nothing."""

from __future__ import annotations

import base64
import json
import socket

import pytest
import requests
import websocket

from streaming.sse import parse
from testbed.live_server import LiveServer
from tests.support.channel_clients import new_channel, publish, subscribe, take
from tests.support.clients import Stream
from tests.support.fake_upstream import FakeUpstream

# --- every rejection is JSON in the error shape ------------------------------------------------


def _raw(server: LiveServer, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes; the status, headers and body of the answer (read to the close)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received or not _complete(received):
            data = sock.recv(65536)
            if not data:
                break
            received += data
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value for name, _, value in
               (line.partition(": ") for line in lines)}
    return int(status_line.split(" ")[1]), headers, body


def _complete(received: bytes) -> bool:
    head, _, body = received.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return body.endswith(b"0\r\n\r\n")  # chunked: the last chunk


def _dechunked(body: bytes) -> bytes:
    data = b""
    while body:
        size, _, body = body.partition(b"\r\n")
        data, body = data + body[:int(size, 16)], body[int(size, 16) + 2:]
    return data


REJECTIONS = [
    ("unknown path", b"GET /no/such/path HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found"),
    ("unknown method", b"PUT /sse/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
     405, "method_not_allowed"),
    ("request line too long", b"GET /sse/chat?prompt=" + b"x" * 9000 + b" HTTP/1.1\r\n\r\n",
     414, "uri_too_long"),
    ("header too large", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 9000
     + b"\r\n\r\n", 431, "request_header_fields_too_large"),
    ("not HTTP", b"HELLO THERE\r\n\r\n", 400, "bad_request"),
    ("NUL in a header", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
     400, "bad_request"),
    ("bare CR in Last-Event-ID", b"GET /sse/chat?prompt=p HTTP/1.1\r\nHost: x\r\n"
     b"Last-Event-ID: 1\revent: injected\r\n\r\n", 400, "bad_request"),
    ("bare LF in a header", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\nX-B: b\r\n\r\n",
     400, "bad_request"),
]


@pytest.mark.parametrize(("case", "request_bytes", "status", "kind"), REJECTIONS,
                         ids=[case[0] for case in REJECTIONS])
def test_every_rejection_is_json_in_the_error_shape(server, case, request_bytes, status, kind):
    got, headers, body = _raw(server, request_bytes)
    assert got == status, body
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body)["error"]
    assert error["type"] == kind
    assert isinstance(error["message"], str)
    assert b"Traceback" not in body and b"<html" not in body
    assert b"injected" not in b"".join(f"{k}{v}".encode() for k, v in headers.items())
    if status == 405:
        assert set(headers["allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


# --- CR, LF and NUL never reach an SSE field or a response header -----------------------------

INJECTIONS = ["1%0D%0Aevent: injected", "1%0Aid: 99", "1%0D", "1%00", "%0D%0A%0D%0Adata: x",
              "1%E2%80%A8", "%C2%85"]


@pytest.mark.parametrize("value", INJECTIONS)
def test_a_last_event_id_with_line_breaks_or_nul_is_refused(server, value):
    response = requests.get(f"{server.url}/sse/chat?prompt=p&tokens=5&last_event_id={value}",
                            timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "last_event_id"
    assert not any("injected" in v or "\r" in v or "\n" in v for v in response.headers.values())


@pytest.mark.parametrize("value", ["1\r\nevent: injected", "1\n", "1\x00", "\u2028"])
def test_a_fetch_last_event_id_with_line_breaks_or_nul_cannot_be_sent_or_is_refused(
        server, value):
    body = {"prompt": "p", "tokens": 5}
    try:
        response = requests.post(server.url + "/api/chat", json=body, timeout=10,
                                 headers={"Last-Event-ID": value, "Accept": "text/event-stream"})
    except ValueError:  # requests refuses CR/LF/NUL in a header before sending it
        return
    assert response.status_code == 400


def test_line_breaks_in_a_prompt_never_become_sse_fields(server):
    prompt = "a\r\nevent: injected\n\nid: 99\rdata: x\x00"
    with Stream(server.url, "/api/chat", method="POST", timeout=10,
                headers={"Accept": "text/event-stream"},
                body={"prompt": prompt, "tokens": 5, "delay_ms": 0}) as stream:
        events = parse(stream.read_all())
    assert [event.type for event in events] == ["start"] + ["message"] * 5 + ["end"]
    assert [event.last_event_id for event in events[1:6]] == ["0", "1", "2", "3", "4"]


def test_a_websocket_last_event_id_with_line_breaks_is_refused(server):
    ws = websocket.create_connection(server.url.replace("http", "ws") + "/ws/chat", timeout=10)
    try:
        ws.send(json.dumps({"type": "prompt", "prompt": "p", "tokens": 5,
                            "last_event_id": "1\r\nevent: injected"}))
        reply = json.loads(ws.recv())
    finally:
        ws.close()
    assert reply["type"] == "error" and reply["param"] == "last_event_id"


class HeaderInjectingUpstream(FakeUpstream):
    """An upstream whose response headers carry a bare CR and a NUL. (http.client reads the
    bare CR as a line end, so `X-Split: a` and `Set-Cookie` arrive as two headers: an upstream
    may set any header it likes, and the proxy relays Set-Cookie by design.)"""

    def _evil(self, sock: socket.socket, target: str) -> bool:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"X-Split: a\rSet-Cookie: injected=1\r\nX-Nul: a\x00b\r\n"
                     b"X-Fine: ok\r\nContent-Length: 2\r\n\r\n{}")
        return False


def test_an_upstream_header_with_cr_or_nul_is_not_relayed(start_server):
    upstream = HeaderInjectingUpstream()
    try:
        proxy = start_server(env={"UPSTREAM_BASE_URL": upstream.url + "/v1"})
        status, headers, body = _raw(proxy, b"GET /v1/evil HTTP/1.1\r\nHost: x\r\n\r\n")
    finally:
        upstream.stop()
    assert status == 200, body
    assert _dechunked(body) == b"{}"
    assert headers["x-fine"] == "ok"
    assert "x-nul" not in headers  # dropped, where relaying it made gunicorn answer 500
    assert not any("\r" in v or "\x00" in v for v in headers.values())


# --- no secret in the access log ---------------------------------------------------------------

SECRETS = [f"s3cr3t-{n}" for n in range(7)]


def _send_secrets(server: LiveServer) -> None:
    basic = base64.b64encode(f"{SECRETS[0]}:{SECRETS[1]}".encode()).decode()
    requests.get(server.url + f"/healthz?api_key={SECRETS[2]}&token={SECRETS[3]}&tokens=5",
                 headers={"Authorization": f"Basic {basic}"}, timeout=10)
    requests.get(server.url + "/v1/models", timeout=10,
                 headers={"Authorization": f"Bearer {SECRETS[4]}", "X-Api-Key": SECRETS[5],
                          "Cookie": f"session={SECRETS[6]}",
                          "Referer": f"https://app.example/?access_token={SECRETS[3]}"})


def test_the_access_log_never_records_keys_tokens_or_credentials(start_server):
    server = start_server()
    _send_secrets(server)
    log = server.log()
    assert "GET /healthz?api_key=REDACTED&token=REDACTED&tokens=5 HTTP/1.1" in log
    assert "access_token=REDACTED" in log
    assert not [secret for secret in SECRETS if secret in log], log[-2000:]


def test_no_access_log_format_can_print_a_secret(start_server):
    layout = ('%(h)s %(u)s "%(r)s" %(q)s "%(f)s" %({authorization}i)s %({x-api-key}i)s '
              '%({cookie}i)s %({http_authorization}e)s %({raw_uri}e)s %({query_string}e)s')
    server = start_server(args=("--access-logformat", layout))
    _send_secrets(server)
    log = server.log()
    assert log.count("REDACTED") >= 6
    assert not [secret for secret in SECRETS if secret in log], log[-2000:]


# --- a failed authentication tells nothing ----------------------------------------------------


@pytest.fixture(scope="module")
def keyed(start_server) -> LiveServer:
    return start_server(env={"UPSTREAM_API_KEY": "sk-upstream", "PROXY_API_KEYS":
                             "client-key-alpha,client-key-beta"})


@pytest.mark.parametrize("authorization", [
    None, "Bearer ", "Bearer client-key-alph", "Bearer client-key-alphaX", "Bearer wrong",
    "Basic Y2xpZW50LWtleS1hbHBoYQ==", "bearer CLIENT-KEY-ALPHA"])
@pytest.mark.parametrize("path", ["/v1/models", "/v1/no/such/thing"])
def test_a_failed_key_gets_the_same_answer_whatever_the_key_or_path(keyed, authorization, path):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = requests.get(keyed.url + path, headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.json() == {"error": {"message": "Incorrect API key provided.",
                                         "type": "invalid_request_error", "param": None,
                                         "code": "invalid_api_key"}}
    assert "sk-upstream" not in response.text
    assert "client-key" not in response.text
    assert set(response.headers) <= {"Server", "Date", "Connection", "Content-Type",
                                     "Content-Length"}


# --- text that is not Unicode ------------------------------------------------------------------

LONE_SURROGATE = '"\\ud800 lonely"'  # JSON text; json.loads makes a str no UTF-8 can carry


def _lonely(value: object) -> str:
    """`value` as JSON text, with the string "@" written as a lone surrogate escape."""
    return json.dumps(value).replace('"@"', LONE_SURROGATE)


@pytest.mark.parametrize(("path", "body"), [
    ("/api/chat", {"prompt": "@", "tokens": 3}),
    ("/mock/v1/chat/completions", {"model": "@", "messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/chat/completions", {"model": "demo", "messages": [{"role": "user", "content": "@"}]}),
])
def test_a_lone_surrogate_in_a_json_body_is_a_400_not_a_broken_stream(server, path, body):
    response = requests.post(server.url + path, data=_lonely(body), timeout=10,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "surrogate" in response.json()["error"]["message"]


def test_a_lone_surrogate_in_a_websocket_prompt_is_refused(server):
    ws = websocket.create_connection(server.url.replace("http", "ws") + "/ws/chat", timeout=10)
    try:
        ws.send(_lonely({"type": "prompt", "prompt": "@"}))
        reply = json.loads(ws.recv())
    finally:
        ws.close()
    assert reply["type"] == "error" and reply["param"] == "prompt"


def test_a_malformed_query_last_event_id_is_refused_even_beside_a_header(server):
    response = requests.get(f"{server.url}/sse/chat?prompt=p&tokens=5&last_event_id=x%0Dy",
                            headers={"Last-Event-ID": "2"}, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "last_event_id"


# --- JSON that json.loads takes and RFC 8259 does not: deep nesting, NaN, 1e400 ----------------

DEEP = "[" * 20_000 + "]" * 20_000  # within every route's body limit
UNCLOSED = "[" * 20_000
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400", "-1E+400"]
CHAT = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
JSON_BODIES = {  # path: a valid body whose marker "@" becomes the hostile value
    "/api/chat": {"prompt": "p", "tokens": "@"},
    "/api/channels/hostile-json": {"event": "news", "data": {"x": "@"}},
    "/api/tasks": {"steps": "@"},
    "/mock/v1/chat/completions": {**CHAT, "temperature": "@"},
    "/v1/chat/completions": {**CHAT, "temperature": "@"},
}


def _post_json(server: LiveServer, path: str, text: str) -> requests.Response:
    return requests.post(server.url + path, data=text.encode(), timeout=30,
                         headers={"Content-Type": "application/json", "X-Mock-Delay-Ms": "0"})


def _hostile(path: str, value: str) -> str:
    return json.dumps(JSON_BODIES[path]).replace('"@"', value)


def _assert_invalid_json(response: requests.Response, path: str, reason: str) -> None:
    assert response.status_code == 400, response.text[:300]
    error = response.json()["error"]
    if "/v1/" in path:  # OpenAI's shape
        assert error["type"] == "invalid_request_error"
    else:
        assert error["type"] == "invalid_json"
    assert error["message"].startswith("the request body is not valid JSON: ")
    assert reason in error["message"]


@pytest.mark.parametrize("path", list(JSON_BODIES))
@pytest.mark.parametrize(("text", "reason"), [(DEEP, "deeper than 64"),
                                              (UNCLOSED, "do not balance")])
def test_deep_nesting_is_a_400_invalid_json_not_a_500(server, path, text, reason):
    for body in (text, _hostile(path, text)):
        _assert_invalid_json(_post_json(server, path, body), path, reason)


@pytest.mark.parametrize("path", list(JSON_BODIES))
@pytest.mark.parametrize("literal", NON_FINITE)
def test_a_non_finite_number_is_a_400_invalid_json(server, path, literal):
    reason = "out of range" if "e" in literal.lower() else "is not a JSON number"
    _assert_invalid_json(_post_json(server, path, _hostile(path, literal)), path, reason)


def test_nesting_at_the_limit_is_served(server):
    data = json.loads("[" * 63 + "]" * 63)
    response = requests.post(server.url + "/api/channels/hostile-json", timeout=10,
                             json={"event": "news", "data": data})
    assert response.status_code == 202, response.text


def test_a_refused_publish_reaches_no_subscriber(server):
    channel = new_channel()
    with subscribe(server.url, f"/sse/channels/{channel}") as stream:
        events = stream.events()
        for literal in [*NON_FINITE, DEEP]:
            body = json.dumps({"event": "news", "data": ["@"]}).replace('"@"', literal)
            response = _post_json(server, f"/api/channels/{channel}", body)
            assert response.status_code == 400
        publish(server.url, channel, {"after": 1.5})
        received = take(events, 1)
    assert [event.data for event in received] == ['{"after":1.5}']


@pytest.mark.parametrize("text", [DEEP, '{"type": "prompt", "prompt": "p", "tokens": NaN}',
                                  '{"type": "prompt", "prompt": "p", "delay_ms": 1e400}'])
def test_a_hostile_websocket_message_is_an_error_message_and_the_connection_stays(server, text):
    ws = websocket.create_connection(server.url.replace("http", "ws") + "/ws/chat", timeout=10)
    try:
        ws.send(text)
        reply = json.loads(ws.recv())
        ws.send(json.dumps({"type": "prompt", "prompt": "p", "tokens": 2, "delay_ms": 0}))
        after = json.loads(ws.recv())
    finally:
        ws.close()
    assert reply["type"] == "error"
    assert reply["message"].startswith("the message is not valid JSON: ")
    assert after["type"] == "start"


# --- integers are ASCII digits ------------------------------------------------------------------

FULL_WIDTH_THREE = "\uff13"


@pytest.mark.parametrize(("path", "param"), [
    (f"/sse/chat?prompt=p&tokens={FULL_WIDTH_THREE}", "tokens"),
    (f"/sse/chat?prompt=p&delay_ms={FULL_WIDTH_THREE}", "delay_ms"),
    (f"/sse/chat?prompt=p&tokens=5&last_event_id={FULL_WIDTH_THREE}", "last_event_id"),
    ("/sse/chat?prompt=p&tokens=5&last_event_id=" + "9" * 5000, "last_event_id"),
    (f"/sse/logs/app.log?tail={FULL_WIDTH_THREE}", "tail"),
    (f"/sse/channels/hostile-digits?last_event_id={FULL_WIDTH_THREE}-0", "last_event_id"),
])
def test_a_query_integer_in_other_digits_is_a_400_naming_it(server, path, param):
    response = requests.get(server.url + path, timeout=10)
    assert response.status_code == 400, response.text[:300]
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request", param)


# A header is read as Latin-1, whose only digits besides ASCII are the superscripts: "\xb3"
# passed str.isdigit() and then failed int(), a 500.
@pytest.mark.parametrize("value", ["\xb3", "+3", "3_0"])
def test_a_last_event_id_header_in_other_digits_is_a_400(server, value):
    response = requests.post(server.url + "/api/chat", json={"prompt": "p", "tokens": 5},
                             headers={"Last-Event-ID": value}, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "last_event_id"


@pytest.mark.parametrize("value", ["\xb3", "+3", "3_0"])
def test_a_mock_delay_header_in_other_digits_is_a_400_naming_it(server, value):
    response = requests.post(server.url + "/mock/v1/chat/completions", json=CHAT, timeout=10,
                             headers={"X-Mock-Delay-Ms": value})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "delay_ms"
