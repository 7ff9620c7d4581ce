"""Ids that carry their owner: who started a task or a generation, with nothing stored.

An id is 16 hex digits of randomness and a 16-digit tag, a keyed BLAKE2b of the randomness and
the owner's subject: the same 32 hex digits as a bare uuid4, so every id check and every client
stays as it was. Whether a subject owns an id is then a computation, the same on every worker,
instance and job, made before anything is looked up (so an answer cannot tell another's id
from a missing one by its timing either). The tag binds, it does not hide: whoever holds an id
can test a guessed subject against it. Ids are given only to their owner.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

_KEY = b"stream-owner-v1"
RANDOM_HEX = 16


def _tag(randomness: str, owner: str | None) -> str:
    return hashlib.blake2b(f"{randomness}:{owner or ''}".encode(), digest_size=8,
                           key=_KEY).hexdigest()


def new_owned_id(owner: str | None) -> str:
    """A new id owned by `owner` (None: nobody in particular, as while auth is off)."""
    randomness = secrets.token_hex(RANDOM_HEX // 2)
    return randomness + _tag(randomness, owner)


def owned_by(resource_id: str, subject: str | None) -> bool:
    """Whether `subject` owns `resource_id` (an id `new_owned_id` made, 32 hex digits)."""
    randomness, tag = resource_id[:RANDOM_HEX], resource_id[RANDOM_HEX:]
    return hmac.compare_digest(tag, _tag(randomness, subject))
