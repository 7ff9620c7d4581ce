"""The real app plus one route whose source fails after two tokens, for the failure tests."""

from __future__ import annotations

from flask import request

from app import create_app
from blueprints.common import stream_response
from generation.events import Start, Token
from generation.formats import NDJSONFormat, SSEFormat, TextFormat
from streaming.sources import PacedSource


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
