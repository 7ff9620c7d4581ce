"""The proxy's client keys: each with a name and optional limits, looked up in constant time.

Keys come from PROXY_KEYS_FILE (named, with limits) and PROXY_API_KEYS (named by position,
`key-1`, `key-2`, ..., without limits); config.py has checked both. A key is kept only as its
SHA-256 digest, and every lookup compares the presented key with every key
(`hmac.compare_digest` over digests), so the time taken tells neither which key matched nor
how long the keys are. Names are what logs, metrics and errors show; a key never is.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ClientKey:
    """Who is calling: a key's name and its limits per minute (None: not limited)."""

    name: str
    rpm: int | None = None
    tpm: int | None = None

    @property
    def limited(self) -> bool:
        return self.rpm is not None or self.tpm is not None


ANONYMOUS = ClientKey("anonymous")
"""The client when no key is required (no UPSTREAM_API_KEY, no PROXY_KEYS_FILE)."""


def _digest(key: str) -> bytes:
    # Comparing digests keeps the comparison's time independent of the keys' lengths too.
    return hashlib.sha256(key.encode()).digest()


class ClientKeys:
    """The keys clients may present, or none required (`required` False: anyone is ANONYMOUS)."""

    def __init__(self, keys: Iterable[tuple[str, ClientKey]], required: bool) -> None:
        self._keys = [(_digest(key), client) for key, client in keys]
        self._by_name = {client.name: client for _, client in self._keys}
        self.required = required

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> ClientKeys:
        """The keys of PROXY_KEYS_FILE and PROXY_API_KEYS; required when an upstream's key
        (UPSTREAM_API_KEY, or an `api_key` in UPSTREAMS) or PROXY_KEYS_FILE is set."""
        listed = [(entry["key"], ClientKey(entry["name"], entry["rpm"], entry["tpm"]))
                  for entry in settings["PROXY_KEYS_FILE"]]
        listed += [(key, ClientKey(f"key-{position}"))
                   for position, key in enumerate(settings["PROXY_API_KEYS"], 1)]
        required = (bool(settings["UPSTREAM_API_KEY"]) or bool(settings["PROXY_KEYS_FILE"])
                    or any(entry.get("api_key") for entry in settings["UPSTREAMS"]))
        return cls(listed, required)

    def by_name(self, name: str) -> ClientKey | None:
        return self._by_name.get(name)

    def lookup(self, authorization: str | None) -> ClientKey | None:
        """The client an `Authorization: Bearer <key>` header names; None if it names none
        while keys are required."""
        if not self.required:
            return ANONYMOUS
        scheme, _, token = (authorization or "").partition(" ")
        presented = _digest(token.strip() if scheme.lower() == "bearer" else "")
        found = None
        for digest, client in self._keys:  # every key, so the time does not tell which matched
            if hmac.compare_digest(presented, digest):
                found = client
        return found
