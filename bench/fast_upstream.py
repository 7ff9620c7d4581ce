"""A fast OpenAI-compatible upstream for the proxy benchmarks:
`python -m bench.fast_upstream PORT CHUNKS [--framing event|piece] [--pace-ms MS]`.

Every request gets the same pre-encoded `chat.completion.chunk` event stream of CHUNKS chunks
and `data: [DONE]`, so two requests get identical bytes (which is what the byte-identity check
compares). Two framings of that same body:

- `event` (the default): each event is its own HTTP chunk, written with its own `send()`, the
  way OpenAI's API and every LLM API stream (a Go server flushing after each event). The proxy
  then pays its cost per chunk: chunked decoding, hand-over, write.
- `piece`: 64 KiB chunks, one `send()` each, so the upstream is never what limits a run and
  the proxy's cost per byte shows.

With `--pace-ms`, each event is written that long after the previous one (measured from the
stream's start, so the pace never drifts): a model of known speed, whatever the client.

Plain threads on blocking sockets, one per connection: a blocking `send()` costs less than
gevent's `sendall`, and the upstream must outrun what it measures. Keep-alive, so the proxy's
connection pool is exercised as with a real API.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import time

from testbed.loopback import LoopbackServer
from testbed.raw_http import LAST_CHUNK, chunk, read_request

PIECE = 64 * 1024
FRAMINGS = ("event", "piece")


def events(chunks: int) -> list[bytes]:
    """The body's SSE events: CHUNKS chat.completion.chunk events, then `data: [DONE]`."""
    head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
            "model": "demo"}
    encoded = []
    for i in range(chunks):
        delta = {"role": "assistant", "content": ""} if i == 0 else {"content": f" tok{i}"}
        body = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        encoded.append(f"data: {json.dumps(body, separators=(',', ':'))}\n\n".encode())
    encoded.append(b"data: [DONE]\n\n")
    return encoded


def framed(parts: list[bytes], framing: str) -> list[bytes]:
    """The chunked-encoded writes of the body, one per event or one per 64 KiB piece."""
    if framing == "piece":
        body = b"".join(parts)
        parts = [body[i:i + PIECE] for i in range(0, len(body), PIECE)]
    return [chunk(part) for part in parts] + [LAST_CHUNK]


HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n")


class PreEncodedUpstream(LoopbackServer):
    """Answers every request of every connection with HEAD and then `writes`, one send each."""

    def __init__(self, port: int, writes: list[bytes], pace: float = 0.0) -> None:
        self.writes = writes
        self.pace = pace
        super().__init__(port)

    def handle(self, connection: socket.socket, number: int) -> None:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        send = connection.sendall
        with connection.makefile("rb") as reader:
            while read_request(reader):
                send(HEAD)
                started = time.monotonic()
                for index, write in enumerate(self.writes):
                    if self.pace and (wait := started + index * self.pace - time.monotonic()) > 0:
                        time.sleep(wait)
                    send(write)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("chunks", type=int)
    parser.add_argument("--framing", choices=FRAMINGS, default="event")
    parser.add_argument("--pace-ms", type=float, default=0.0)
    options = parser.parse_args()
    writes = framed(events(options.chunks), options.framing)
    with PreEncodedUpstream(options.port, writes, options.pace_ms / 1000):
        signal.pause()  # until the benchmark terminates it


if __name__ == "__main__":
    main()
