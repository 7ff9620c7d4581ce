"""A fast OpenAI-compatible upstream for the proxy benchmarks: `python -m bench.fast_upstream
PORT CHUNKS`.

Every request gets the same pre-encoded `chat.completion.chunk` event stream of CHUNKS chunks
and `data: [DONE]`, written in 64 KiB pieces, so the upstream is never what limits a run and
two requests get identical bytes (which is what the byte-identity check compares). Keep-alive,
so the proxy's connection pool is exercised as with a real API.
"""

from __future__ import annotations

import json
import sys

from gevent import monkey

monkey.patch_all()

from gevent.server import StreamServer  # noqa: E402

PIECE = 64 * 1024


def event_stream(chunks: int) -> bytes:
    head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
            "model": "demo"}
    events = []
    for i in range(chunks):
        delta = {"role": "assistant", "content": ""} if i == 0 else {"content": f" tok{i}"}
        body = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        events.append(f"data: {json.dumps(body, separators=(',', ':'))}\n\n")
    events.append("data: [DONE]\n\n")
    return "".join(events).encode()


def serve(body: bytes):
    pieces = [body[i:i + PIECE] for i in range(0, len(body), PIECE)]
    framed = [b"%X\r\n%s\r\n" % (len(p), p) for p in pieces] + [b"0\r\n\r\n"]
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n")

    def handle(sock, _address):
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buffer += data
                header, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in header.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    buffer += sock.recv(65536)
                buffer = buffer[length:]
                sock.sendall(head)
                for piece in framed:
                    sock.sendall(piece)
        except OSError:
            return
        finally:
            sock.close()

    return handle


def main() -> None:
    port, chunks = int(sys.argv[1]), int(sys.argv[2])
    StreamServer(("127.0.0.1", port), serve(event_stream(chunks))).serve_forever()


if __name__ == "__main__":
    main()
