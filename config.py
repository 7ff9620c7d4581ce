"""Every setting the service reads from the environment, in one place.

`load()` turns `os.environ` into a dict for `app.config`; `gunicorn.conf.py` reads the server
settings through `server_settings()`. This module imports nothing of the app, so the gunicorn
master can read it before any worker is forked and monkey-patched.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit


class ConfigError(ValueError):
    """A setting holds a value that cannot be used; the message names the key and the value."""


# ASCII only: int() and float() also take full-width digits, underscores and surrounding spaces.
_INTEGER = re.compile(r"-?[0-9]+")
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def _int(minimum: int) -> Callable[[str, str], int]:
    def parse(key: str, raw: str) -> int:
        if not _INTEGER.fullmatch(raw):
            raise ConfigError(f"{key} must be an integer (ASCII digits), got {raw!r}")
        value = int(raw)
        if value < minimum:
            raise ConfigError(f"{key} must be >= {minimum}, got {raw!r}")
        return value

    return parse


def _seconds(key: str, raw: str) -> float:
    if not _NUMBER.fullmatch(raw):
        raise ConfigError(f"{key} must be a number of seconds (ASCII digits), got {raw!r}")
    value = float(raw)
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{key} must be > 0, got {raw!r}")
    return value


def _seconds_or_zero(key: str, raw: str) -> float:
    """Seconds, where 0 means "not at all" (no grace: cut at once)."""
    return 0.0 if _NUMBER.fullmatch(raw) and float(raw) == 0 else _seconds(key, raw)


def _dead_peer_seconds(key: str, raw: str) -> int:
    """Whole seconds (the kernel's keepalive timers count in them), 0 for off; at least 2 (one
    second idle, one probe out) and at most TCP_KEEPIDLE's 32767 (serving/dead_peers.py)."""
    value = _int(0)(key, raw)
    if value and not 2 <= value <= 32767:
        raise ConfigError(f"{key} must be 0 (off) or 2..32767 whole seconds, got {raw!r}")
    return value


def _choice(*allowed: str) -> Callable[[str, str], str]:
    def parse(key: str, raw: str) -> str:
        if raw not in allowed:
            raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {raw!r}")
        return raw

    return parse


def _text(key: str, raw: str) -> str:
    return raw


def _optional(parse: Callable[[str, str], Any]) -> Callable[[str, str], Any]:
    """`parse`, except that an empty value means None (no limit)."""
    def parse_optional(key: str, raw: str) -> Any:
        return None if raw == "" else parse(key, raw)

    return parse_optional


