"""Where a new connection's time goes: one WSGI app per layer of our stack, for `connections.py`.

Each app answers `GET /sse/chat?prompt=P&tokens=N&delay_ms=0` with the same kind of stream, and
adds one layer to the one before it:

1. `bare`: a WSGI callable on gunicorn's gevent worker; a fixed body in two writes.
2. `flask`: the same body from a Flask view (routing, Request, Response), as a tutorial writes it.
3. `view`: our app (validation, the demo model, formats, the pipeline), with metrics that count
   nothing and no disconnect watcher.
4. `metrics`: plus prometheus_client's multiprocess metrics.
5. (the access log: a gunicorn setting, `gunicorn_layers.py`, not an app)
6. `full`: plus the disconnect watcher: our app exactly as `wsgi:app` serves it.

The watcher is left out by hiding `gunicorn.socket` from the app, which is the only thing it
watches; nothing of the app is patched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from flask import Flask, Response, request

from app import create_app
from services import services

PREAMBLE = b"retry: 3000\n\n"


def _events(tokens: int) -> bytes:
    lines = [f'event: start\ndata: {{"model":"demo","tokens":{tokens}}}\n\n']
    lines += [f"id: {i}\ndata:  tok{i}\n\n" for i in range(tokens)]
    lines.append(f'event: end\ndata: {{"finish_reason":"stop","tokens":{tokens}}}\n\n')
    return "".join(lines).encode()


HEADERS = [("Content-Type", "text/event-stream; charset=utf-8"), ("Cache-Control", "no-cache"),
           ("X-Accel-Buffering", "no")]


def bare(environ: dict, start_response: Callable) -> Iterator[bytes]:
    """Layer 1: no framework at all."""
    tokens = int(environ.get("QUERY_STRING", "").partition("tokens=")[2].partition("&")[0] or 5)
    start_response("200 OK", HEADERS)
    return iter((PREAMBLE, _events(tokens)))


def _flask() -> Flask:
    """Layer 2: what Flask adds, with a view that checks nothing."""
    app = Flask(__name__)

    @app.get("/sse/chat")
    def chat() -> Response:
        tokens = int(request.args.get("tokens", "5"))
        return Response(iter((PREAMBLE, _events(tokens))), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return app


class NullMetrics:
    """The pipeline's StreamMetrics, counting nothing."""

    def started(self, transport: str) -> None:
        pass

    def sent(self, transport: str, events: int) -> None:
        pass

    def ended(self, transport: str, seconds: float, disconnected: bool) -> None:
        pass


def _without_watcher(wsgi: Callable) -> Callable:
    def app(environ: dict, start_response: Callable):
        environ.pop("gunicorn.socket", None)
        return wsgi(environ, start_response)

    return app


def _ours(metrics: bool, watcher: bool) -> Callable:
    app = create_app()
    if not metrics:
        services(app).metrics = NullMetrics()  # type: ignore[assignment]
    return app if watcher else _without_watcher(app)


LAYERS: dict[str, Callable[[], Callable]] = {
    "bare": lambda: bare,
    "flask": _flask,
    "view": lambda: _ours(metrics=False, watcher=False),
    "metrics": lambda: _ours(metrics=True, watcher=False),
    "full": lambda: _ours(metrics=True, watcher=True),
}


def layer(name: str) -> Callable:
    """The WSGI app of one layer; gunicorn calls it: `'bench.layers:layer("flask")'`."""
    return LAYERS[name]()
