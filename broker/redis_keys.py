"""The name of every Redis key the broker writes, in one place (one Redis or a cluster alike).

Every key of one topic carries the topic as its hash tag (`{...}`), so a Redis Cluster keeps
them in one slot, on one node, and a script touching several of them stays atomic there:

| key | what |
|---|---|
| `sse:{<topic>}` | the topic's stream |
| `sse:presence:{<topic>}` | the topic's presence hash (`redis_presence.py`) |
| `sse:lease:{<kind>/<id>}<rest>` | the lease `<kind>/<id><rest>`: tagged with the topic it guards |

A lease guards the topic named by its first two path segments (`task/<id>` guards the topic
`task/<id>`, `generation/<id>/viewers` the topic `generation/<id>`), which is how the publish
script may check a lease in the same call as it appends to that topic.

Redis takes the hash tag from the first `{` to the first `}` after it: a topic holding a `}`
is then tagged by what precedes it, the same for all of its keys, so they still share a slot.
One Redis uses the same names; the names before hash tags (`sse:<topic>`) are not read.
"""

from __future__ import annotations

PREFIX = "sse:"
STREAM_OPEN = PREFIX + "{"


def stream(topic: str) -> str:
    return f"{STREAM_OPEN}{topic}}}"


def topic_of(stream_key: str) -> str:
    """The topic of a key `stream()` made."""
    return stream_key[len(STREAM_OPEN):-1]


def presence(topic: str) -> str:
    return f"{PREFIX}presence:{{{topic}}}"


def lease(name: str) -> str:
    kind, _, rest = name.partition("/")
    ident, slash, more = rest.partition("/")
    return f"{PREFIX}lease:{{{kind}/{ident}}}{slash}{more}" if rest else f"{PREFIX}lease:{{{name}}}"


def tag(key: str) -> str:
    """The part of `key` Redis Cluster hashes: its hash tag, or the whole key without one."""
    start = key.find("{")
    end = key.find("}", start + 1) if start >= 0 else -1
    return key[start + 1:end] if end > start + 1 else key