def _flag(key: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{key} must be 1 or 0 (true/false, yes/no, on/off), got {raw!r}")


def _csv(key: str, raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _origins(key: str, raw: str) -> tuple[str, ...]:
    """Origins as browsers send them (`scheme://host[:port]`, or `null`); never `*`."""
    origins = _csv(key, raw)
    for origin in origins:
        try:
            parts = urlsplit(origin)
            parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
        except ValueError:
            parts = None
        if origin != "null" and (
                parts is None or parts.scheme.lower() not in ("http", "https")
                or not parts.hostname or "*" in origin
                or parts.path not in ("", "/") or parts.query or parts.fragment):
            raise ConfigError(f"{key} must list origins like https://app.example.com "
                              f"(no wildcard, no path), got {origin!r}")
    return origins


def _base_url(key: str, raw: str) -> str:
    """An http(s) URL with a host; empty means this server's own mock."""
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        parts = None
    if raw and (parts is None or parts.scheme.lower() not in ("http", "https")
                or not parts.hostname):
        raise ConfigError(f"{key} must be an http:// or https:// URL, got {raw!r}")
    return raw


_REDIS_SCHEMES = ("redis", "rediss", "unix")
_CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
_CLUSTER_NODE = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[^\s:/@,\[\]]+):[0-9]{1,5}")


def _redis_url(key: str, raw: str) -> str:
    """Empty (the in-memory broker), one Redis (redis://, rediss://, unix://), or a Redis
    Cluster: `redis+cluster://[user:password@]host:port[,host:port...]` (`rediss+cluster://`
    with TLS), database 0 only (broker/redis_cluster.py reads it)."""
    if not raw:
        return raw
    scheme, sep, rest = raw.partition("://")
    scheme = scheme.lower()
    if sep and scheme in _CLUSTER_SCHEMES:
        netloc, _, path = rest.partition("/")
        nodes = netloc.rpartition("@")[2].split(",")
        if (path.strip("/") in ("", "0") and "?" not in rest
                and all(_CLUSTER_NODE.fullmatch(node) and 0 < int(node.rpartition(":")[2])
                        < 65536 for node in nodes)):
            return raw
        raise ConfigError(f"{key} must name a cluster as {scheme}://host:port[,host:port...] "
                          f"(database 0, no options), got {_without_password(raw)!r}")
    if sep and scheme in _REDIS_SCHEMES:
        return raw
    raise ConfigError(f"{key} must be a redis://, rediss://, unix://, redis+cluster:// or "
                      f"rediss+cluster:// URL, got {_without_password(raw)!r}")


def _without_password(url: str) -> str:
    """`url` with the password of its user part replaced, for an error message."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, _ = rest.partition("/")[0].rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.partition(":")[0]
    return f"{scheme}{sep}{user}:***@{rest[len(userinfo) + 1:]}"


_UPSTREAM_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_UPSTREAM_MEMBERS = {"name", "base_url", "api_key"}


def _upstreams(key: str, raw: str) -> tuple[dict[str, str], ...]:
    """A JSON list of `{"name", "base_url"[, "api_key"]}`, in the order they are tried; empty
    means the one upstream of UPSTREAM_BASE_URL. Errors never quote an api_key."""
    if not raw:
        return ()
    try:
        entries = json.loads(raw)
    except json.JSONDecodeError as exc:  # says where, never what stood there (a key, maybe)
        raise ConfigError(f"{key} must be a JSON list: {exc.msg} at character {exc.pos}"
                          ) from None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{key} must be a JSON list of one upstream or more")
    upstreams = tuple(_upstream(f"{key}[{index}]", entry) for index, entry in enumerate(entries))
    names = [upstream["name"] for upstream in upstreams]
    if len(set(names)) < len(names):
        raise ConfigError(f"{key} must name each upstream once, got {names!r}")
    return upstreams


def _upstream(key: str, entry: Any) -> dict[str, str]:
    if not isinstance(entry, dict):
        raise ConfigError(f"{key} must be an object with name, base_url and optional api_key")
    unknown = sorted(set(entry) - _UPSTREAM_MEMBERS)
    if unknown:
        raise ConfigError(f"{key} has unknown members {unknown!r} (known: name, base_url, "
                          f"api_key)")
    name, base_url, api_key = entry.get("name"), entry.get("base_url"), entry.get("api_key", "")
    if not isinstance(name, str) or not _UPSTREAM_NAME.fullmatch(name):
        shown = repr(name) if isinstance(name, str) else "no string"
        raise ConfigError(f"{key}.name must be 1 to 64 of A-Z a-z 0-9 _ . -, got {shown}")
    if not isinstance(base_url, str) or not base_url:
        raise ConfigError(f"{key}.base_url must be an http:// or https:// URL")
    if not isinstance(api_key, str):
        raise ConfigError(f"{key}.api_key must be a string")
    return {"name": name, "base_url": _base_url(f"{key}.base_url", base_url),
            "api_key": api_key}


def _networks(key: str, raw: str) -> tuple[str, ...]:
    entries = _csv(key, raw)
    for entry in entries:
        try:
            if entry != "*":
                ipaddress.ip_network(entry)  # strict, as gunicorn checks it: no host bits
        except ValueError:
            raise ConfigError(f"{key} must list IP addresses or networks, or *, "
                              f"got {raw!r}") from None
    return entries


AUTH_SECRET_MIN_BYTES = 32
"""RFC 7518 3.2: an HS256 key as long as the hash at least."""


def _auth_secret(key: str, raw: str) -> str:
    if raw and len(raw.encode()) < AUTH_SECRET_MIN_BYTES:
        raise ConfigError(f"{key} must be at least {AUTH_SECRET_MIN_BYTES} bytes long "
                          f"(RFC 7518 3.2), got {len(raw.encode())}")
    return raw


def _public_key(key: str, raw: str) -> Any:
    """A PEM public key (RSA, or EC on P-256), given as its text or a file's path; None if empty."""
    if not raw:
        return None
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    text = raw
    if "-----BEGIN" not in raw:
        try:
            with open(raw, encoding="ascii") as file:
                text = file.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{key} must be a PEM public key or a PEM file's path; "
                              f"{raw!r} cannot be read: {exc.strerror or exc}") from None
    try:
        public = load_pem_public_key(text.encode())
    except ValueError:
        raise ConfigError(f"{key} is not a PEM public key") from None
    if not (isinstance(public, rsa.RSAPublicKey) or (
            isinstance(public, ec.EllipticCurvePublicKey)
            and isinstance(public.curve, ec.SECP256R1))):
        raise ConfigError(f"{key} must be an RSA (RS256) or P-256 EC (ES256) public key")
    return public


