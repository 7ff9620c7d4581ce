"""Signed tokens against the real server: every endpoint that streams or starts work refuses
what it must (401/403/404) and serves what the token covers, over real sockets."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest
import requests
import websocket

from auth import LEEWAY_SECONDS, mint_token
from tests.support.channel_clients import take
from tests.support.clients import Stream, wait_until
from tests.support.ws_clients import GENEROUS, send, until_end, ws_url

SECRET = "integration-secret-" + "x" * 32
AUDIENCE = "streams"
EVERY_SCOPE = ["chat", "tasks", "logs"]


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("auth-logs")
    (path / "app.log").write_text("one\ntwo\n")
    return path


@pytest.fixture(scope="module")
def server(start_server, log_dir):
    return start_server(env={"AUTH_SECRET": SECRET, "AUTH_AUDIENCE": AUDIENCE,
                             "PUBLIC_CHANNELS": "public:*", "HEARTBEAT_SECONDS": "1",
                             "LOG_DIR": str(log_dir)})


def token(sub: str | None = "alice", *, ttl: float = 600, key: str = SECRET,
          audience: str | None = AUDIENCE, **rights) -> str:
    return mint_token(key, sub=sub, ttl=ttl, audience=audience, **rights)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


ALICE = {"subscribe": ["user:{sub}", "orders:*"], "publish": ["user:{sub}"],
         "scope": EVERY_SCOPE}


def channel() -> str:
    return uuid.uuid4().hex[:10]


def new_task(server, grant: str) -> str:
    response = requests.post(f"{server.url}/api/tasks", json={"steps": 50, "step_ms": 200},
                             headers=bearer(grant), timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def new_generation(server, grant: str) -> str:
    response = requests.post(f"{server.url}/api/generations",
                             json={"prompt": "hi", "tokens": 200, "delay_ms": 50},
                             headers=bearer(grant), timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["id"]


# Every endpoint that streams or starts work, as (method, path, JSON body) for a token of alice.
def endpoints(server) -> dict[str, tuple[str, str, dict | None]]:
    alices = token(**ALICE)
    task, generation = new_task(server, alices), new_generation(server, alices)
    return {
        "subscribe": ("GET", "/sse/channels/user:alice", None),
        "publish": ("POST", "/api/channels/user:alice", {"data": 1}),
        "sse-chat": ("GET", "/sse/chat?prompt=hi&tokens=2", None),
        "api-chat": ("POST", "/api/chat", {"prompt": "hi", "tokens": 2}),
        "start-task": ("POST", "/api/tasks", {"steps": 1, "step_ms": 0}),
        "task-state": ("GET", f"/api/tasks/{task}", None),
        "task-events": ("GET", f"/sse/tasks/{task}", None),
        "cancel-task": ("DELETE", f"/api/tasks/{task}", None),
        "start-generation": ("POST", "/api/generations", {"prompt": "hi", "tokens": 2}),
        "generation-state": ("GET", f"/api/generations/{generation}", None),
        "generation-events": ("GET", f"/sse/generations/{generation}", None),
        "cancel-generation": ("DELETE", f"/api/generations/{generation}", None),
        "presence": ("GET", "/api/channels/user:alice/presence", None),
        "list-logs": ("GET", "/api/logs", None),
        "tail-log": ("GET", "/sse/logs/app.log", None),
    }


OPEN: list[requests.Response] = []


@pytest.fixture(autouse=True)
def _close_answers():
    yield
    while OPEN:
        OPEN.pop().close()


def call(server, method: str, path: str, body: dict | None, headers: dict | None = None,
         cookies: dict | None = None) -> requests.Response:
    """The answer, its body unread (a stream's never ends); closed after the test."""
    response = requests.request(method, server.url + path, json=body, headers=headers,
                                cookies=cookies, timeout=10, stream=True)
    OPEN.append(response)
    return response


BAD_TOKENS = {
    "none": lambda: None,
    "other-key": lambda: token(key="another-secret-" + "y" * 32, **ALICE),
    "alg-none": lambda: jwt.encode({"sub": "alice", "exp": time.time() + 600, "aud": AUDIENCE,
                                    "scope": "chat tasks logs"}, None, algorithm="none"),
    "expired": lambda: mint_token(SECRET, sub="alice", ttl=1, audience=AUDIENCE,
                                  now=time.time() - LEEWAY_SECONDS - 10, **ALICE),
    "wrong-audience": lambda: token(audience="elsewhere", **ALICE),
    "no-audience": lambda: token(audience=None, **ALICE),
    "garbage": lambda: "a.b.c",
}


@pytest.mark.parametrize("bad", BAD_TOKENS)
def test_every_endpoint_refuses_a_missing_or_unusable_token_with_401(server, bad):
    presented = BAD_TOKENS[bad]()
    for name, (method, path, body) in endpoints(server).items():
        response = call(server, method, path, body,
                        headers=None if presented is None else bearer(presented))
        assert response.status_code == 401, (name, response.status_code, response.text[:200])
        assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"', name
        error = response.json()["error"]
        assert error["type"] == "unauthorized", name
        if presented is not None:
            assert presented not in response.text, name


def test_every_endpoint_serves_a_token_that_covers_it(server):
    alices = token(**ALICE)
    for name, (method, path, body) in endpoints(server).items():
        response = call(server, method, path, body, headers=bearer(alices))
        assert response.status_code in (200, 202), (name, response.status_code,
                                                    response.text[:200])
        response.close()


def test_a_token_without_the_scope_or_pattern_is_forbidden(server):
    bare = token(subscribe=["orders:*"])  # alice again, but without scopes or her channel
    for name, (method, path, body) in endpoints(server).items():
        response = call(server, method, path, body, headers=bearer(bare))
        if name in ("task-state", "task-events", "cancel-task", "generation-state",
                    "generation-events", "cancel-generation"):
            continue  # hers, and seeing them needs no scope: the owner test covers them
        assert response.status_code == 403, (name, response.status_code, response.text[:200])
        assert response.json()["error"]["type"] == "forbidden", name


@pytest.mark.parametrize("where", ["header", "query", "cookie"])
def test_the_token_is_taken_from_header_query_or_cookie(server, where):
    alices = token(**ALICE)
    path = "/sse/chat?prompt=hi&tokens=2"
    headers, cookies = None, None
    if where == "header":
        headers = bearer(alices)
    elif where == "query":
        path += f"&access_token={alices}"
    else:
        cookies = {"stream_token": alices}
    response = call(server, "GET", path, None, headers=headers, cookies=cookies)
    assert response.status_code == 200
    assert b"event: end" in response.content


def test_sub_patterns_give_alice_her_channel_and_never_bobs(server):
    alices = token(**ALICE)
    assert call(server, "GET", "/sse/channels/user:bob", None, bearer(alices)).status_code == 403
    assert call(server, "POST", "/api/channels/user:bob", {"data": 1},
                bearer(alices)).status_code == 403
    mine = call(server, "GET", "/sse/channels/user:alice", None, bearer(alices))
    assert mine.status_code == 200
    mine.close()


def test_a_wildcard_does_not_cross_a_colon(server):
    alices = token(**ALICE)
    one_level = call(server, "GET", "/sse/channels/orders:42", None, bearer(alices))
    assert one_level.status_code == 200
    one_level.close()
    deeper = call(server, "GET", "/sse/channels/orders:42:refunds", None, bearer(alices))
    assert deeper.status_code == 403


def test_public_channels_need_no_token_and_others_do(server):
    public = call(server, "GET", "/sse/channels/public:status", None)
    assert public.status_code == 200
    public.close()
    assert call(server, "GET", "/sse/channels/news", None).status_code == 401


def test_a_private_channel_reaches_its_owner_only(server):
    published = requests.post(f"{server.url}/api/channels/user:alice",
                              json={"event": "ready", "data": {"export": 7}},
                              headers=bearer(token(**ALICE)), timeout=10)
    assert published.status_code == 202, published.text
    event_id = published.json()["id"]
    with Stream(server.url, "/sse/channels/user:alice",
                headers={**bearer(token(**ALICE)), "Last-Event-ID": "0-0"}) as alice:
        assert alice.status == 200
        event = next(e for _, e in alice.events() if e.type == "ready")
        assert event.last_event_id == event_id and json.loads(event.data) == {"export": 7}
    bobs = token("bob", subscribe=["user:{sub}"])
    assert call(server, "GET", "/sse/channels/user:alice", None, bearer(bobs)).status_code == 403


def test_another_subjects_task_or_generation_answers_as_a_missing_one(server):
    alices = token(**ALICE)
    bobs = token("bob", subscribe=["user:{sub}"], scope=EVERY_SCOPE)
    task, generation = new_task(server, alices), new_generation(server, alices)
    missing = uuid.uuid4().hex
    for kind, real in (("tasks", task), ("generations", generation)):
        for method, template in (("GET", "/api/{kind}/{id}"), ("DELETE", "/api/{kind}/{id}"),
                                 ("GET", "/sse/{kind}/{id}")):
            answers = [call(server, method, template.format(kind=kind, id=which), None,
                            bearer(bobs)) for which in (real, missing)]
            assert [a.status_code for a in answers] == [404, 404], (kind, method)
            assert answers[0].json() == answers[1].json(), (kind, method)
        assert call(server, "GET", f"/api/{kind}/{real}", None,
                    bearer(alices)).status_code == 200
    admin = token("root", scope=["admin"])
    assert call(server, "GET", f"/api/tasks/{task}", None, bearer(admin)).status_code == 200
    assert call(server, "DELETE", f"/api/generations/{generation}", None,
                bearer(admin)).status_code == 200


def test_log_files_answer_the_same_whether_they_exist_or_not_without_the_scope(server):
    chat_only = token(scope=["chat"])
    answers = [call(server, "GET", f"/sse/logs/{name}", None, bearer(chat_only))
               for name in ("app.log", "no-such.log")]
    assert [a.status_code for a in answers] == [403, 403]
    assert answers[0].json() == answers[1].json()
    without = [call(server, "GET", f"/sse/logs/{name}", None) for name in ("app.log", "nope.log")]
    assert [a.status_code for a in without] == [401, 401]
    assert without[0].json() == without[1].json()


def test_the_token_never_reaches_the_access_log(server, log_dir):
    secret_token = token(**ALICE)
    for answer in (
            call(server, "GET", f"/sse/chat?prompt=hi&tokens=1&access_token={secret_token}",
                 None),
            call(server, "GET", "/sse/chat?prompt=hi&tokens=1", None, bearer(secret_token)),
            call(server, "GET", "/sse/chat?prompt=hi&tokens=1", None,
                 cookies={"stream_token": secret_token})):
        assert answer.status_code == 200 and b"event: end" in answer.content
    access_log = log_dir / "access.log"
    wait_until(lambda: access_log.exists() and access_log.read_text().count("/sse/chat") >= 3,
               timeout=10)
    text = access_log.read_text()
    signature = secret_token.rsplit(".", 1)[1]
    assert secret_token not in text and signature not in text
    assert "access_token=REDACTED" in text


def test_the_health_check_says_auth_is_on(server):
    assert requests.get(f"{server.url}/healthz", timeout=5).json()["auth"] == "on"


@pytest.mark.parametrize("path", ["/ws/chat", "/ws/tts"])
@pytest.mark.parametrize(("presented", "status"), [
    *((bad, 401) for bad in BAD_TOKENS), ("no-chat", 403)])
def test_websocket_handshakes_are_refused_before_the_upgrade(server, path, presented, status):
    presented = token(scope=["tasks"]) if presented == "no-chat" else BAD_TOKENS[presented]()
    query = "" if presented is None else f"?access_token={presented}"
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(ws_url(server, path + query), timeout=GENEROUS)
    assert refused.value.status_code == status


def test_a_websocket_with_a_token_in_its_cookie_chats(server):
    ws = websocket.create_connection(ws_url(server, "/ws/chat"), timeout=GENEROUS,
                                     cookie=f"stream_token={token(**ALICE)}")
    try:
        send(ws, type="prompt", prompt="hi", tokens=3)
        assert until_end(ws)[-1]["type"] == "end"
    finally:
        ws.close()
        ws.shutdown()


# Streams that outlive their token.

def test_an_sse_subscription_ends_at_exp_and_a_fresh_token_resumes_without_loss(server):
    name = "user:alice"
    publisher = token(**ALICE)
    first = publish(server, name, 1, publisher)
    short = token(ttl=2, **ALICE)
    with Stream(server.url, f"/sse/channels/{name}",
                headers={**bearer(short), "Last-Event-ID": first}) as stream:
        seen = publish(server, name, 2, publisher)
        body = stream.read_all().decode()  # until the server ends the response
    blocks = [block for block in body.split("\n\n") if block.strip(": ping\n")]
    assert f"id: {seen}" in blocks[0]
    assert "event: error" in blocks[-1] and "id:" not in blocks[-1]
    error = json.loads(blocks[-1].split("data: ", 1)[1])
    assert error["type"] == "token_expired"
    missed = publish(server, name, 3, publisher)
    with Stream(server.url, f"/sse/channels/{name}",
                headers={**bearer(token(**ALICE)), "Last-Event-ID": seen}) as again:
        resumed = take(again.events(), 1)[0]
    assert resumed.last_event_id == missed and json.loads(resumed.data) == 3


def publish(server, name: str, value: object, grant: str) -> str:
    response = requests.post(f"{server.url}/api/channels/{name}",
                             json={"event": "news", "data": value}, headers=bearer(grant),
                             timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_an_ndjson_generation_ends_at_exp_and_resumes_with_a_fresh_token(server):
    generation = new_generation(server, token(**ALICE))
    short = token(ttl=2, **ALICE)
    with Stream(server.url, f"/sse/generations/{generation}",
                headers={**bearer(short), "Accept": "application/x-ndjson"}) as stream:
        lines = [json.loads(line) for line in stream.read_all().splitlines() if line.strip()]
    assert lines[-1]["type"] == "error", lines[-1]
    assert lines[-1]["error"]["type"] == "token_expired"
    last = max(line["index"] for line in lines if line.get("type") == "token")
    with Stream(server.url, f"/sse/generations/{generation}",
                headers={**bearer(token(**ALICE)), "Accept": "application/x-ndjson",
                         "Last-Event-ID": str(last)}) as again:
        first = next(json.loads(line) for line in again.response
                     if json.loads(line).get("type") == "token")
    assert first["index"] == last + 1


def test_a_websocket_closes_with_4001_at_exp(server):
    short = token(ttl=2, **ALICE)
    ws = websocket.create_connection(ws_url(server, f"/ws/chat?access_token={short}"),
                                     timeout=GENEROUS)
    try:
        send(ws, type="prompt", prompt="hi", tokens=1000, delay_ms=20)
        began = time.monotonic()
        while True:
            opcode, payload = ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                break
        assert int.from_bytes(payload[:2], "big") == 4001
        assert payload[2:].decode() == "token_expired"
        assert time.monotonic() - began < 2 + GENEROUS
    finally:
        ws.close()
        ws.shutdown()  # close() leaves the socket open when the server closed first


EVERY_STREAM = [("subscribe", "text/event-stream"), ("sse-chat", "text/event-stream"),
                ("api-chat", "text/event-stream"), ("api-chat", "application/x-ndjson"),
                ("task-events", "text/event-stream"), ("generation-events", "text/event-stream"),
                ("tail-log", "text/event-stream")]


def test_every_stream_ends_with_token_expired_at_exp(server):
    # All at once, each with a token two seconds from its end: two seconds for them all.
    every = endpoints(server)
    short = token(ttl=2, **ALICE)

    def last_record(name: str, accept: str) -> str:
        method, path, body = every[name]
        if name.endswith("chat"):
            path, body = (path.replace("tokens=2", "tokens=1000&delay_ms=20"),
                          body and {**body, "tokens": 1000, "delay_ms": 20})
        with Stream(server.url, path, method=method, body=body,
                    headers={**bearer(short), "Accept": accept}) as stream:
            assert stream.status == 200, name
            tail = stream.read_all()[-300:].decode()
        separator = "\n" if accept == "application/x-ndjson" else "\n\n"
        return [record for record in tail.split(separator) if record.strip()][-1]

    began = time.monotonic()
    with ThreadPoolExecutor(len(EVERY_STREAM)) as pool:
        records = list(pool.map(lambda case: last_record(*case), EVERY_STREAM))
    assert time.monotonic() - began < 2 + GENEROUS
    for case, record in zip(EVERY_STREAM, records, strict=True):
        assert '"type":"token_expired"' in record, (case, record)
