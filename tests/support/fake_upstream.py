"""A scripted raw-TCP upstream for the proxy: the bytes, pauses and failures a mock cannot make.

The path after `/v1/` picks the script that answers (a method `_<name>`); a subclass adds
scripts of its own. It records what each request carried (`received`, keyed by request
target) and when the proxy closed the connection while a script waited (`closed`), so a test
can see what the proxy sent and when it hung up.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import defaultdict
from urllib.parse import parse_qs

from testbed.loopback import LoopbackServer
from testbed.raw_http import LAST_CHUNK, chunk, read_request

SSE_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
FIRST_EVENT = b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'

# Bytes naive relays break: an event split inside a UTF-8 character, CRLF and CR line ends, a
# comment, a large piece, and a tail with no line end at all.
REPLAY = [
    b'data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n',
    b'data: {"choices":[{"delta":{"content":" caf\xc3',
    b'\xa9"}}]}\n\n: a comment\n\n',
    b"data: crlf\r\n\r\ndata: cr\r\r",
    b"data: line one\ndata: line two\n\n" * 300,
    b"data: [DONE]\n\n",
    b"no newline at the end",
]

CHAT_TOKENS = [" Hello", ",", " wörld", " 🚀"]
"""The content deltas of the chat scripts' answers, in order."""
CHAT_USAGE = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def chat_event(delta: dict | None = None, finish_reason: str | None = None,
               **fields: object) -> bytes:
    """One `chat.completion.chunk` event as OpenAI frames it (`usage` null but on the last)."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None,
                                         "finish_reason": finish_reason}]
    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
             "model": "gpt-test", "choices": choices, "usage": None, **fields}
    return b"data: %s\n\n" % json.dumps(chunk, ensure_ascii=False).encode()


CHAT_DELTAS = [chat_event({"role": "assistant", "content": ""}),
               *(chat_event({"content": text}) for text in CHAT_TOKENS)]


class FakeUpstream(LoopbackServer):
    """A raw HTTP/1.1 upstream; each script answers one request and says whether the
    connection stays open for the next."""

    def __init__(self) -> None:
        self.received: dict[str, dict] = {}
        self.arrived: defaultdict[str, threading.Event] = defaultdict(threading.Event)
        self.closed: dict[str, float] = {}
        super().__init__()

    def handle(self, connection: socket.socket, number: int) -> None:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        served = 0
        with connection.makefile("rb") as reader:
            while request := read_request(reader):
                served += 1
                self.received[request.target] = {
                    "method": request.method, "headers": request.headers,
                    "body": request.body, "connection": number, "request": served}
                self.arrived[request.target].set()
                script = getattr(self, "_" + request.target.split("/")[2].split("?")[0])
                if not script(connection, request.target):
                    return

    def _wait_for_close(self, sock: socket.socket, target: str) -> bool:
        while sock.recv(65536):
            pass
        self.closed[target] = time.monotonic()
        return False

    def _echo(self, sock: socket.socket, target: str) -> bool:
        body = json.dumps(self.received[target]["headers"]).encode()
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Connection: keep-alive, X-Hop-Resp\r\nX-Hop-Resp: 1\r\n"
                     b"Keep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\n"
                     b"Proxy-Connection: keep-alive\r\nTrailer: X-Checksum\r\n"
                     b"Set-Cookie: a=1; Path=/\r\nSet-Cookie: b=2; Path=/\r\n"
                     b"X-Request-Id: req-42\r\nOpenAI-Processing-Ms: 7\r\n"
                     b"X-RateLimit-Remaining-Requests: 99\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body))
        if self.received[target]["method"] != "HEAD":
            sock.sendall(body)
        return True

    def _closing(self, sock: socket.socket, target: str) -> bool:
        # Answers the first request of a connection; closes it on the next without a word, as
        # an upstream closing an idle keep-alive connection at that very moment does.
        if self.received[target]["request"] > 1:
            return False
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True

    def _ratelimit(self, sock: socket.socket, target: str) -> bool:
        body = b'{"error":{"message":"slow down","type":"requests","param":null,"code":null}}'
        sock.sendall(b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
                     b"Retry-After: 7\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        return True

    def _status(self, sock: socket.socket, target: str) -> bool:
        # /v1/status/<code>...[?retry-after=<value>]: that status, with an error in OpenAI's shape.
        path, _, query = target.partition("?")
        code = int(path.split("/")[3])
        retry_after = b"".join(b"Retry-After: %s\r\n" % value.encode()
                               for value in parse_qs(query).get("retry-after", []))
        body = (b'{"error":{"message":"status %d","type":"server_error","param":null,'
                b'"code":null}}' % code)
        sock.sendall(b"HTTP/1.1 %d Scripted\r\nContent-Type: application/json\r\n%s"
                     b"Content-Length: %d\r\n\r\n%s" % (code, retry_after, len(body), body))
        return True

    def _replay(self, sock: socket.socket, target: str) -> bool:
        framing = target.rsplit("/", 1)[1]
        head = {"chunked": b"Transfer-Encoding: chunked",
                "length": b"Content-Length: %d" % len(b"".join(REPLAY)),
                "close": b"Connection: close"}[framing]
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n%s\r\n\r\n" % head)
        for piece in REPLAY:
            time.sleep(0.02)  # separate TCP segments, read separately by the proxy
            sock.sendall(chunk(piece) if framing == "chunked" else piece)
        if framing == "chunked":
            sock.sendall(LAST_CHUNK)
        return framing != "close"

    def _stall(self, sock: socket.socket, target: str) -> bool:
        sock.sendall(SSE_HEAD + chunk(FIRST_EVENT))
        return self._wait_for_close(sock, target)

    def _die(self, sock: socket.socket, target: str) -> bool:
        sock.sendall(SSE_HEAD + chunk(FIRST_EVENT) + chunk(b'data: {"choi'))
        return False

    def _hang(self, sock: socket.socket, target: str) -> bool:
        return self._wait_for_close(sock, target)

    _chat = _stall  # /v1/chat/completions, for the SDK

    def _answer(self, sock: socket.socket, events: list[bytes], end: bytes = LAST_CHUNK) -> bool:
        # Each event its own chunk and its own write, as a model's API sends them.
        sock.sendall(SSE_HEAD)
        for event in events:
            sock.sendall(chunk(event))
        sock.sendall(end)
        return bool(end)

    def _chat_stream(self, sock: socket.socket, target: str) -> bool:
        return self._answer(sock, [*CHAT_DELTAS, chat_event({}, "stop"),
                                   chat_event(usage=CHAT_USAGE), b": keep-alive\n\n",
                                   b"data: [DONE]\n\n"])

    def _filtered(self, sock: socket.socket, target: str) -> bool:
        return self._answer(sock, [*CHAT_DELTAS[:2], chat_event({}, "content_filter"),
                                   b"data: [DONE]\n\n"])

    def _finished_then_cut(self, sock: socket.socket, target: str) -> bool:
        return self._answer(sock, [*CHAT_DELTAS[:2], chat_event({}, "length")], end=b"")

    def _done_without_finish(self, sock: socket.socket, target: str) -> bool:
        return self._answer(sock, [*CHAT_DELTAS[:2], b"data: [DONE]\n\n"])

    def _in_band_error(self, sock: socket.socket, target: str) -> bool:
        error = {"error": {"message": "the model is overloaded", "type": "server_error"}}
        return self._answer(sock, [*CHAT_DELTAS[:2],
                                   b"data: %s\n\n" % json.dumps(error).encode(),
                                   b"data: [DONE]\n\n"])

    def _garbled(self, sock: socket.socket, target: str) -> bool:
        return self._answer(sock, [*CHAT_DELTAS[:2], b'data: {"choices": [\n\n'])

    def _whole(self, sock: socket.socket, status: bytes, content_type: bytes,
               body: bytes) -> bool:
        sock.sendall(b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
                     % (status, content_type, len(body), body))
        return True

    def _unauthorized(self, sock: socket.socket, target: str) -> bool:
        return self._whole(sock, b"401 Unauthorized", b"application/json",
                           b'{"error":{"message":"Incorrect API key provided: sk-abc***wxyz.",'
                           b'"type":"invalid_request_error","param":null,'
                           b'"code":"invalid_api_key"}}')

    def _broken(self, sock: socket.socket, target: str) -> bool:
        return self._whole(sock, b"500 Internal Server Error", b"text/html",
                           b"<html>Internal Server Error</html>")

    def _huge_error(self, sock: socket.socket, target: str) -> bool:
        # OpenAI's shape, but longer than anyone reads for a message.
        message = b"x" * (128 * 1024)
        return self._whole(sock, b"400 Bad Request", b"application/json",
                           b'{"error":{"message":"%s"}}' % message)

    def _not_a_stream(self, sock: socket.socket, target: str) -> bool:
        return self._whole(sock, b"200 OK", b"application/json", b'{"choices":[]}')
