"""Redis Cluster: the URL that names one, and the command client the broker uses with it.

`REDIS_URL=redis+cluster://[user:password@]host:port[,host:port...]` (`rediss+cluster://`
with TLS) names a cluster by one or more of its nodes; the client learns the others and which
node holds which slot (`CLUSTER SLOTS`), and follows `MOVED` when a slot moves. What differs
from one Redis, and where it is handled:

1. Keys: every key of a topic shares the topic's hash tag (`redis_keys.py`), so the publish
   script (stream + lease) and the presence scripts touch one slot each.
2. Scripts: a restarted node has forgotten the scripts it was sent (`NOSCRIPT`). A script
   called alone tries `EVALSHA` and falls back to `EVAL`, which loads it again on that node; in
   a pipeline (split per node by redis-py) it is sent as `EVAL`, since a pipeline cannot
   replay one command of its batch.
3. Reading: one `XREAD` may not name keys of two slots (`CROSSSLOT`), so the cluster has its
   own reader (`redis_cluster_reader.py`).
4. Connections: a blocking pool of at most `POOL_CONNECTIONS` per node for commands (as with
   one Redis), plus the reader's one listening connection per node.

rq cannot run on a cluster (its queues are several keys of several slots per command): run
jobs against one Redis, or report from a job with `TaskReporter`, which needs only the broker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote

from redis import BlockingConnectionPool
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.commands.core import Script
from redis.connection import Encoder
from redis.exceptions import NoScriptError
from redis.retry import Retry

SCHEMES = ("redis+cluster", "rediss+cluster")
POOL_CONNECTIONS, POOL_WAIT_SECONDS = 8, 5
"""Per node of the cluster: most pooled command connections, and the longest wait for one."""


def is_cluster(url: str) -> bool:
    return url.partition("://")[0].lower() in SCHEMES


def parse_url(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """The nodes (host, port) a cluster URL names, and the connection options it gives
    (username, password, ssl). ValueError for anything else, saying what is wrong."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        raise ValueError(f"a cluster URL starts with {' or '.join(s + '://' for s in SCHEMES)}")
    rest, _, query = rest.partition("?")
    if query:
        raise ValueError("a cluster URL takes no ?options")
    netloc, _, path = rest.partition("/")
    if path.strip("/") not in ("", "0"):
        raise ValueError("a cluster has only database 0")
    options: dict[str, Any] = {"ssl": scheme.lower() == "rediss+cluster"}
    userinfo, at, hosts = netloc.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        if colon:
            options["password"] = unquote(password)
            if user:
                options["username"] = unquote(user)
        else:
            options["password"] = unquote(user)
    nodes = []
    for node in hosts.split(","):
        host, colon, port = node.strip().rpartition(":")
        host = host.strip("[]")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"each node is host:port, got {node.strip()!r}")
        nodes.append((host, int(port)))
    return nodes, options


class ClusterScript(Script):
    """A Lua script for a cluster: see the module's point 2."""

    def __call__(self, keys: Sequence[Any] | None = None, args: Any = None,
                 client: Any = None) -> Any:
        keys, args = list(keys or []), list(args or [])
        client = self.registered_client if client is None else client
        if isinstance(client, ClusterPipeline):
            return client.execute_command("EVAL", self.script, len(keys), *keys, *args)
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return client.execute_command("EVAL", self.script, len(keys), *keys, *args)


class LazyCluster:
    """A `RedisCluster` made on first use: `RedisCluster()` asks a node for the slots at once,
    and a worker must not wait on the network (nor start its event loop) while the app is
    built. Every attribute but `register_script`, `get_encoder` and `url_options` is the
    client's; a failure to reach any node raises from that first use, and is tried again next
    time."""

    def __init__(self, url: str, retries: int, options: dict[str, Any]) -> None:
        self._url = url
        self._retries = retries
        self._options = options
        nodes, self.url_options = parse_url(url)  # a bad URL fails here, at once
        self._nodes = [ClusterNode(host, port) for host, port in nodes]
        self._client: RedisCluster | None = None
        self._making = threading.Lock()

    @property
    def client(self) -> RedisCluster:
        if self._client is None:
            with self._making:
                if self._client is None:
                    client = _off_the_loop(self._make)
                    # Pools new in this thread (a blocking pool's queue is its thread's).
                    for node in client.get_nodes():
                        node.redis_connection.connection_pool.reset()
                    self._client = client
        return self._client

    def _make(self) -> RedisCluster:
        # Given as a URL, the first node makes redis-py build each node's pool with
        # `connection_pool_class`: blocking, so a burst waits for a connection rather than
        # opening one per greenlet (or failing past `max_connections`).
        options = {key: value for key, value in self.url_options.items() if key != "ssl"}
        first, *others = self._nodes
        scheme = "rediss" if self.url_options.get("ssl") else "redis"
        client = RedisCluster(url=f"{scheme}://{first.host}:{first.port}/0",
                              startup_nodes=others, require_full_coverage=False,
                              retry=Retry(NoBackoff(), self._retries),
                              connection_pool_class=BlockingConnectionPool,
                              max_connections=POOL_CONNECTIONS, timeout=POOL_WAIT_SECONDS,
                              **options, **self._options)
        # Its connections belong to the thread that made it: the loop opens its own.
        for node in client.get_nodes():
            node.redis_connection.connection_pool.disconnect()
        return client

    def register_script(self, script: str) -> ClusterScript:
        return ClusterScript(self, script)

    def get_encoder(self) -> Encoder:
        return Encoder("utf-8", "strict", self._options.get("decode_responses", False))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def cluster_client(url: str, *, retries: int = 1, **options: Any) -> LazyCluster:
    """A client of the cluster `url` names, made on first use; `options` go to every node's
    connections."""
    return LazyCluster(url, retries, options)


def _off_the_loop(make: Callable[[], RedisCluster]) -> RedisCluster:
    """`make()`, in a thread of gevent's pool when the process is gevent's (a worker).

    Making a `RedisCluster` parses the node's whole `COMMAND` table, about 40 ms of CPU (20
    with hiredis) that would hold the event loop of a worker serving streams; in a thread, the
    loop goes on meanwhile. A process without gevent (a job) makes it where it is.
    """
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        return make()
    import gevent

    return gevent.get_hub().threadpool.apply(make)
