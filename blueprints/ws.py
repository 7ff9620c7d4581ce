"""WebSocket endpoints: `/ws/chat` (interruptible generation) and `/ws/tts` (binary PCM audio).

flask-sock accepts the handshake before a route's code runs, so what must happen before the
upgrade is in `before_request`: the Origin check (403 instead of 101) and declining
permessage-deflate. Browsers offer it and simple-websocket would accept; then each connection
would keep zlib state (about 40 KB to inflate what the client sends, 300 KB more to deflate),
above the whole per-connection budget, for messages of a few dozen bytes.

`create_app` sets flask-sock's SOCK_SERVER_OPTIONS (`websocket.server_options`) for the whole
app, so every flask-sock route of the app must serve its connection through
`ws_session.Session`, which runs the inline reader those options ask for (it refuses a server
built otherwise).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request
from flask_sock import Sock

import auth
from auth import new_owned_id
from generation.params import parse_generation, parse_resume
from generation.tts import Speech, parse_speech
from generation.ws_chat import ChatGeneration
from generations import WatchedGeneration, is_generation_id
from http_policy.origin import origin_allowed
from http_policy.validation import InvalidParameter
from llm.mock_address import self_base_url
from services import services
from streaming.ws_session import Session, Starts

from .access import current_grant, owner, require_scope, stream_deadline
from .errors import ApiError
from .slots import take_stream_slot

bp = Blueprint("ws", __name__)
sock = Sock()

CHAT: Starts = {"prompt": lambda body: _chat(body), "resume": lambda body: _resume(body)}
TTS: Starts = {"speak": lambda body: Speech(parse_speech(body))}


@bp.before_request
def _before_upgrade() -> None:
    origin = request.headers.get("Origin")
    if not origin_allowed(origin, request.host, current_app.config["ALLOWED_ORIGINS"]):
        raise ApiError(403, "forbidden", f"WebSocket connections from {origin!r} are not allowed")
    require_scope(auth.CHAT)  # a refusal is an HTTP 401 or 403, never an upgraded socket
    take_stream_slot()  # the connection's, for its whole life: released when the view returns
    # Without the offer the handshake negotiates no extension (see the module docstring).
    request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)


def _chat(body: dict) -> ChatGeneration | WatchedGeneration:
    params = parse_generation(body)
    if current_app.config["CHAT_BACKEND"] == "upstream":
        return WatchedGeneration(services().generations, params=params,
                                 base_url=self_base_url(request.environ),
                                 new_id=new_owned_id(owner()))
    return ChatGeneration(params, parse_resume(body, params.tokens))


def _resume(body: dict) -> WatchedGeneration:
    """`{"type":"resume","generation":ID,"after":k}`: a generation, after its token k."""
    generation = body.get("generation")
    if not isinstance(generation, str) or not is_generation_id(generation):
        raise InvalidParameter("generation", "generation must be a generation's id")
    after = body.get("after", -1)
    if not isinstance(after, int) or isinstance(after, bool) or after < -1:
        raise InvalidParameter("after", "after must be a token index (or -1 for none)")
    return WatchedGeneration(services().generations, id_=generation, after=after,
                             known=current_grant().owns(generation))


def _serve(ws: Any, starts: Starts) -> None:
    # A peer that takes none of a write for SEND_TIMEOUT_SECONDS is gone, as on every transport.
    shared = services()
    Session(ws, starts, metrics=shared.metrics,
            write_timeout=current_app.config["SEND_TIMEOUT_SECONDS"],
            lifetimes=shared.lifetimes, expires_at=stream_deadline()).serve()


@sock.route("/ws/chat", bp=bp)
def ws_chat(ws: Any) -> None:
    _serve(ws, CHAT)


@sock.route("/ws/tts", bp=bp)
def ws_tts(ws: Any) -> None:
    _serve(ws, TTS)