def _patterns(key: str, raw: str) -> tuple[str, ...]:
    """Channel patterns: names of A-Z a-z 0-9 _ . : - with `*` and `{sub}` among them."""
    patterns = _csv(key, raw)
    for pattern in patterns:
        if not re.fullmatch(r"(?:[A-Za-z0-9_.:*-]|\{sub\})+", pattern):
            raise ConfigError(f"{key} must list channel patterns such as news,orders:*, "
                              f"got {pattern!r}")
    return patterns


_KEY_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_KEY_MEMBERS = {"name", "key", "rpm", "tpm"}


def _keys_file(key: str, raw: str) -> tuple[dict[str, Any], ...]:
    """The client keys of a JSON file `{"keys": [{name, key, rpm?, tpm?}]}`; () if unset.

    Read once, here: a changed file takes effect when the workers restart (gunicorn's HUP). No
    message quotes a key, only its entry's position and name.
    """
    if not raw:
        return ()
    try:
        with open(raw, encoding="utf-8") as file:
            document = json.load(file)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{key}: {raw!r} cannot be read: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
    except ValueError as exc:
        raise ConfigError(f"{key}: {raw!r} is not JSON ({exc})") from None
    if not isinstance(document, dict) or set(document) != {"keys"} or not isinstance(
            document["keys"], list):
        raise ConfigError(f'{key}: {raw!r} must hold an object {{"keys": [...]}} and nothing else')
    entries = tuple(_key_entry(key, position, entry)
                    for position, entry in enumerate(document["keys"], 1))
    _unique(key, [entry["name"] for entry in entries], "name")
    _unique(key, [entry["key"] for entry in entries], "key")
    return entries


def _key_entry(key: str, position: int, entry: Any) -> dict[str, Any]:
    where = f"{key}: keys[{position}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be an object with name and key")
    unknown = sorted(set(entry) - _KEY_MEMBERS)
    if unknown:
        raise ConfigError(f"{where} has unknown members {unknown}; allowed: name, key, rpm, tpm")
    name = entry.get("name")
    if not isinstance(name, str) or not _KEY_NAME.fullmatch(name):
        raise ConfigError(f"{where} name must be 1 to 64 of A-Z a-z 0-9 _ . -, got {name!r}")
    if not isinstance(entry.get("key"), str) or not entry["key"]:
        raise ConfigError(f"{where} ({name}) key must be a non-empty string")
    for limit in ("rpm", "tpm"):
        value = entry.get(limit)
        if value is not None and (type(value) is not int or value < 1):
            raise ConfigError(f"{where} ({name}) {limit} must be a positive integer, "
                              f"got {value!r}")
    return {"name": name, "key": entry["key"], "rpm": entry.get("rpm"), "tpm": entry.get("tpm")}


