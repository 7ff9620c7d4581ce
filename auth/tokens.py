"""Signed tokens (JWT, checked by PyJWT): verifying what a client presents, and minting.

Choices where the issue is silent:

1. One algorithm per server, fixed by its key: HS256 for AUTH_SECRET, RS256 for an RSA
   AUTH_PUBLIC_KEY, ES256 for a P-256 one. A token naming any other (`none` included) is
   refused, so a public key can never be used as an HMAC secret.
2. Verified tokens are cached by the whole token, never by its signature alone: a cached
   signature glued to another payload would then pass unchecked. An entry lives until the
   token's `exp` plus the leeway; the cache is bounded (least recently used goes first).
3. `sub`, `subscribe`, `publish` and `scope` are optional; a malformed one makes the token
   invalid. Unknown scopes are ignored, so tokens minted for a newer server still work.
4. A token longer than MAX_TOKEN_CHARS is refused unparsed.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .grant import SCOPES, Grant
from .patterns import ChannelPattern, patterns

LEEWAY_SECONDS = 30
MAX_TOKEN_CHARS = 8192
CACHE_SIZE = 4096


class InvalidToken(Exception):
    """The token cannot be used; the message says why, never what the token holds."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


def algorithm_for(key: Any) -> str:
    """The one algorithm a key verifies: HS256 for a secret (str), else by the key's type."""
    if isinstance(key, str):
        return "HS256"
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) \
            and isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    raise ValueError("the key must be an HMAC secret, an RSA key or a P-256 EC key")


class TokenVerifier:
    """Turns a presented token into a Grant, or raises InvalidToken."""

    def __init__(self, key: Any, *, audience: str | None = None,
                 public: tuple[ChannelPattern, ...] = (),
                 clock: Callable[[], float] = time.time) -> None:
        """`key` is AUTH_SECRET (str) or AUTH_PUBLIC_KEY (a loaded public key); `public` are
        the PUBLIC_CHANNELS every grant may also subscribe to."""
        self._key = key
        self._algorithms = [algorithm_for(key)]
        self._audience = audience
        self._public = public
        self._clock = clock
        self._cache: OrderedDict[str, Grant] = OrderedDict()
        self.anonymous = Grant(subject=None, subscribe=public)
        """The grant of a request without a token: PUBLIC_CHANNELS only."""

    def verify(self, token: str) -> Grant:
        cached = self._cache.get(token)
        if cached is not None and self._clock() < cached.expires_at + LEEWAY_SECONDS:
            self._cache.move_to_end(token)
            return cached
        grant = self._decode(token)
        self._cache[token] = grant
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return grant

    def _decode(self, token: str) -> Grant:
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken(f"the token is longer than {MAX_TOKEN_CHARS} characters")
        try:
            claims = jwt.decode(
                token, self._key, algorithms=self._algorithms, audience=self._audience,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp"], "verify_aud": self._audience is not None})
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired", expired=True) from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("the token is not valid yet (nbf)") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("the token is not for this audience") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"the token has no {exc.claim} claim") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("the token's signature does not verify") from None
        except jwt.InvalidAlgorithmError:
            raise InvalidToken(f"the token must be signed with {self._algorithms[0]}") from None
        except jwt.InvalidTokenError:
            raise InvalidToken("the token is malformed") from None
        try:
            return grant_of(claims, self._public)
        except ValueError as exc:
            raise InvalidToken(f"the token's claims are malformed: {exc}") from None


def grant_of(claims: dict, public: tuple[ChannelPattern, ...] = ()) -> Grant:
    """The Grant a verified token's claims give; ValueError for a malformed claim."""
    subject = claims.get("sub")
    if subject is not None and (not isinstance(subject, str) or not subject):
        raise ValueError("sub must be a non-empty string")
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise ValueError("scope must be a space-separated string")
    return Grant(subject=subject,
                 subscribe=patterns(claims.get("subscribe"), "subscribe") + public,
                 publish=patterns(claims.get("publish"), "publish"),
                 scopes=frozenset(scope.split()) & SCOPES,
                 expires_at=float(claims["exp"]))


def mint_token(key: Any, *, sub: str | None = None, subscribe: Iterable[str] = (),
               publish: Iterable[str] = (), scope: Iterable[str] = (), ttl: float = 3600,
               audience: str | None = None, now: float | None = None) -> str:
    """A token for `sub` with these rights for `ttl` seconds, signed with `key`: the
    AUTH_SECRET string, or the private key whose public half is AUTH_PUBLIC_KEY."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"iat": issued, "exp": issued + int(ttl)}
    if sub is not None:
        claims["sub"] = sub
    if audience:
        claims["aud"] = audience
    for name, values in (("subscribe", subscribe), ("publish", publish)):
        if values := list(values):
            patterns(values, name)  # the same check a server makes of the token
            claims[name] = values
    if scopes := " ".join(scope):
        claims["scope"] = scopes
    return jwt.encode(claims, key, algorithm=algorithm_for(key))
