"""`ClusterReader`: the one reader of a process for a Redis Cluster, one listener per node.

One `XREAD` may not name streams of two slots (`CROSSSLOT`), even on the same node, so the
single-Redis reader's one `XREAD BLOCK` over every followed stream cannot work on a cluster,
and a blocking read per slot would be a connection per topic. Instead, per master node that
holds a followed topic, one connection subscribes to the keyspace notifications of the
followed streams (`SUBSCRIBE __keyspace@0__:sse:{<topic>}`, notified on `XADD`), and the
listener then reads what is new with `XRANGE` after its cursor, every topic notified at once
in one pipeline. A worker holds one listening connection per node, whatever its subscribers.

Notifications are node-local and off by default: on connecting, the listener makes sure the
node's `notify-keyspace-events` has `K` (keyspace) and `t` (stream commands), with
`CONFIG SET` if needed. Where `CONFIG` is refused (some managed services), set it in the
service's configuration; without it, events still arrive, within `SWEEP_SECONDS`.

Pub/sub loses what is published while a listener is not subscribed, so every `SWEEP_SECONDS`
a sweeper re-reads each followed topic after its cursor (a safety net that normally finds
nothing), pings every listener (a node that stopped answering is noticed within
`LISTEN_TIMEOUT`), and checks each topic is still on the node it was followed on.

When a node's connection fails, or a topic's slot moved to another node, only the
subscriptions of its topics end with `event: error`: their clients reconnect and resume from
their Last-Event-ID (nothing still in the history is lost), while the other nodes' listeners go
on. A new follow of a topic on a node that is down fails (`BrokerUnavailable`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

import gevent
import redis
from gevent.event import Event as Signal
from gevent.lock import Semaphore
from redis.backoff import NoBackoff
from redis.retry import Retry

from streaming.mailbox import Mailbox

from . import redis_keys
from .events import BROKER_ERROR, Event, parse_id
from .fanout import FLUSH_DELAY, Fanout
from .redis_cluster import LazyCluster
from .redis_reader import COUNT, entry_event, lag_of

log = logging.getLogger(__name__)

SWEEP_SECONDS = 5.0
"""How often every followed topic is re-read and every listener pinged."""
LISTEN_TIMEOUT = 4 * SWEEP_SECONDS
"""A listener that reads nothing (not even a pong) this long has lost its node."""
CONFIRM_SECONDS = 5.0
"""Longest wait for a node to confirm a SUBSCRIBE."""
CHANNEL_PREFIX = "__keyspace@0__:"
NOTIFY_FLAGS = "Kt"


class ClusterReader:
    """Follows topics on a cluster for this process; `follow`/`unfollow` from any greenlet.

    The same interface as `redis_reader.StreamReader`: `cluster` is the broker's command
    client, `queue_size` the subscribers' queue size, `flush_delay` the fan-out's.
    """

    def __init__(self, cluster: LazyCluster, queue_size: int,
                 flush_delay: float | None = FLUSH_DELAY) -> None:
        self._cluster = cluster
        self._count = min(COUNT, queue_size)
        self.fanout = Fanout(flush_delay)
        self._cursors: dict[str, str] = {}  # topic -> id of the last entry read or skipped
        self._homes: dict[str, Listener] = {}  # topic -> the listener of its node
        self._listeners: dict[str, Listener] = {}  # node name -> its listener
        self._sweeper: gevent.Greenlet | None = None
        self._warned: set[str] = set()  # nodes whose notifications could not be turned on
        self.lag_seconds = 0.0  # behind the newest entry of the last read (broker metrics)
        self.reconnects = 0  # nodes lost, each listened to again once a topic follows it

    def follow(self, topic: str, mailbox: Mailbox) -> None:
        """Deliver `topic`'s next events to `mailbox`. Blocks on Redis for a new topic."""
        if self._sweeper is None:
            self._sweeper = gevent.spawn(self._sweep)
        self.fanout.add(topic, mailbox)
        if topic in self._cursors:
            return
        key = redis_keys.stream(topic)
        listener = self._listener(self._cluster.get_node_from_key(key))
        listener.listen(key)  # notified of every XADD from now on ...
        newest = self._cluster.xrevrange(key, count=1)  # ... so read after this one
        if topic in self.fanout and topic not in self._cursors:
            if not listener.alive:  # lost while this follow waited: its topics were failed
                raise redis.ConnectionError(f"lost the connection to {listener.name}")
            self._cursors[topic] = newest[0][0] if newest else "0-0"
            self._homes[topic] = listener

    def unfollow(self, topic: str, mailbox: Mailbox) -> None:
        if self.fanout.remove(topic, mailbox):
            self._cursors.pop(topic, None)
            listener = self._homes.pop(topic, None)
            if listener is not None:
                listener.unlisten(redis_keys.stream(topic))

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.kill(block=False)
            self._sweeper = None
        for listener in list(self._listeners.values()):
            listener.stop()
        self._listeners.clear()

    def _listener(self, node: Any) -> Listener:
        listener = self._listeners.get(node.name)
        if listener is None or not listener.alive:
            listener = Listener(self, node.host, node.port, node.name)
            self._listeners[node.name] = listener
            try:
                listener.start()
            except BaseException:
                if self._listeners.get(node.name) is listener:
                    del self._listeners[node.name]
                raise
        return listener

    def warn_once(self, name: str, message: str, *args: Any) -> None:
        if name not in self._warned:
            self._warned.add(name)
            log.warning(message, *args)

    # What the listeners and the sweeper do.

    def read(self, topics: list[str]) -> None:
        """Read what is new in `topics` (one pipeline) and deliver it; again while full."""
        while topics:
            topics = [topic for topic in dict.fromkeys(topics) if topic in self._cursors]
            if not topics:
                return
            pipe = self._cluster.pipeline(transaction=False)
            for topic in topics:
                pipe.xrange(redis_keys.stream(topic), min=f"({self._cursors[topic]}",
                            count=self._count)
            replies = pipe.execute()
            self.lag_seconds = lag_of(list(zip(topics, replies, strict=True)))
            full = []
            for topic, entries in zip(topics, replies, strict=True):
                if entries:
                    self._deliver(topic, [entry_event(entry) for entry in entries])
                if len(entries) >= self._count:
                    full.append(topic)
            topics = full

    def _deliver(self, topic: str, events: list[Event]) -> None:
        cursor = self._cursors.get(topic)
        if cursor is None:  # nobody follows it any more
            return
        # A listener and the sweeper may read the same entries; only what is after the
        # cursor is new (nothing here switches greenlets between the check and the update).
        after = parse_id(cursor)
        fresh = [event for event in events if event.key > after]
        if fresh:
            self._cursors[topic] = fresh[-1].id
            self.fanout.deliver(topic, fresh)

    def lost(self, listener: Listener, reason: object) -> None:
        """`listener`'s node is unreachable: end the subscriptions of its topics only."""
        if self._listeners.get(listener.name) is listener:
            del self._listeners[listener.name]
            self.reconnects += 1
        listener.stop()
        topics = [topic for topic, home in self._homes.items() if home is listener]
        if topics:
            log.warning("Redis Cluster node %s is unreachable (%s): ending the "
                        "subscriptions of its %d topics", listener.name, reason, len(topics))
        self._fail(topics)

    def _fail(self, topics: list[str]) -> None:
        for topic in topics:
            self._cursors.pop(topic, None)
            self._homes.pop(topic, None)
            self.fanout.fail(topic, BROKER_ERROR)

    def _sweep(self) -> None:
        while True:
            gevent.sleep(SWEEP_SECONDS)
            try:
                self._sweep_once()
            except Exception:  # the safety net must go on whatever happened
                log.exception("the sweep of the followed Redis Cluster topics failed")

    def _sweep_once(self) -> None:
        for listener in list(self._listeners.values()):
            listener.ping()
        try:
            self.read(list(self._cursors))
        except Exception as exc:  # a node down: its listener notices and fails its topics
            log.debug("the sweep of the followed topics failed: %s", exc)
        moved = []
        for topic, home in list(self._homes.items()):
            try:
                node = self._cluster.get_node_from_key(redis_keys.stream(topic))
            except Exception:  # no node known for the slot: as good as moved
                node = None
            if node is None or node.name != home.name:
                moved.append(topic)
        if moved:
            log.warning("%d followed topics moved to another Redis Cluster node; their "
                        "subscriptions end so that they follow them there", len(moved))
            self._fail(moved)


