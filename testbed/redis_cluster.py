"""A Redis Cluster of three masters on free loopback ports, for the tests and the benchmarks.

Each master is a `redis-server --cluster-enabled yes --cluster-require-full-coverage no` in a
directory of its own (its nodes.conf and append-only file) under one temporary directory;
`redis-cli --cluster create ... --cluster-yes` joins them and shares the 16384 slots out.
With full coverage not required, the masters left keep serving their slots while one is
stopped; a master restarted by `start_node` comes back with its nodes.conf (the same id and
slots) and its data (appendfsync always), as a production master with persistence would.
Every process is stopped by its PID.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time

import redis
from redis.cluster import ClusterNode, RedisCluster

from testbed.live_server import free_port
from testbed.redis_server import stop_group

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


class RedisClusterServers:
    """`masters` redis-servers joined into one cluster; `url` names it for REDIS_URL."""

    def __init__(self, masters: int = 3, durable: bool = True) -> None:
        self.durable = durable
        self.ports = [free_port() for _ in range(masters)]
        # The cluster bus's ports, given (the default, port + 10000, may be out of range).
        self._bus_ports = {port: free_port() for port in self.ports}
        self.url = "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)
        self._directory = tempfile.mkdtemp(prefix="test-redis-cluster-")
        self.processes: dict[int, subprocess.Popen] = {}

    def start(self, timeout: float = 30) -> RedisClusterServers:
        try:
            for port in self.ports:
                self.start_node(port, timeout)
            subprocess.run([REDIS_CLI, "--cluster", "create",
                            *(f"127.0.0.1:{port}" for port in self.ports), "--cluster-yes"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           timeout=timeout)
            self.wait_ok(timeout)
        except BaseException:
            self.remove()
            raise
        return self

    def start_node(self, port: int, timeout: float = 10) -> None:
        """Start (or start again) the master on `port`; returns once it answers PING."""
        directory = os.path.join(self._directory, str(port))
        os.makedirs(directory, exist_ok=True)
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.durable
                       else ["--appendonly", "no"])
        command = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1",
                   "--dir", directory, "--save", "", *persistence, "--protected-mode", "no",
                   "--cluster-enabled", "yes", "--cluster-port", str(self._bus_ports[port]),
                   "--cluster-config-file", "nodes.conf",
                   "--cluster-node-timeout", "2000", "--cluster-require-full-coverage", "no"]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        self.processes[port] = process
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server did not start on port {port}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def wait_ok(self, timeout: float = 30) -> None:
        """Until every running master says cluster_state:ok and knows every slot."""
        deadline = time.monotonic() + timeout
        while True:
            if all(self._ok(port) for port in self.processes):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not reach cluster_state:ok")
            time.sleep(0.1)

    @staticmethod
    def _ok(port: int) -> bool:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1,
                             decode_responses=True)
        try:
            info = client.execute_command("CLUSTER", "INFO")
        except redis.RedisError:
            return False
        finally:
            client.close()
        fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        return fields.get("cluster_state") == "ok" and fields.get("cluster_slots_ok") == "16384"

    def client(self) -> RedisCluster:
        return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", port) for port in self.ports],
                            decode_responses=True, require_full_coverage=False)

    def port_of(self, key: str) -> int:
        """The port of the master holding `key`'s slot."""
        client = self.client()
        try:
            return int(client.get_node_from_key(key).port)
        finally:
            client.close()

    def move_slot(self, slot: int, to_port: int) -> None:
        """Move `slot`, with its keys, to the master on `to_port` (as a resharding does)."""
        nodes = {port: redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
                 for port in self.processes}
        try:
            ids = {port: node.execute_command("CLUSTER", "MYID") for port, node in nodes.items()}
            source = next(port for port, node in nodes.items()
                          if any(int(start) <= slot <= int(end) for start, end, *_ in
                                 _slot_ranges(node, ids[port])))
            target = nodes[to_port]
            target.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source])
            nodes[source].execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[to_port])
            while keys := nodes[source].execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                nodes[source].execute_command("MIGRATE", "127.0.0.1", to_port, "", 0, 5000,
                                              "KEYS", *keys)
            for node in nodes.values():
                node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[to_port])
        finally:
            for node in nodes.values():
                node.close()

    def stop_node(self, port: int) -> None:
        stop_group(self.processes.pop(port, None))

    def stop(self) -> None:
        for port in list(self.processes):
            self.stop_node(port)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self._directory, ignore_errors=True)


def _slot_ranges(node: redis.Redis, node_id: str) -> list[tuple[int, int]]:
    """The slot ranges the master `node_id` holds, as `node` sees them (CLUSTER SLOTS)."""
    return [(start, end) for start, end, primary, *_ in node.execute_command("CLUSTER", "SLOTS")
            if primary[2] == node_id]
