"""The Redis Streams broker: topics shared by every worker, instance and job that reach Redis.

A topic is the stream `sse:{<topic>}`; an event is an entry `XADD sse:{<topic>} MAXLEN ~ history
* e <event> d <data> [f 1]` whose id is the SSE id. Leases are keys `sse:lease:{<name>}` with a
TTL; presence is the hash `sse:presence:{<topic>}` (`redis_presence.py`). Every key name comes
from `redis_keys.py`; with a cluster URL the client and the reader are the cluster's
(`redis_cluster.py`, `redis_cluster_reader.py`), the rest is the same.

Connections per process are bounded whatever the number of subscribers: a pool of at most
`COMMAND_CONNECTIONS` for commands (a greenlet borrows one per command, so none is ever shared
by two at once) and the reader's own (`redis_reader.py`), opened by the first subscription.
Publishing needs no greenlet, so a job or script without gevent can use this class as it is.

Deliberate choices:

1. Commands are retried once, at once: Redis down must answer 503 quickly, not after redis-py's
   default ten retries with backoff.
2. "Trimmed after id" is exact on the memory broker only: `MAXLEN` trimming does not record
   what it removed (XINFO's max-deleted-entry-id counts XDEL only), so an id older than the
   oldest retained entry of a trimmed stream counts as trimmed, even if it was the very last
   entry removed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from streaming.mailbox import Mailbox

from . import redis_keys
from .base import (
    AT_END,
    EACH,
    IF_APPENDED,
    ONE,
    Append,
    Broker,
    Lease,
    appended,
    timed_publish,
)
from .events import Event, Key, format_id, parse_id
from .fanout import FLUSH_DELAY
from .presence import HEARTBEAT_SECONDS
from .redis_cluster import cluster_client, is_cluster
from .redis_cluster_reader import ClusterReader
from .redis_errors import reaching_redis
from .redis_presence import RedisPresence
from .redis_reader import BLOCK_MS, StreamReader, entry_event

PREFIX = redis_keys.PREFIX
COMMAND_CONNECTIONS = 8
"""Most pooled command connections per process; a greenlet waits for a free one."""
POOL_WAIT_SECONDS = 5
CONNECT_TIMEOUT, COMMAND_TIMEOUT = 2.0, 5.0

# Appends unless the topic's last entry is final (it ended) or the lease KEYS[2] is held.
# ARGV: maxlen ("0": keep all), event, data, final ("1"/"0"), retain ms ("0": leave the expiry
# as it is), check lease ("1"/"0"), id ("*", "<position>-*", or "end": the last entry's
# position).
PUBLISH_OPEN = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local position = '0'
if last[1] then
  local fields = last[1][2]
  for i = 1, #fields, 2 do
    if fields[i] == 'f' then return false end
  end
  position = string.match(last[1][1], '^[0-9]+')
end
if ARGV[6] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then return false end
local id = ARGV[7]
if id == 'end' then id = position .. '-*' end
local fields = {'e', ARGV[2], 'd', ARGV[3]}
if ARGV[4] == '1' then fields[5] = 'f'; fields[6] = '1' end
local added
if ARGV[1] == '0' then
  added = redis.call('XADD', KEYS[1], id, unpack(fields))
else
  added = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], id, unpack(fields))
end
if ARGV[5] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
return added
"""


def _connection_options(role: str) -> dict[str, Any]:
    # Named per process and role, so `CLIENT LIST` shows who holds what.
    return {"decode_responses": True, "client_name": f"sse:{os.getpid()}:{role}",
            "socket_connect_timeout": CONNECT_TIMEOUT}


