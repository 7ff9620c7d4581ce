"""`RedisPresence`: presence shared by every worker and instance through Redis.

Each process has an id (a uuid) and writes, per topic it holds subscriptions to, one field of
the hash `sse:presence:{<topic>}`: field `<process id>`, value `<deadline ms> <counts>`, counts
being compact JSON `{subject: open subscriptions}` ("" for those without a subject). A reader
sums the fields whose deadline has not passed, and deletes the others (a SIGKILLed worker's).

Deliberate choices:

1. The writer stamps its own deadline (Redis TIME + `STALE_AFTER` heartbeats) rather than the
   time it wrote: a reader then needs no setting to tell a live process from a dead one, and
   a job with other settings reads what the server wrote. Every time is Redis's, in the
   scripts: the clocks of the instances never meet, so their skew cannot matter.
2. One hash per topic, not a hash plus a sorted set of refresh times: one key to read, write
   and expire, and no second key whose name could be another topic's
   (`...:<topic>:seen` is the key of the topic `<topic>:seen` too).
3. One greenlet per process writes: every `REFRESH` heartbeats, all its topics in one
   pipeline; when a count changes, the changed topics, after `COALESCE_SECONDS`, so a burst of
   a thousand subscribers opening is a few round trips, not a thousand. A topic's field is
   deleted when its last local subscription closes.
4. Joins and leaves of other processes are seen by polling (the same greenlet, the same
   pipeline), every `POLL_SECONDS` at most, the topics that have watchers here; this process's
   own changes are announced at once.

With the defaults a killed worker's subscriptions are gone from every read within 1.5
heartbeats, and from watchers' subject lists within 1.5 heartbeats plus a poll, under the 2
heartbeats promised; a live process refreshes three times within its deadline.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable

import gevent
import redis
from gevent.event import Event as Signal

from streaming.encoding import compact_json
from streaming.mailbox import Mailbox

from .presence import Counts, Headcount, Presence
from .redis_errors import reaching_redis
from .subscription import BrokerUnavailable

log = logging.getLogger(__name__)

REFRESH, STALE_AFTER = 0.5, 1.5
"""In heartbeats: how often a process rewrites its fields, and how long a field stays fresh."""
POLL_SECONDS = 1.0
"""Longest time between two reads of the watched topics (a quarter heartbeat if shorter)."""
COALESCE_SECONDS = 0.05
"""How long changes are gathered before they are written together."""

# KEYS[1] the topic's hash; ARGV: process id, counts JSON ("" deletes the field), fresh ms.
# The key lives as long as its freshest field (PEXPIRE only ever extends it).
WRITE = """
if ARGV[2] == '' then return redis.call('HDEL', KEYS[1], ARGV[1]) end
local now = redis.call('TIME')
local fresh = tonumber(ARGV[3])
local deadline = now[1] * 1000 + math.floor(now[2] / 1000) + fresh
redis.call('HSET', KEYS[1], ARGV[1], string.format('%.0f', deadline) .. ' ' .. ARGV[2])
if redis.call('PTTL', KEYS[1]) < fresh then redis.call('PEXPIRE', KEYS[1], fresh) end
return 1
"""

# KEYS[1] the topic's hash: its fresh fields as [id, counts, id, counts...]; stale ones deleted.
READ = """
local now = redis.call('TIME')
local ms = now[1] * 1000 + math.floor(now[2] / 1000)
local entries = redis.call('HGETALL', KEYS[1])
local fresh = {}
for i = 1, #entries, 2 do
  local deadline, counts = string.match(entries[i + 1], '^(%d+) (.*)$')
  if deadline and tonumber(deadline) > ms then
    fresh[#fresh + 1] = entries[i]
    fresh[#fresh + 1] = counts
  else
    redis.call('HDEL', KEYS[1], entries[i])
  end
end
return fresh
"""


class RedisPresence(Presence):
    """This process's presence, written to Redis; reads sum every live process's.

    `commands` is the broker's pooled client (decoding replies), `key(topic)` the topic's hash,
    `heartbeat` the server's HEARTBEAT_SECONDS. The writing greenlet starts with the first
    subscription, so a process that never subscribes (a job) never runs one.
    """

    def __init__(self, commands: redis.Redis, key: Callable[[str], str],
                 heartbeat: float) -> None:
        if heartbeat <= 0:
            raise ValueError(f"heartbeat must be > 0 seconds, got {heartbeat!r}")
        super().__init__()
        self.process = uuid.uuid4().hex
        self._redis = commands
        self._key = key
        self._refresh = REFRESH * heartbeat
        self._fresh_ms = max(1, int(STALE_AFTER * heartbeat * 1000))
        self._poll = min(POLL_SECONDS, heartbeat / 4)
        self._write = commands.register_script(WRITE)
        self._read = commands.register_script(READ)
        self._dirty: set[str] = set()  # topics whose counts changed since they were written
        self._remote: dict[str, frozenset[str]] = {}  # watched topic → others' subjects
        self._unpolled: set[str] = set()  # watched, not read since
        self._refresh_at = self._poll_at = 0.0
        self._wake = Signal()
        self._greenlet: gevent.Greenlet | None = None

    def headcount(self, topic: str) -> Headcount:
        with reaching_redis():
            fields = self._read(keys=[self._key(topic)])
        return Headcount.of([self.local_counts(topic), *self._others(fields).values()])

    def sync(self, *, everything: bool = False, poll: bool = False) -> None:
        """One round trip: write the changed topics (every held one with `everything`), and
        read the watched ones (with `poll`, else those not read yet). BrokerUnavailable if
        Redis cannot be reached; what was not written is written next time."""
        writes = (set(self._local) | self._dirty) if everything else set(self._dirty)
        self._dirty.clear()
        reads = list(self._watchers) if poll else list(self._unpolled & set(self._watchers))
        self._unpolled.clear()
        pipe = self._redis.pipeline(transaction=False)
        for topic in writes:
            counts = self._local.get(topic)
            self._write(keys=[self._key(topic)], client=pipe,
                        args=[self.process, compact_json(counts) if counts else "",
                              self._fresh_ms])
        for topic in reads:
            self._read(keys=[self._key(topic)], client=pipe)
        try:
            with reaching_redis():
                results = pipe.execute() if writes or reads else []
        except Exception:  # BrokerUnavailable, or any reply error: all of it goes again
            self._dirty |= writes
            self._unpolled.update(reads)
            raise
        for topic, fields in zip(reads, results[len(writes):], strict=True):
            self._learn(topic, fields)

    def close(self) -> None:
        """Stop writing and delete this process's fields (what is left expires by itself)."""
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
        self._dirty |= set(self._local)
        self._local.clear()
        try:
            self.sync()
        except (BrokerUnavailable, redis.RedisError):
            log.warning("could not remove this process's presence from Redis; it expires")

    def _others(self, fields: list[str]) -> dict[str, Counts]:
        """Counts per process of a READ reply, but this one's (it knows its own better)."""
        pairs = zip(fields[::2], fields[1::2], strict=True)
        return {process: _counts(text) for process, text in pairs if process != self.process}

    def _learn(self, topic: str, fields: list[str]) -> None:
        if topic not in self._watchers:
            return
        self._remote[topic] = frozenset(Headcount.of(self._others(fields).values()).subjects)
        self._announce(topic)

    def _subjects(self, topic: str) -> frozenset[str]:
        return super()._subjects(topic) | self._remote.get(topic, frozenset())

    def _changed(self, topic: str) -> None:
        self._dirty.add(topic)
        self._start()
        super()._changed(topic)

    def watch(self, topic: str, mailbox: Mailbox) -> None:
        if topic not in self._watchers:
            self._unpolled.add(topic)
            self._start()
        super().watch(topic, mailbox)

    def _unwatched(self, topic: str) -> None:
        self._remote.pop(topic, None)
        self._unpolled.discard(topic)

    def _start(self) -> None:
        self._wake.set()
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        failing = False
        while True:
            self._wake.wait(self._until_due())
            self._wake.clear()
            gevent.sleep(COALESCE_SECONDS)
            now = time.monotonic()
            everything, poll = now >= self._refresh_at, now >= self._poll_at
            try:
                self.sync(everything=everything, poll=poll)
            except Exception as exc:  # whatever it was, subscriptions go on; try again later
                if not failing:
                    log.warning("presence could not reach Redis (%s); trying again", exc)
                failing = True
                gevent.sleep(self._poll)
                continue
            failing = False
            if everything:
                self._refresh_at = now + self._refresh
            if poll:
                self._poll_at = now + self._poll

    def _until_due(self) -> float | None:
        """Seconds until the next refresh or poll is due (0: changes wait), None: nothing to do."""
        if self._dirty or self._unpolled:
            return 0
        due = [self._refresh_at] if self._local else []
        if self._watchers:
            due.append(self._poll_at)
        return max(0.0, min(due) - time.monotonic()) if due else None


def _counts(text: str) -> Counts:
    """A field's counts; nothing for what no process of ours writes."""
    try:
        counts = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(counts, dict):
        return {}
    return {subject: n for subject, n in counts.items() if isinstance(n, int)}
