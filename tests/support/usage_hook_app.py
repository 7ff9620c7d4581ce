"""The real app plus a stand-in for the proxy's usage accounting, for the tpm tests.

Until the relay counts each stream's tokens itself, this hook does what it will do at the end of
every proxied answer: `Limits.record_tokens(key name, tokens)`, here with the tokens the request
names in `X-Test-Usage-Tokens`, once the answer was sent to its end: when gunicorn closes the
response iterable, after the last byte of a stream. A stream is handed to gunicorn as it is
(`direct_passthrough`), so werkzeug's `call_on_close` would never run: its body is wrapped.
"""

from __future__ import annotations

from flask import Response, request
from werkzeug.wsgi import ClosingIterator

from app import create_app
from services import services

app = create_app()


@app.after_request
def record_usage_when_sent(response: Response) -> Response:
    tokens = request.headers.get("X-Test-Usage-Tokens")
    client = services(app).upstream.client_key(request.headers.get("Authorization"))
    if request.path.startswith("/v1/") and tokens and client is not None:
        limits = services(app).limits
        response.response = ClosingIterator(
            response.response, lambda: limits.record_tokens(client.name, int(tokens)))
    return response
