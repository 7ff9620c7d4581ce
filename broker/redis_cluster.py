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
4. Connections: a pool per node of the cluster for commands, plus the reader's one per node.
   redis-py bounds a cluster node's pool only by failing past the bound, so the pools are not
   bounded here; the number of greenlets using them is (WORKER_CONNECTIONS).

rq cannot run on a cluster (its queues are several keys of several slots per command): run
jobs against one Redis, or report from a job with `TaskReporter`, which needs only the broker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.commands.core import Script
from redis.exceptions import NoScriptError
from redis.retry import Retry

SCHEMES = ("redis+cluster", "rediss+cluster")


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


class ClusterClient(RedisCluster):
    """`RedisCluster` whose `register_script` makes `ClusterScript`s."""

    url_options: dict[str, Any] = {}  # set per instance by cluster_client

    def register_script(self, script: str) -> ClusterScript:  # type: ignore[override]
        return ClusterScript(self, script)


def cluster_client(url: str, *, retries: int = 1, **options: Any) -> ClusterClient:
    """A client of the cluster `url` names; `options` go to every node's connections."""
    nodes, url_options = parse_url(url)
    client = ClusterClient(startup_nodes=[ClusterNode(host, port) for host, port in nodes],
                           require_full_coverage=False, retry=Retry(NoBackoff(), retries),
                           **url_options, **options)
    client.url_options = url_options  # what a plain connection to one node needs too
    return client
