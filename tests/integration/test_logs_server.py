"""Log tails and the access log against the real gunicorn server, over real sockets."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid

import pytest
import requests

from streaming.sse import SSEParser
from tests.support.clients import Stream, descriptors_on, metric, wait_until

BOUND = 2.0  # seconds: generous on a loaded machine; the design delivers within ~0.1 s


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="module")
def logs_server(start_server, logdir):
    return start_server(env={"LOG_DIR": str(logdir), "HEARTBEAT_SECONDS": "1"})


def make_log(logdir, lines: list[str]):
    path = logdir / f"{uuid.uuid4().hex[:8]}.log"
    path.write_text("".join(line + "\n" for line in lines))
    return path


def append(path, text: str) -> None:
    with open(path, "a") as file:
        file.write(text)


class Viewer:
    """An SSE stream of one log, read event by event, failing after `BOUND`-ish seconds
    without the events asked for (the server's heartbeat every second lets it check)."""

    def __init__(self, server, path: str, headers: dict[str, str] | None = None) -> None:
        self.stream = Stream(server.url, path, headers=headers, timeout=10)
        self._chunks = self.stream.chunks()
        self._parser = SSEParser()
        self._ready: list = []

    def take_timed(self, timeout: float = 10) -> tuple[float, object]:
        deadline = time.monotonic() + timeout
        while not self._ready:
            at, chunk = next(self._chunks)
            assert at < deadline, "no event in time"
            self._ready += [(at, event) for event in self._parser.feed(chunk)]
        return self._ready.pop(0)

    def take(self, count: int) -> list:
        return [self.take_timed()[1] for _ in range(count)]

    def close(self) -> None:
        self.stream.close()

    def __enter__(self) -> Viewer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def raw_get(server, target: bytes, until: bytes | None = None) -> tuple[int, bytes]:
    """GET `target` exactly as given: no client normalises or re-encodes it. Reads until the
    server closes, or, for a stream, until `until` arrives."""
    deadline = time.monotonic() + 10
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
            if until is not None and until in response:
                break
            assert time.monotonic() < deadline, response
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_tail_then_follow(logs_server, logdir):
    path = make_log(logdir, [f"line {i}" for i in range(100)])
    with Viewer(logs_server, f"/sse/logs/{path.name}?tail=3") as viewer:
        headers = viewer.stream.response.headers
        assert headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert headers["Cache-Control"] == "no-cache"
        events = viewer.take(3)
        assert [e.data for e in events] == ["line 97", "line 98", "line 99"]
        assert [int(e.last_event_id) for e in events] == [
            path.stat().st_size - 16, path.stat().st_size - 8, path.stat().st_size]
        written = time.monotonic()
        append(path, "fresh\r\n")
        arrived, event = viewer.take_timed()
        assert (event.data, event.type) == ("fresh", "message")
        assert int(event.last_event_id) == path.stat().st_size
        assert arrived - written < BOUND


@pytest.mark.parametrize(("query", "first"), [("", "line 10"), ("?tail=0", None),
                                              ("?tail=1000", "line 0")])
def test_tail_counts_lines(logs_server, logdir, query, first):
    path = make_log(logdir, [f"line {i}" for i in range(60)])
    with Viewer(logs_server, f"/sse/logs/{path.name}{query}") as viewer:
        if first is None:
            append(path, "after\n")
            first = "after"
        assert viewer.take(1)[0].data == first


@pytest.mark.parametrize(("query", "headers", "param"), [
    ("tail=-1", {}, "tail"), ("tail=1001", {}, "tail"), ("tail=ten", {}, "tail"),
    ("", {"Last-Event-ID": "12x"}, "last_event_id"),
    ("last_event_id=-5", {}, "last_event_id"),
    ("last_event_id=" + "9" * 20, {}, "last_event_id"),
])
def test_bad_parameters_are_a_json_400(logs_server, logdir, query, headers, param):
    path = make_log(logdir, ["x"])
    response = requests.get(f"{logs_server.url}/sse/logs/{path.name}?{query}", headers=headers,
                            timeout=5)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request"
    assert response.json()["error"]["param"] == param


@pytest.mark.parametrize("how", ["header", "query"])
def test_resume_continues_exactly_after_the_offset(logs_server, logdir, how):
    path = make_log(logdir, [f"line {i}" for i in range(10)])
    with Viewer(logs_server, f"/sse/logs/{path.name}?tail=10") as viewer:
        seen = viewer.take(4)
    append(path, "".join(f"more {i}\n" for i in range(3)))
    last = seen[-1].last_event_id
    if how == "header":
        resumed = Viewer(logs_server, f"/sse/logs/{path.name}?tail=1",
                         headers={"Last-Event-ID": last})
    else:
        resumed = Viewer(logs_server, f"/sse/logs/{path.name}?tail=1&last_event_id={last}")
    with resumed:
        rest = resumed.take(9)
    assert [e.data for e in seen + rest] == [f"line {i}" for i in range(10)] + [
        f"more {i}" for i in range(3)]
    ids = [int(e.last_event_id) for e in seen + rest]
    assert ids == sorted(set(ids))
    assert ids[-1] == path.stat().st_size


def test_an_offset_past_the_end_resets(logs_server, logdir):
    path = make_log(logdir, ["a", "b"])
    with Viewer(logs_server, f"/sse/logs/{path.name}",
                headers={"Last-Event-ID": "999999"}) as viewer:
        events = viewer.take(3)
    assert (events[0].type, json.loads(events[0].data), events[0].last_event_id) == (
        "reset", {"reason": "offset_past_end"}, "0")
    assert [e.data for e in events[1:]] == ["a", "b"]


TRAVERSALS = [
    b"/sse/logs/../../etc/passwd", b"/sse/logs/..", b"/sse/logs/.", b"/sse/logs/",
    b"/sse/logs", b"/sse/logs/%2e%2e/%2e%2e/etc/passwd", b"/sse/logs/..%2f..%2fetc%2fpasswd",
    b"/sse/logs/%2e%2e%2f%2e%2e%2fetc%2fpasswd", b"/sse/logs/%252e%252e%252fetc%252fpasswd",
    b"/sse/logs//etc/passwd", b"/sse/logs/%2fetc%2fpasswd", b"/sse/logs/..\\..\\etc\\passwd",
    b"/sse/logs/..%5c..%5cetc%5cpasswd", b"/sse/logs/%c0%ae%c0%ae%c0%afetc%c0%afpasswd",
    b"/sse/logs/%e0%80%ae%e0%80%ae/etc/passwd", b"/sse/logs/NAME%00", b"/sse/logs/NAME%00.log",
    b"/sse/logs/./NAME", b"/sse/logs/%2e/NAME",
    b"/sse/logs/sub/inner.log", b"/sse/logs/sub", b"/sse/logs/.hidden",
    b"/sse/logs/escape.log", b"/sse/logs/outdir/secret.txt", b"/sse/logs/outdir",
    b"/sse/logs/missing.log", b"/sse/logs/NAME/",
]


@pytest.fixture(scope="module")
def traps(logdir):
    """A log beside every kind of thing a client must not reach, inside and outside."""
    outside = logdir.parent / f"outside-{uuid.uuid4().hex[:6]}"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret\n")
    (logdir / "sub").mkdir()
    (logdir / "sub" / "inner.log").write_text("inner\n")
    (logdir / ".hidden").write_text("hidden\n")
    (logdir / "escape.log").symlink_to(outside / "secret.txt")
    (logdir / "outdir").symlink_to(outside)
    (logdir / "current.log").symlink_to("access.log")
    return make_log(logdir, ["reachable"])


@pytest.mark.parametrize("target", TRAVERSALS)
def test_every_way_out_gets_the_404_of_any_unknown_url(logs_server, traps, target):
    _, unknown = raw_get(logs_server, b"/no/such/url")
    status, body = raw_get(logs_server, target.replace(b"NAME", traps.name.encode()))
    assert (status, body) == (404, unknown)
    assert b"secret" not in body and b"inner" not in body


@pytest.mark.parametrize("byte", [b"\x00", b"\x01", b"\x7f"])
def test_raw_control_bytes_never_reach_the_app(logs_server, traps, byte):
    """gunicorn's parser refuses them with its own 400 (echoing the request line), the same
    whether the log exists or not."""
    status, body = raw_get(logs_server, f"/sse/logs/{traps.name}".encode() + byte)
    missing = raw_get(logs_server, b"/sse/logs/missing.log" + byte)
    assert status == 400
    assert (status, body.replace(traps.name.encode(), b"missing.log")) == missing


def test_the_real_log_next_to_the_traps_is_served(logs_server, traps):
    status, body = raw_get(logs_server, f"/sse/logs/{traps.name}?tail=1".encode(),
                           until=b"reachable")
    assert status == 200
    assert b"data: reachable\n" in body


def test_api_logs_lists_only_reachable_files(logs_server, logdir, traps):
    response = requests.get(logs_server.url + "/api/logs", timeout=5)
    assert response.status_code == 200
    names = response.json()["logs"]
    assert names == sorted(names)
    assert {"access.log", "current.log", traps.name} <= set(names)
    assert not {"sub", ".hidden", "escape.log", "outdir"} & set(names)


def test_a_symlink_to_a_log_inside_is_followed(logs_server, logdir, traps):
    with Viewer(logs_server, "/sse/logs/current.log?tail=0") as viewer:
        requests.get(logs_server.url + "/healthz?via=symlink", timeout=5)
        assert "/healthz?via=symlink" in viewer.take(1)[0].data


def test_a_partial_line_waits_for_its_newline(logs_server, logdir):
    path = make_log(logdir, ["first"])
    with Viewer(logs_server, f"/sse/logs/{path.name}?tail=1") as viewer:
        assert viewer.take(1)[0].data == "first"
        append(path, "half")
        append(path, "marker-free\n")
        event = viewer.take(1)[0]
    assert event.data == "halfmarker-free"
    assert int(event.last_event_id) == path.stat().st_size


def test_a_partial_line_is_not_sent_before_its_newline(logs_server, logdir):
    path = make_log(logdir, ["first"])
    with Viewer(logs_server, f"/sse/logs/{path.name}?tail=1") as viewer:
        viewer.take(1)
        append(path, "unfinished")
        time.sleep(0.6)  # several polls
        viewer.stream.connection.sock.settimeout(0.1)
        received = b""
        try:
            while chunk := viewer.stream.response.read1(65536):
                received += chunk
        except TimeoutError:
            pass
    assert b"unfinished" not in received


def test_copytruncate_resets_and_follows_from_zero(logs_server, logdir):
    path = make_log(logdir, [f"before {i}" for i in range(5)])
    with Viewer(logs_server, f"/sse/logs/{path.name}?tail=1") as viewer:
        viewer.take(1)
        (logdir / (path.name + ".1")).write_bytes(path.read_bytes())  # what copytruncate does
        os.truncate(path, 0)
        time.sleep(0.3)
        append(path, "after\n")
        reset, line = viewer.take(2)
    assert (reset.type, json.loads(reset.data), reset.last_event_id) == (
        "reset", {"reason": "truncated"}, "0")
    assert (line.data, line.last_event_id) == ("after", "6")


def test_rotation_follows_the_new_file(logs_server, logdir):
    path = make_log(logdir, ["old"])
    with Viewer(logs_server, f"/sse/logs/{path.name}?tail=1") as viewer:
        viewer.take(1)
        append(path, "old last\n")
        os.rename(path, logdir / (path.name + ".1"))
        path.write_text("new first\n")
        append(path, "new second\n")
        events = viewer.take(4)
    assert [(e.type, e.data) for e in events] == [
        ("message", "old last"), ("reset", '{"reason":"rotated"}'),
        ("message", "new first"), ("message", "new second")]
    assert events[-1].last_event_id == str(path.stat().st_size)


def test_many_viewers_share_one_watcher(logs_server, logdir):
    path = make_log(logdir, ["start"])
    [worker] = logs_server.worker_pids()
    # Earlier tests' viewers are closed; their watchers stop once the server notices.
    wait_until(lambda: metric(logs_server.url, "log_watchers") == 0, timeout=BOUND)
    viewers = [Viewer(logs_server, f"/sse/logs/{path.name}?tail=1") for _ in range(20)]
    try:
        for viewer in viewers:
            assert viewer.take(1)[0].data == "start"
        assert metric(logs_server.url, "log_watchers") == 1
        assert descriptors_on(worker, path) == 1
        append(path, "to all\n")
        for viewer in viewers:
            assert viewer.take(1)[0].data == "to all"
    finally:
        for viewer in viewers:
            viewer.close()
    wait_until(lambda: metric(logs_server.url, "log_watchers") == 0, timeout=BOUND)
    wait_until(lambda: descriptors_on(worker, path) == 0, timeout=BOUND)


def test_access_log_gets_every_request_with_its_query_at_once(logs_server, logdir):
    probe = uuid.uuid4().hex
    token = "secret-" + uuid.uuid4().hex
    response = requests.get(f"{logs_server.url}/healthz?probe={probe}&n=1", timeout=5,
                            headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    access = logdir / "access.log"
    # Flushed per line: a buffered file would hold a ~150-byte line back for kilobytes.
    wait_until(lambda: f'"GET /healthz?probe={probe}&n=1 HTTP/1.1" 200' in access.read_text(),
               timeout=BOUND)
    assert token not in access.read_text()
    assert token not in logs_server.log()
