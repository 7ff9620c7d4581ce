"""`StreamReader`: the one greenlet per process that reads Redis for all of its subscribers.

It follows every topic a local subscription watches with one `XREAD BLOCK` over all their
streams, on its own connection, and hands what it reads to the in-process fan-out: a worker
holds one reading connection (plus a small command pool) whatever its number of subscribers.

redis-py 8 details this depends on:

1. Its default `socket_timeout` (5 s) would end a longer `XREAD BLOCK` with a TimeoutError, so
   the reading connection's timeout is the block time plus a margin.
2. A connection must never serve two greenlets at once: this one is used by the reader greenlet
   only; subscribers' own commands (history, latest id, `CLIENT UNBLOCK`) go through the pool.
3. Its default retry would replay a failed `XREAD` ten times; the reader retries itself, with
   backoff, so the reading client has none.

A new topic must join the `XREAD` at once, not after the block time: the subscriber that adds it
sends `CLIENT UNBLOCK` for the reader's connection, which makes the blocked read return empty.

When the connection fails, every local subscription ends with `event: error` (clients reconnect
and resume from their Last-Event-ID, as nothing still in the history is lost), and the reader
connects again, waiting longer after each failure, once a subscriber wants it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import gevent
import redis
from gevent.event import Event as Signal

from streaming.mailbox import Mailbox

from .events import BROKER_ERROR, Event, parse_id
from .fanout import FLUSH_DELAY, Fanout

log = logging.getLogger(__name__)

BLOCK_MS = 5000
"""How long one XREAD waits for an event; the loop then reads again."""
COUNT = 500
"""Most entries one XREAD returns per stream."""
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 5.0
"""Seconds before reconnecting after a failure; doubled after each failure in a row."""
UNBLOCK_TRIES, UNBLOCK_PAUSE = 20, 0.005
"""A CLIENT UNBLOCK sent before the XREAD reached Redis finds nothing to unblock: try again."""


def entry_event(entry: tuple[str, dict[str, str]]) -> Event:
    """The event of one stream entry, as `redis_streams` writes them (fields e, d, f)."""
    entry_id, fields = entry
    return Event(entry_id, fields.get("e", "message"), fields.get("d", "null"),
                 fields.get("f") == "1")


def lag_of(reply: list) -> float:
    """Seconds from the newest entry's id (Redis's clock) to now (this machine's), 0 if none;
    `reply` as XREAD answers: (stream, entries) pairs."""
    newest = max((int(entries[-1][0].partition("-")[0]) for _, entries in reply if entries),
                 default=0)
    return max(0.0, time.time() - newest / 1000) if newest else 0.0


class StreamReader:
    """Follows topics for this process's subscriptions; `follow`/`unfollow` from any greenlet.

    `connect()` returns a new single-connection client for the reader; `commands` is the shared
    pooled client; `key(topic)` is a topic's stream key, `topic_of(key)` the reverse;
    `queue_size` is the subscribers' queue size; `flush_delay` is the fan-out's.
    """

    def __init__(self, connect: Callable[[], redis.Redis], commands: redis.Redis,
                 key: Callable[[str], str], topic_of: Callable[[str], str], queue_size: int,
                 flush_delay: float | None = FLUSH_DELAY) -> None:
        self._connect = connect
        # One read never hands a subscriber more than its queue holds: a burst read at once
        # must not overflow subscribers that were keeping up.
        self._count = min(COUNT, queue_size)
        self._commands = commands
        self._key = key
        self._topic_of = topic_of
        self.fanout = Fanout(flush_delay)
        self._cursors: dict[str, str] = {}  # topic -> id of the last entry read or skipped
        self._wanted = Signal()
        self._client: redis.Redis | None = None
        self._client_id = 0
        self._reading = 0  # the number of the XREAD now waiting, 0 if none
        self._reads = 0
        self._unblocked = 0
        self._greenlet: gevent.Greenlet | None = None
        self.lag_seconds = 0.0  # behind the newest entry of the last read (broker metrics)
        self.reconnects = 0

    def follow(self, topic: str, mailbox: Mailbox) -> None:
        """Deliver `topic`'s next events to `mailbox`. Blocks on Redis for a new topic."""
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)
        self.fanout.add(topic, mailbox)
        if topic in self._cursors:
            return
        # Whatever is stored up to this id the subscriber reads itself, after this returns.
        newest = self._commands.xrevrange(self._key(topic), count=1)
        if topic in self.fanout and topic not in self._cursors:
            self._cursors[topic] = newest[0][0] if newest else "0-0"
            self._interrupt()

    def unfollow(self, topic: str, mailbox: Mailbox) -> None:
        if self.fanout.remove(topic, mailbox):
            self._cursors.pop(topic, None)

    def close(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
        self._drop_client()

    def _interrupt(self) -> None:
        """Make the reader start a new XREAD that includes the topics added since."""
        if not self._reading:
            self._wanted.set()
            return
        read = self._reading
        for _ in range(UNBLOCK_TRIES):
            if self._unblocked == read or self._reading != read:
                return  # someone else did, or the reader moved on and sees the new topic
            if self._commands.client_unblock(self._client_id):
                self._unblocked = read
                return
            gevent.sleep(UNBLOCK_PAUSE)

    def _run(self) -> None:
        delay = BACKOFF_FIRST
        while True:
            if not self._cursors:
                self._wanted.clear()
                self._wanted.wait()
                continue
            try:
                reply = self._read()
            except Exception as exc:  # whatever it was, subscribers must not wait forever
                if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
                    log.warning("Redis reader lost its connection (%s); reconnecting in "
                                "%.1f s", exc, delay)
                else:
                    log.exception("Redis reader failed; starting again in %.1f s", delay)
                self._drop_client()
                self.reconnects += 1
                self._cursors.clear()
                self.fanout.fail_all(BROKER_ERROR)
                gevent.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            delay = BACKOFF_FIRST
            self.lag_seconds = lag_of(reply)
            for key, entries in reply:
                self._deliver(self._topic_of(key), [entry_event(e) for e in entries])

    def _read(self) -> list:
        if self._client is None:
            self._client = self._connect()
            self._client_id = self._client.client_id()
        streams = {self._key(topic): cursor for topic, cursor in self._cursors.items()}
        self._reads += 1
        self._reading = self._reads
        try:
            return self._client.xread(streams, count=self._count, block=BLOCK_MS) or []
        finally:
            self._reading = 0

    def _deliver(self, topic: str, events: list[Event]) -> None:
        cursor = self._cursors.get(topic)
        if cursor is None:  # nobody follows it any more
            return
        # A topic followed anew while this read was under way may already be further on.
        if events[-1].key > parse_id(cursor):
            self._cursors[topic] = events[-1].id
        self.fanout.deliver(topic, events)

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
