"""Which pages may open a WebSocket: the defence against cross-site WebSocket hijacking.

A browser sends cookies with a WebSocket handshake from any site and the same-origin policy does
not apply to WebSockets, so a server that accepts every `Origin` (Go's `CheckOrigin: return true`)
lets any page act as its logged-in visitors. The rule, checked before the upgrade:

- no `Origin` header: allowed, since browsers always send one, so this is not a browser;
- same origin: allowed when the Origin's host (and port) is the request's `Host`, as
  gorilla/websocket's default `checkSameOrigin` decides; comparing hosts rather than schemes
  keeps it working behind a proxy that terminates TLS;
- otherwise only an origin listed exactly (`scheme://host[:port]`, any case) in ALLOWED_ORIGINS;
  `null` (sandboxed frames, `file:` pages) only if listed.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit


def normalize_origin(origin: str) -> str:
    """An origin as compared: lower case, without a trailing slash."""
    return origin.strip().rstrip("/").lower()


def same_origin(origin: str, host: str | None) -> bool:
    """Whether `origin`'s host and port are the request's Host header."""
    if not host:
        return False
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    return parts.netloc.lower() == host.strip().lower()


def origin_allowed(origin: str | None, host: str | None, allowed: Iterable[str]) -> bool:
    """Whether a WebSocket handshake with this Origin and Host may be accepted."""
    if origin is None:
        return True
    if same_origin(origin, host):
        return True
    wanted = normalize_origin(origin)
    return any(normalize_origin(item) == wanted for item in allowed)
