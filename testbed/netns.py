"""A network namespace of a test's own, joined to this one by a veth pair (iproute2's `ip`).

`Link` makes namespace `name` with a veth pair between it and the host: `host_address` on the
host's end, `peer_address` on the namespace's, a /30 of 10.231.0.0/16 that no interface of the
machine uses. Nothing in it reaches beyond the pair: the namespace has no other route. A
process run with `command()` lives in the namespace and reaches the host only through the pair,
so `down()` (the namespace's end set down) cuts it off silently: no FIN, no RST, its packets and
the host's simply go nowhere, as when a phone loses its network.

Everything is made and removed by name (`dp<pid>`, its ends `dp<pid>h` and `dp<pid>p`):
`destroy()` removes whatever exists of it however far `create()` got, so a failed test leaves
nothing behind, and `create()` first removes what a killed run (a pid now gone) left.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from collections.abc import Sequence

NETWORK = ipaddress.ip_network("10.231.0.0/16")
"""Where the pairs' addresses come from: private (RFC 1918), never routed off the machine."""


def unavailable() -> str | None:
    """Why namespaces cannot be made here (not root, no `ip`), or None when they can."""
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed"
    if os.geteuid() != 0:
        return "making a network namespace needs root"
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=10)


def _used_networks() -> list[ipaddress.IPv4Network]:
    shown = _ip("-4", "-o", "addr", "show").stdout.split()
    return [ipaddress.ip_interface(word).network for word in shown if "/" in word
            and ipaddress.ip_interface(word).version == 4]


def free_subnet(seed: int) -> ipaddress.IPv4Network:
    """A /30 of NETWORK that overlaps no address of this machine, the search starting at `seed`."""
    used = _used_networks()
    subnets = list(NETWORK.subnets(new_prefix=30))
    for step in range(len(subnets)):
        subnet = subnets[(seed + step) % len(subnets)]
        if not any(subnet.overlaps(network) for network in used):
            return subnet
    raise RuntimeError(f"no free /30 left in {NETWORK}")


_OURS = re.compile(r"dp([0-9]+)")


def remove_stale() -> list[str]:
    """Remove the namespaces (and host ends) of runs that were killed before their cleanup:
    named `dp<pid>` for a pid no process has any more. Returns their names."""
    stale = []
    for line in _ip("netns", "list").stdout.splitlines():
        name = line.split(" ", 1)[0]
        match = _OURS.fullmatch(name)
        if match is None:
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            _remove(name)
            stale.append(name)
        except PermissionError:  # alive, someone else's
            pass
    return stale


def _remove(name: str) -> None:
    _ip("netns", "delete", name, check=False)
    _ip("link", "delete", f"{name}h"[:15], check=False)


class Link:
    """Namespace `dp<pid>` and a veth pair to it; `create()` and `destroy()`, or use `with`."""

    def __init__(self) -> None:
        self.name = f"dp{os.getpid()}"
        # Interface names are at most 15 bytes (IFNAMSIZ - 1): "dp" + a pid of 7 digits + 1.
        self.host_end, self.peer_end = f"{self.name}h", f"{self.name}p"
        subnet = free_subnet(os.getpid())
        first, second = list(subnet.hosts())
        self.host_address, self.peer_address = str(first), str(second)
        self.prefix = subnet.prefixlen

    def create(self) -> Link:
        remove_stale()
        self.destroy()  # a namespace of this name left by a killed run
        _ip("netns", "add", self.name)
        _ip("link", "add", self.host_end, "type", "veth", "peer", "name", self.peer_end,
            "netns", self.name)
        _ip("addr", "add", f"{self.host_address}/{self.prefix}", "dev", self.host_end)
        _ip("link", "set", self.host_end, "up")
        _ip("-n", self.name, "addr", "add", f"{self.peer_address}/{self.prefix}",
            "dev", self.peer_end)
        _ip("-n", self.name, "link", "set", "lo", "up")
        _ip("-n", self.name, "link", "set", self.peer_end, "up")
        return self

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` as a command that runs inside the namespace. Stop such processes before
    `destroy()`: a namespace lives on while a process is in it."""
        return ["ip", "netns", "exec", self.name, *argv]

    def down(self) -> None:
        """Cut the namespace off: its end of the pair down, nothing sent or received on it."""
        _ip("-n", self.name, "link", "set", self.peer_end, "down")

    def destroy(self) -> None:
        """Remove the namespace (its end of the pair goes with it) and the host's end."""
        _remove(self.name)

    def __enter__(self) -> Link:
        try:
            return self.create()
        except BaseException:
            self.destroy()
            raise

    def __exit__(self, *exc: object) -> None:
        self.destroy()