class RedisBroker(Broker):
    """Topics in Redis Streams; one per process (it holds the process's connections)."""

    kind = "redis"
    shared = True

    def __init__(self, url: str, history: int, queue_size: int, *,
                 flush_delay: float | None = FLUSH_DELAY,
                 heartbeat: float = HEARTBEAT_SECONDS) -> None:
        super().__init__(history, queue_size)
        self._reader: StreamReader | ClusterReader
        self._cluster = is_cluster(url)
        if self._cluster:
            cluster = cluster_client(url, socket_timeout=COMMAND_TIMEOUT,
                                     **_connection_options("commands"))
            self._redis = cluster
            self._reader = ClusterReader(cluster, queue_size, flush_delay)
        else:
            pool = redis.BlockingConnectionPool.from_url(
                url, max_connections=COMMAND_CONNECTIONS, timeout=POOL_WAIT_SECONDS,
                socket_timeout=COMMAND_TIMEOUT, retry=Retry(NoBackoff(), 1),
                **_connection_options("commands"))
            self._redis = redis.Redis(connection_pool=pool)
            self._reader = StreamReader(self._reader_client(url), self._redis, self._key,
                                        redis_keys.topic_of, queue_size, flush_delay)
        self._publish_open = self._redis.register_script(PUBLISH_OPEN)
        self.reader = self._reader  # read by the broker metrics (lag, reconnects)
        self.fanout = self._reader.fanout
        self.presence = RedisPresence(self._redis, self._presence_key, heartbeat)

    @staticmethod
    def _reader_client(url: str) -> Callable[[], redis.Redis]:
        def connect() -> redis.Redis:
            return redis.Redis.from_url(url, socket_timeout=BLOCK_MS / 1000 + 5,
                                        retry=Retry(NoBackoff(), 0),
                                        single_connection_client=True,
                                        **_connection_options("reader"))
        return connect

    @staticmethod
    def _key(topic: str) -> str:
        return redis_keys.stream(topic)

    @timed_publish(ONE)
    def publish(self, topic: str, event: str, data: str) -> str:
        with reaching_redis():
            return self._redis.xadd(self._key(topic), {"e": event, "d": data},
                                    maxlen=self.history, approximate=True)

    @timed_publish(EACH)
    def publish_many(self, topic: str, events: Sequence[tuple[str, str]]) -> list[str]:
        # MULTI/EXEC in one round trip: no other client's entry falls between these.
        pipe = self._redis.pipeline(transaction=True)
        key = self._key(topic)
        for event, data in events:
            pipe.xadd(key, {"e": event, "d": data}, maxlen=self.history, approximate=True)
        with reaching_redis():
            return pipe.execute()

    @timed_publish(IF_APPENDED)
    def publish_open(self, topic: str, event: str, data: str, *, final: bool = False,
                     unless_leased: str | None = None,
                     retain_seconds: float | None = None,
                     position: int | None = None) -> str | None:
        keys, args = self._open_call(Append(topic, event, data, final, unless_leased,
                                            retain_seconds, position))
        with reaching_redis():
            return self._publish_open(keys=keys, args=args)

    def _open_call(self, append: Append) -> tuple[list[str], list]:
        """The PUBLISH_OPEN script's keys and arguments for `append`."""
        key = self._key(append.topic)
        leased = append.unless_leased
        lease = self._lease_key(leased) if leased is not None else key
        if self._cluster and redis_keys.tag(lease) != redis_keys.tag(key):
            raise ValueError(f"the lease {leased!r} guards another topic than {append.topic!r}: "
                             "on a Redis Cluster it is in another slot (broker/redis_keys.py)")
        retain = append.retain_seconds
        retain_ms = "0" if retain is None else str(max(1, int(retain * 1000)))
        position = append.position
        if position is None:
            maxlen, entry_id = self.history, "*"
        else:
            maxlen, entry_id = 0, "end" if position == AT_END else f"{position}-*"
        return [key, lease], [maxlen, append.event, append.data, "1" if append.final else "0",
                              retain_ms, "1" if leased is not None else "0", entry_id]

    @timed_publish(appended)
    def apply(self, writes: Sequence[Append | Lease]) -> list[str | None]:
        pipe = self._redis.pipeline(transaction=False)
        for write in writes:
            if isinstance(write, Append):
                keys, args = self._open_call(write)
                self._publish_open(keys=keys, args=args, client=pipe)
            else:
                pipe.set(self._lease_key(write.name), "1", px=max(1, int(write.seconds * 1000)))
        with reaching_redis():
            results = pipe.execute()
        return [result if isinstance(write, Append) else None
                for write, result in zip(writes, results, strict=True)]

    def latest(self, topic: str, count: int = 1) -> list[Event]:
        with reaching_redis():
            entries = self._redis.xrevrange(self._key(topic), count=count)
        return [entry_event(entry) for entry in reversed(entries)]

    def read_after(self, topic: str, after: Key, count: int) -> list[Event]:
        with reaching_redis():
            entries = self._redis.xrange(self._key(topic), min=f"({format_id(after)}",
                                         count=count)
        return [entry_event(entry) for entry in entries]

    def trimmed_after(self, topic: str, after: Key) -> bool:
        with reaching_redis():
            try:
                info = self._redis.xinfo_stream(self._key(topic))
            except redis.ResponseError:  # no such stream: nothing is known to be missing
                return False
        if parse_id(info.get("max-deleted-entry-id") or "0-0") > after:
            return True
        first = info.get("first-entry")
        trimmed = int(info.get("entries-added") or 0) > int(info.get("length") or 0)
        return trimmed and first is not None and parse_id(first[0]) > after

    def follow(self, topic: str, mailbox: Mailbox) -> None:
        with reaching_redis():
            self._reader.follow(topic, mailbox)

    def unfollow(self, topic: str, mailbox: Mailbox) -> None:
        self._reader.unfollow(topic, mailbox)

    def lease(self, name: str, seconds: float) -> None:
        with reaching_redis():
            self._redis.set(self._lease_key(name), "1", px=max(1, int(seconds * 1000)))

    def release(self, name: str) -> None:
        with reaching_redis():
            self._redis.delete(self._lease_key(name))

    @staticmethod
    def _presence_key(topic: str) -> str:
        return redis_keys.presence(topic)

    @staticmethod
    def _lease_key(name: str) -> str:
        return redis_keys.lease(name)

    def subscribers(self) -> int:
        return self._reader.fanout.subscribers()

    def close(self) -> None:
        self.presence.close()
        self._reader.close()
        self._redis.close()
        if isinstance(self._redis, redis.Redis):
            self._redis.connection_pool.disconnect()