def _unique(key: str, values: list[str], member: str) -> None:
    seen: set[str] = set()
    for position, value in enumerate(values, 1):
        if value in seen:  # the position, never the value: it may be a key
            raise ConfigError(f"{key}: keys[{position}] repeats an earlier entry's {member}")
        seen.add(value)


# name: (parser, default as the environment would spell it)
APP_SETTINGS: dict[str, tuple[Callable[[str, str], Any], str]] = {
    "HEARTBEAT_SECONDS": (_seconds, "15"),
    "SSE_RETRY_MS": (_int(0), "3000"),
    "WS_PING_SECONDS": (_seconds, "25"),
    "ALLOWED_ORIGINS": (_origins, ""),
    "UPSTREAM_BASE_URL": (_base_url, ""),
    "UPSTREAM_API_KEY": (_text, ""),
    "UPSTREAMS": (_upstreams, ""),
    "PROXY_API_KEYS": (_csv, ""),
    "PROXY_KEYS_FILE": (_keys_file, ""),
    "PROXY_ATTEMPTS": (_int(1), "2"),
    "UPSTREAM_CONNECT_TIMEOUT": (_seconds, "5"),
    "UPSTREAM_READ_TIMEOUT": (_seconds, "60"),
    "UPSTREAM_POOL_SIZE": (_int(1), "1000"),
    "PROXY_MAX_BODY": (_int(1), str(10 * 1024 * 1024)),
    "PROXY_USAGE": (_flag, "on"),
    "PROXY_KEEPALIVE_SECONDS": (_seconds_or_zero, "15"),
    "CHAT_BACKEND": (_choice("demo", "upstream"), "demo"),
    "CHAT_MODEL": (_text, "demo"),
    "GENERATION_MAX_SECONDS": (_seconds, "600"),
    "GENERATION_GRACE_SECONDS": (_seconds_or_zero, "10"),
    "GENERATION_TTL_SECONDS": (_seconds, "3600"),
    "STREAM_MAX_AGE_SECONDS": (_optional(_seconds), ""),
    "SEND_TIMEOUT_SECONDS": (_seconds, "30"),
    "MAX_STREAMS": (_optional(_int(1)), ""),
    "MAX_STREAMS_PER_CLIENT": (_optional(_int(1)), ""),
    "MAX_BODY_BYTES": (_int(1), "65536"),
    "LOG_DIR": (_text, "logs"),
    "REDIS_URL": (_redis_url, ""),
    "CHANNEL_HISTORY": (_int(1), "1000"),
    "SUBSCRIBER_QUEUE": (_int(1), "1000"),
    "FANOUT_FLUSH_MS": (_optional(_int(0)), ""),
    "PUBLISH_TOKEN": (_text, ""),
    "AUTH_SECRET": (_auth_secret, ""),
    "AUTH_PUBLIC_KEY": (_public_key, ""),
    "AUTH_AUDIENCE": (_text, ""),
    "PUBLIC_CHANNELS": (_patterns, ""),
    "TASK_LEASE_SECONDS": (_seconds, "30"),
    # Empty: one process, its own registry. gunicorn.conf.py sets one for the workers.
    "PROMETHEUS_MULTIPROC_DIR": (_text, ""),
}

SERVER_SETTINGS: dict[str, tuple[Callable[[str, str], Any], str]] = {
    "HOST": (_text, "127.0.0.1"),
    "PORT": (_int(0), "8000"),
    "WEB_CONCURRENCY": (_int(1), "1"),
    "WORKER_CONNECTIONS": (_int(1), "20000"),
    "GRACEFUL_TIMEOUT": (_int(1), "10"),
    "LOG_LEVEL": (_text, "info"),
    "MAX_REQUESTS": (_int(0), "0"),
    # Peers whose X-Forwarded-For/-Proto are believed: the reverse proxy only (gunicorn's default).
    "FORWARDED_ALLOW_IPS": (_networks, "127.0.0.1,::1"),
    "REUSE_PORT": (_flag, "1"),
    # A peer that acknowledges nothing this long is gone: its stream ends (serving/dead_peers.py).
    "DEAD_PEER_SECONDS": (_dead_peer_seconds, "45"),
}


