"""CORS for fetch readers on other origins: off unless ALLOWED_ORIGINS lists them.

The same list decides which other sites may open a WebSocket (`origin.py`): one answer to "which
pages may use this API from a browser". The rules (Fetch standard, "CORS protocol"):

- A request from a listed origin gets `Access-Control-Allow-Origin` naming that origin (the
  configured spelling: no byte the client sent is echoed), never `*`, and Retry-After exposed
  to the reading script; every response says `Vary: Origin` while CORS is on, so a cache keeps
  one answer per origin.
- No `Access-Control-Allow-Credentials`: the API uses no cookies (keys travel in Authorization,
  which a preflight allows), so a wildcard could never meet credentials; config.py refuses a `*`
  in ALLOWED_ORIGINS all the same, since it would also open WebSockets to every site.
- A preflight (OPTIONS with Origin and Access-Control-Request-Method, what a browser sends before
  a JSON POST) is answered here, never by a view or the upstream: allowed methods GET and POST,
  the request headers the API reads, cached by the browser for `MAX_AGE` seconds. A preflight
  from an origin not listed, or for another method, is refused (403).
- With ALLOWED_ORIGINS empty nothing is added to any response: browsers then refuse other
  origins' reads, as they do for any server without CORS.
"""

from __future__ import annotations

from collections.abc import Iterable

from .origin import normalize_origin


class CorsPolicy:
    """Which origins may read the API from a browser, and the headers that say so."""

    ALLOWED_METHODS = ("GET", "POST")
    ALLOWED_HEADERS = ("Accept", "Authorization", "Content-Type", "Last-Event-ID",
                       "X-Mock-Delay-Ms")
    EXPOSED_HEADERS = ("Retry-After",)
    MAX_AGE = 600

    def __init__(self, allowed: Iterable[str]) -> None:
        self._allowed = {normalize_origin(origin): origin.strip().rstrip("/")
                         for origin in allowed}

    @property
    def enabled(self) -> bool:
        return bool(self._allowed)

    def allowed_origin(self, origin: str | None) -> str | None:
        """The configured spelling of `origin` if it is listed, else None."""
        if origin is None:
            return None
        return self._allowed.get(normalize_origin(origin))

    @staticmethod
    def is_preflight(method: str, origin: str | None, requested_method: str | None) -> bool:
        return method == "OPTIONS" and origin is not None and requested_method is not None

    def preflight_headers(self, origin: str | None, requested_method: str
                          ) -> dict[str, str] | None:
        """The answer to a preflight, or None to refuse it."""
        allowed = self.allowed_origin(origin)
        if allowed is None or requested_method.upper() not in self.ALLOWED_METHODS:
            return None
        return {**self._origin_headers(allowed),
                "Access-Control-Allow-Methods": ", ".join(self.ALLOWED_METHODS),
                "Access-Control-Allow-Headers": ", ".join(self.ALLOWED_HEADERS),
                "Access-Control-Max-Age": str(self.MAX_AGE)}

    def response_headers(self, origin: str | None) -> dict[str, str]:
        """What an actual response from a listed origin adds (the caller adds `Vary: Origin`
        to every response while CORS is on, listed origin or not)."""
        allowed = self.allowed_origin(origin)
        if allowed is None:
            return {}
        return {**self._origin_headers(allowed),
                "Access-Control-Expose-Headers": ", ".join(self.EXPOSED_HEADERS)}

    @staticmethod
    def _origin_headers(origin: str) -> dict[str, str]:
        return {"Access-Control-Allow-Origin": origin}
