"""A client that opens chat streams over SSE, NDJSON and WebSocket and reads them until killed.

    python -m testbed.stream_holder --url http://10.231.0.1:8000 --delay-ms 100

Run where the test wants the client to be, e.g. in a network namespace of its own
(testbed/netns.py). It prints one line per record it reads, `<transport> <what>` (`open` for
the first, `record` for each after it, `ended <why>` if the stream ends), flushed at once, so
the test sees what arrived. It never closes a stream by itself: killed, or cut off, it sends
nothing more.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable, Iterator

import requests
import websocket

TRANSPORTS = ("sse", "ndjson", "ws")
_print_lock = threading.Lock()


def say(transport: str, what: str) -> None:
    with _print_lock:
        print(transport, what, flush=True)


def sse(url: str, tokens: int, delay_ms: int) -> Iterator[str]:
    params = {"prompt": "hold", "tokens": tokens, "delay_ms": delay_ms}
    with requests.get(url + "/sse/chat", params=params, stream=True, timeout=None) as response:
        response.raise_for_status()
        # One SSE event per blank-line-terminated block: yield its first line.
        block: list[str] = []
        for line in response.iter_lines(decode_unicode=True):
            if line:
                block.append(line)
            elif block:
                yield block[0]
                block = []


def ndjson(url: str, tokens: int, delay_ms: int) -> Iterator[str]:
    body = {"prompt": "hold", "tokens": tokens, "delay_ms": delay_ms}
    with requests.post(url + "/api/chat", json=body, stream=True, timeout=None,
                       headers={"Accept": "application/x-ndjson"}) as response:
        response.raise_for_status()
        for line in response.iter_lines(decode_unicode=True):
            if line:  # an empty line is a heartbeat
                yield line


def ws(url: str, tokens: int, delay_ms: int) -> Iterator[str]:
    # websocket-client answers the server's pings by itself.
    connection = websocket.create_connection(url.replace("http://", "ws://") + "/ws/chat")
    connection.send(json.dumps({"type": "prompt", "prompt": "hold", "tokens": tokens,
                                "delay_ms": delay_ms}))
    while True:
        message = connection.recv()
        if not message:
            return
        yield message


READERS: dict[str, Callable[[str, int, int], Iterator[str]]] = {
    "sse": sse, "ndjson": ndjson, "ws": ws}


def hold(transport: str, url: str, tokens: int, delay_ms: int) -> None:
    try:
        what = "open"
        for _ in READERS[transport](url, tokens, delay_ms):
            say(transport, what)
            what = "record"
        say(transport, "ended by the server")
    except Exception as exc:  # reported, not raised: the other streams go on
        say(transport, f"ended {type(exc).__name__}: {exc}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the server, e.g. http://10.231.0.1:8000")
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--delay-ms", type=int, default=100, help="the pace of each stream")
    parser.add_argument("--transports", default=",".join(TRANSPORTS))
    args = parser.parse_args(argv)
    threads = [threading.Thread(target=hold, args=(t, args.url, args.tokens, args.delay_ms),
                                daemon=True) for t in args.transports.split(",")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