def _read(table: Mapping[str, tuple[Callable[[str, str], Any], str]],
          environ: Mapping[str, str]) -> dict[str, Any]:
    return {key: parse(key, environ.get(key) or default)
            for key, (parse, default) in table.items()}


def load(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The application's settings, parsed; raises ConfigError naming a bad key and value."""
    return _checked(_read(APP_SETTINGS, environ))


def _checked(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings that are each valid but cannot go together."""
    if settings.get("AUTH_SECRET") and settings.get("AUTH_PUBLIC_KEY") is not None:
        raise ConfigError("set AUTH_SECRET (HS256) or AUTH_PUBLIC_KEY (RS256/ES256), not both")
    _keys_apart(settings.get("PROXY_KEYS_FILE") or (), settings.get("PROXY_API_KEYS") or ())
    if settings.get("UPSTREAMS") and (settings.get("UPSTREAM_BASE_URL")
                                      or settings.get("UPSTREAM_API_KEY")):
        raise ConfigError("set UPSTREAMS or UPSTREAM_BASE_URL/UPSTREAM_API_KEY, not both")
    return settings


def _keys_apart(file_keys: tuple[dict[str, Any], ...], listed: tuple[str, ...]) -> None:
    """No key in both PROXY_KEYS_FILE and PROXY_API_KEYS, and no file name taken by the names
    PROXY_API_KEYS' keys get by position (`key-1`, ...): counts are kept by name."""
    positional = {f"key-{position}" for position in range(1, len(listed) + 1)}
    for position, entry in enumerate(file_keys, 1):
        if entry["key"] in listed:
            raise ConfigError(f"PROXY_KEYS_FILE: keys[{position}] ({entry['name']}) holds a key "
                              "PROXY_API_KEYS lists too; give each key once")
        if entry["name"] in positional:
            raise ConfigError(f"PROXY_KEYS_FILE: keys[{position}] is named {entry['name']}, the "
                              "name of a key of PROXY_API_KEYS; choose another name")


def override(settings: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`settings` updated with `overrides` (what tests give create_app).

    A str value of a known setting goes through that setting's parser, exactly as if the
    environment held it, so a bad one raises ConfigError. Any other value (an int, float, tuple,
    bool or None a test gives) is taken as already parsed and passed through unchecked, as are
    keys this module does not know (TESTING, SOCK_SERVER_OPTIONS, ...).
    """
    merged = dict(settings)
    for key, value in overrides.items():
        known = APP_SETTINGS.get(key) or SERVER_SETTINGS.get(key)
        if known and isinstance(value, str):
            parse, default = known
            value = parse(key, value or default)
        merged[key] = value
    return _checked(merged)


def server_settings(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The settings gunicorn.conf.py needs before any worker starts."""
    return _read(SERVER_SETTINGS, environ)


def auth_on(settings: Mapping[str, Any]) -> bool:
    """Whether streams need a token: AUTH_SECRET or AUTH_PUBLIC_KEY is set."""
    return bool(settings["AUTH_SECRET"]) or settings["AUTH_PUBLIC_KEY"] is not None


def auth_warning(host: str, auth_on: bool) -> str | None:
    """What to warn about when a server reachable from other machines lets anyone watch."""
    if auth_on:
        return None
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback:
        return None
    return (f"auth is off (no AUTH_SECRET or AUTH_PUBLIC_KEY) and the server listens on {host}: "
            "anyone who can reach it may watch every channel, task, generation and log")


def broker_warning(workers: int, redis_url: str) -> str | None:
    """What to warn about when several workers would each keep their own in-memory broker."""
    if workers <= 1 or redis_url:
        return None
    return (f"{workers} workers and no REDIS_URL: each worker has its own in-memory broker, so "
            "subscribers miss what another worker publishes and tasks are known only to the "
            "worker that runs them; set REDIS_URL to share channels and tasks")