class Listener:
    """One node's connection subscribed to the notifications of the topics it holds."""

    def __init__(self, reader: ClusterReader, host: str, port: int, name: str) -> None:
        self._reader = reader
        self.name = name
        options = dict(reader._cluster.url_options)
        ssl = options.pop("ssl", False)
        connection_class = redis.SSLConnection if ssl else redis.Connection
        self._connection = connection_class(
            host=host, port=port, decode_responses=True, socket_timeout=LISTEN_TIMEOUT, protocol=2,
            socket_connect_timeout=2.0, socket_keepalive=True, retry=Retry(NoBackoff(), 0),
            client_name=f"sse:{os.getpid()}:listener", lib_name=None, lib_version=None,
            **options)
        self._ready = Signal()  # set once connected (or failed): only then may others send
        self._sending = Semaphore()
        self._pending: dict[str, int] = {}  # channel -> SUBSCRIBEs sent and not confirmed
        self._confirmed: dict[str, Signal] = {}  # channel wanted -> set once confirmed
        self._greenlet: gevent.Greenlet | None = None
        self.alive = True

    def start(self) -> None:
        """Connect and turn the node's notifications on. Raises redis errors."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        finally:
            self._ready.set()

    def _start(self) -> None:
        connection = self._connection
        connection.connect()
        connection.send_command("CONFIG", "GET", "notify-keyspace-events")
        try:
            reply = connection.read_response()
            flags = reply[1] if isinstance(reply, list) and len(reply) > 1 else ""
            if "K" not in flags or not ("t" in flags or "A" in flags):
                connection.send_command("CONFIG", "SET", "notify-keyspace-events",
                                        flags + NOTIFY_FLAGS)
                connection.read_response()
        except redis.ResponseError as exc:  # CONFIG refused (a managed service)
            self._reader.warn_once(
                self.name, "could not turn keyspace notifications on on Redis Cluster node "
                "%s (%s): set notify-keyspace-events to include %s there, or live events "
                "arrive only every %.0f s", self.name, exc, NOTIFY_FLAGS, SWEEP_SECONDS)
        self._greenlet = gevent.spawn(self._run)

    def listen(self, key: str) -> None:
        """Subscribe to `key`'s notifications; returns once the node confirmed it."""
        channel = CHANNEL_PREFIX + key
        if not self._ready.wait(CONFIRM_SECONDS) or not self.alive:
            raise redis.ConnectionError(f"could not listen to {self.name}")
        confirmed = self._confirmed.get(channel)
        if confirmed is None:
            confirmed = self._confirmed[channel] = Signal()
            self._pending[channel] = self._pending.get(channel, 0) + 1
            self._send("SUBSCRIBE", channel)
        if not confirmed.wait(CONFIRM_SECONDS) or not self.alive:
            raise redis.TimeoutError(f"{self.name} did not confirm a subscription")

    def unlisten(self, key: str) -> None:
        channel = CHANNEL_PREFIX + key
        if self._confirmed.pop(channel, None) is not None:
            # A lost node: the listener's own read notices it.
            with contextlib.suppress(Exception):
                self._send("UNSUBSCRIBE", channel)

    def ping(self) -> None:
        try:
            self._send("PING")
        except Exception as exc:
            self._reader.lost(self, exc)

    def stop(self) -> None:
        self.alive = False
        for signal in self._confirmed.values():
            signal.set()  # followers waiting see it is not alive
        if self._greenlet is not None and self._greenlet is not gevent.getcurrent():
            self._greenlet.kill(block=False)
        self._connection.disconnect()

    def _send(self, *args: str) -> None:
        if not self.alive:
            raise redis.ConnectionError(f"the listener of {self.name} stopped")
        with self._sending:
            self._connection.send_command(*args)

    def _run(self) -> None:
        connection = self._connection
        try:
            while True:
                replies = [connection.read_response()]
                while connection.can_read(timeout=0):
                    replies.append(connection.read_response())
                notified = []
                for reply in replies:
                    kind = reply[0] if isinstance(reply, list) and reply else None
                    if kind == "message" and reply[2] == "xadd":  # not xtrim, xdel...
                        notified.append(redis_keys.topic_of(reply[1][len(CHANNEL_PREFIX):]))
                    elif kind == "subscribe":
                        self._subscribed(reply[1])
                if notified:
                    self._reader.read(notified)
        except gevent.GreenletExit:
            raise
        except Exception as exc:  # whatever it was, subscribers must not wait forever
            if self.alive:  # not stopped on purpose (closed, or already found lost)
                self._reader.lost(self, exc)

    def _subscribed(self, channel: str) -> None:
        left = self._pending.get(channel, 0) - 1
        if left > 0:
            self._pending[channel] = left
            return
        self._pending.pop(channel, None)
        confirmed = self._confirmed.get(channel)
        if confirmed is not None:
            confirmed.set()

