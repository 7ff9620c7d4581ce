"""The client's address behind a reverse proxy: `X-Forwarded-For`, believed only from the proxy.

gunicorn's `forwarded_allow_ips` decides whose `X-Forwarded-Proto` it believes, but it never
changes `REMOTE_ADDR` (gunicorn/http/wsgi.py sets it from the socket's peer). Behind nginx every
request would then come from nginx's address, and a per-client limit would count all clients as
one. `TrustedProxies` rewrites `REMOTE_ADDR` in the WSGI environ, in place, so the app, its
limits and gunicorn's access log (which formats the same environ) all see the real client.

Rules, the same trust list and matching as gunicorn's (`http/message.py`):

1. Only a peer in `FORWARDED_ALLOW_IPS` (addresses or networks; `*` trusts every peer) is
   believed. A peer that is not an IP address (a Unix socket) counts as trusted, as in gunicorn.
2. The last `X-Forwarded-For` entry wins: it is the address the trusted proxy itself saw. Entries
   before it were written by whoever connected to that proxy, so anybody can forge them.
   deploy/nginx.conf replaces the header with `$remote_addr` anyway.
3. An entry that is not an IP address is ignored; the socket's peer stays.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
PEER_KEY = "forwarded.peer"  # where the socket's own peer address is kept


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...] | None:
    """The networks of a trust list; None when it trusts every peer (`*`).

    Raises ValueError for an entry that is neither an address nor a network.
    """
    entries = [entry.strip() for entry in entries if entry.strip()]
    if "*" in entries:
        return None
    return tuple(ipaddress.ip_network(entry) for entry in entries)


def _is_trusted(peer: str, networks: tuple[Network, ...] | None) -> bool:
    if networks is None:
        return True
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return True  # not an IP peer: a Unix socket, trusted as gunicorn trusts it
    return any(address in network for network in networks)


def client_address(peer: str, forwarded_for: str | None,
                   networks: tuple[Network, ...] | None) -> str:
    """The client's address: the proxy's last `X-Forwarded-For` entry if `peer` is trusted."""
    if not forwarded_for or not _is_trusted(peer, networks):
        return peer
    last = forwarded_for.rsplit(",", 1)[-1].strip()
    try:
        return str(ipaddress.ip_address(last))
    except ValueError:
        return peer


class TrustedProxies:
    """WSGI middleware: `REMOTE_ADDR` becomes the client's address when a trusted proxy says so.

    The socket's own peer stays in `environ["forwarded.peer"]`.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], trusted: Iterable[str]) -> None:
        self.app = app
        self.networks = parse_networks(trusted)

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes] | Iterator[bytes]:
        peer = environ.get("REMOTE_ADDR", "")
        environ[PEER_KEY] = peer
        environ["REMOTE_ADDR"] = client_address(
            peer, environ.get("HTTP_X_FORWARDED_FOR"), self.networks)
        return self.app(environ, start_response)
