"""The services `create_app` builds from the settings, one typed object per app.

Views reach them through `services()`, so a misspelt service is an attribute error that ruff
and pyright see, not a KeyError on a request. Feature packages never import this module (it is
the app's assembly, above them); the one feature that needs the app's broker outside a view's
arguments, `broker.current_broker`, reads the `broker` attribute of what is stored here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app
from prometheus_client import CollectorRegistry

from auth import TokenVerifier, patterns
from broker import Broker, make_broker
from broker.metrics import BrokerMetrics
from channels import Channels
from generation.backends import Backend
from generation.demo_backend import DemoBackend
from generation.formats import TRANSPORTS as GENERATION_TRANSPORTS
from generations import Generations, RunLimits
from http_policy.cors import CorsPolicy
from llm.accounting import UsageRecorder
from llm.keys import ClientKeys
from llm.limit_counters import make_counter
from llm.limits import Limits
from llm.metrics import TRANSPORTS as PROXY_TRANSPORTS
from llm.upstream import Upstream
from llm.upstream_model import UpstreamBackend
from llm.upstreams import DEFAULT_UPSTREAM, Endpoint
from logtail.directory import LogDirectory
from logtail.tails import LogTails
from streaming.limits import StreamSlots
from streaming.metrics import Metrics
from streaming.shutdown import Lifetimes
from tasks import Tasks

TRANSPORTS = (*GENERATION_TRANSPORTS, *PROXY_TRANSPORTS)
"""Every stream transport the app serves; the fan-outs (channels, tasks, logs) stream as `sse`."""

EXTENSION = "services"
"""The one key of `app.extensions` the services are stored under."""


@dataclass
class Services:
    """Everything one app (so one worker) shares between its requests."""

    metrics: Metrics
    lifetimes: Lifetimes
    upstream: Upstream
    limits: Limits
    logtails: LogTails
    broker: Broker
    channels: Channels
    tasks: Tasks
    generations: Generations
    slots: StreamSlots
    cors: CorsPolicy
    usage: UsageRecorder
    tokens: TokenVerifier | None
    """None while auth is off."""

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Services:
        metrics = Metrics(TRANSPORTS, settings["PROMETHEUS_MULTIPROC_DIR"])
        broker = make_broker(settings["REDIS_URL"], settings["CHANNEL_HISTORY"],
                             settings["SUBSCRIBER_QUEUE"], settings["FANOUT_FLUSH_MS"],
                             settings["HEARTBEAT_SECONDS"])
        broker_metrics = BrokerMetrics(broker, metrics.registry)
        metrics.on_scrape(broker_metrics.write)
        broker_metrics.start()
        keys = ClientKeys.from_settings(settings)
        upstream = _upstream(settings, keys, metrics.registry)
        lifetimes = Lifetimes(settings["STREAM_MAX_AGE_SECONDS"])
        return cls(
            metrics=metrics,
            lifetimes=lifetimes,
            upstream=upstream,
            limits=Limits(keys, make_counter(settings["REDIS_URL"])),
            logtails=LogTails(LogDirectory(settings["LOG_DIR"]), registry=metrics.registry),
            broker=broker,
            channels=Channels(broker),
            tasks=Tasks(broker, settings["TASK_LEASE_SECONDS"]),
            generations=_generations(settings, broker, upstream, lifetimes),
            slots=StreamSlots(settings["MAX_STREAMS"], settings["MAX_STREAMS_PER_CLIENT"]),
            cors=CorsPolicy(settings["ALLOWED_ORIGINS"]),
            usage=UsageRecorder(metrics.registry, settings["LOG_DIR"]),
            tokens=_tokens(settings),
        )

    def init_app(self, app: Flask) -> None:
        app.extensions[EXTENSION] = self


def services(app: Flask | None = None) -> Services:
    """The services of `app`, by default the current app's."""
    return (app or current_app).extensions[EXTENSION]


def services_of(wsgi_app: object) -> Services | None:
    """The services of a WSGI app `create_app` built; None for any other app (a gunicorn hook
    may serve a bare WSGI app, as the benchmarks' layers do)."""
    return getattr(wsgi_app, "extensions", {}).get(EXTENSION)


def _tokens(settings: Mapping[str, Any]) -> TokenVerifier | None:
    """The verifier of AUTH_SECRET or AUTH_PUBLIC_KEY; None (auth off) without either."""
    key = settings["AUTH_SECRET"] or settings["AUTH_PUBLIC_KEY"]
    if not key:
        return None
    return TokenVerifier(key, audience=settings["AUTH_AUDIENCE"] or None,
                         public=patterns(list(settings["PUBLIC_CHANNELS"]), "PUBLIC_CHANNELS"))


def _upstream(settings: Mapping[str, Any], keys: ClientKeys,
              registry: CollectorRegistry) -> Upstream:
    """The proxy's upstream client, from the UPSTREAM*, PROXY_ATTEMPTS settings and the client
    keys; without UPSTREAMS, UPSTREAM_BASE_URL and UPSTREAM_API_KEY are its one upstream."""
    endpoints = [Endpoint(**entry) for entry in settings["UPSTREAMS"]] or [
        Endpoint(DEFAULT_UPSTREAM, settings["UPSTREAM_BASE_URL"], settings["UPSTREAM_API_KEY"])]
    return Upstream(endpoints=endpoints, client_keys=keys,
                    timeout=(settings["UPSTREAM_CONNECT_TIMEOUT"],
                             settings["UPSTREAM_READ_TIMEOUT"]),
                    pool_size=settings["UPSTREAM_POOL_SIZE"], attempts=settings["PROXY_ATTEMPTS"],
                    registry=registry)


def _generations(settings: Mapping[str, Any], broker: Broker, upstream: Upstream,
                 lifetimes: Lifetimes) -> Generations:
    """Generations answered by CHAT_BACKEND: the demo model, or the proxy's upstream."""
    backend: Backend = DemoBackend()
    if settings["CHAT_BACKEND"] == "upstream":
        backend = UpstreamBackend(upstream, settings["CHAT_MODEL"])
    limits = RunLimits(max_seconds=settings["GENERATION_MAX_SECONDS"],
                       ttl_seconds=settings["GENERATION_TTL_SECONDS"],
                       lease_seconds=settings["TASK_LEASE_SECONDS"])
    return Generations(broker, backend, limits, settings["GENERATION_GRACE_SECONDS"], lifetimes)
