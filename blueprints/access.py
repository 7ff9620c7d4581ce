"""Who the request's bearer is and what it may do: the token check every protected view makes.

The token is read from `Authorization: Bearer`, else `?access_token=` (EventSource and
WebSocket handshakes cannot set headers), else the `stream_token` cookie. While auth is off
every request is `UNRESTRICTED`. A refusal happens before the view looks anything up, and one
that hides ownership answers exactly as an unknown id would, so neither the answer nor its
timing tells whether a channel, task, generation or log file exists.
"""

from __future__ import annotations

from flask import g, request

from auth import UNRESTRICTED, Grant, InvalidToken
from services import services

from .errors import ApiError

COOKIE = "stream_token"
QUERY = "access_token"
INVALID_TOKEN = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


def presented_token() -> str | None:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.args.get(QUERY) or request.cookies.get(COOKIE) or None


def auth_on() -> bool:
    return services().tokens is not None


def current_grant(*, token_required: bool = True) -> Grant:
    """The bearer's grant (checked once per request); 401 without a usable token, unless
    `token_required` is false and none was presented (then: public channels only)."""
    grant = g.get("grant")
    if grant is not None:
        return grant
    tokens = services().tokens
    if tokens is None:
        grant = UNRESTRICTED
    else:
        token = presented_token()
        if token is None:
            if token_required:
                raise unauthorized("this endpoint needs a token (Authorization: Bearer, "
                                   f"?{QUERY}= or the {COOKIE} cookie)")
            return tokens.anonymous
        try:
            grant = tokens.verify(token)
        except InvalidToken as exc:
            raise unauthorized(str(exc)) from None
    g.grant = grant
    return grant


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers=INVALID_TOKEN)


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def require_scope(scope: str) -> Grant:
    grant = current_grant()
    if not grant.has_scope(scope):
        raise forbidden(f"the token's scope does not include {scope}")
    return grant


def require_subscribe(channel: str) -> Grant:
    """The grant, if it may subscribe to `channel` (a public one needs no token)."""
    grant = current_grant(token_required=False)
    if not grant.may_subscribe(channel):
        if presented_token() is None:
            raise unauthorized("subscribing to this channel needs a token")
        raise forbidden("the token does not cover subscribing to this channel")
    return grant


def require_publish(channel: str) -> None:
    """A token whose `publish` covers `channel` (`PUBLISH_TOKEN` is checked by the caller)."""
    if not current_grant().may_publish(channel):
        raise forbidden("the token does not cover publishing to this channel")


def owner() -> str | None:
    """Whom what this request starts belongs to: the token's subject (None with auth off)."""
    return current_grant().subject


def stream_deadline() -> float | None:
    """When a stream this request opens must end: its token's `exp` (None: never)."""
    grant = g.get("grant")
    return None if grant is None else grant.expires_at

