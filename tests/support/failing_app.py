"""The real app plus routes that fail, for the failure tests: a stream whose source fails after
two tokens, a WebSocket whose message handler raises, and a view that holds the event loop."""

from __future__ import annotations

import time
from typing import Any

from flask import request
from flask_sock import Sock
from gevent.monkey import get_original

from app import create_app
from blueprints.responses import stream_response
from generation.events import Start, Token
from generation.formats import NDJSONFormat, SSEFormat, TextFormat
from services import services
from streaming.sources import PacedSource
from streaming.ws_session import Session


def _fails_after_two_tokens():
    yield 0.0, Start("demo", 5)
    yield 0.01, Token(0, " one")
    yield 0.02, Token(1, " two")
    raise RuntimeError("internal detail that must not reach the client")


app = create_app()


@app.get("/test/failing")
def failing():
    formats = {"sse": SSEFormat(3000), "ndjson": NDJSONFormat(), "text": TextFormat()}
    name = request.args["format"]
    return stream_response(PacedSource(_fails_after_two_tokens()), formats[name], name)


def _handler_bug(body: dict) -> Any:
    raise KeyError("internal detail that must not reach the client")


@Sock(app).route("/test/ws/failing")
def ws_failing(ws: Any) -> None:
    Session(ws, {"crash": _handler_bug}, metrics=services(app).metrics,
            write_timeout=5).serve()


@app.get("/test/hold-the-loop")
def hold_the_loop():
    """Holds the loop for `ms` milliseconds, busy or (`how=sleep`) in a blocking call: what
    the blocking monitor must report."""
    seconds = int(request.args["ms"]) / 1000
    if request.args.get("how") == "sleep":
        get_original("time", "sleep")(seconds)  # the unpatched, blocking sleep
    else:  # CPU time, not wall time: on a busy machine the worker may wait for a CPU
        until = time.thread_time() + seconds
        while time.thread_time() < until:
            pass
    return "held"
