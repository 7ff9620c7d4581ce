"""gunicorn settings for long-lived streams: `gunicorn -c gunicorn.conf.py wsgi:app`.

This file runs in the master before any worker exists, so it imports nothing of the app: the
gevent worker must monkey-patch first and only then import `wsgi` (preload_app stays off).
Every value comes from config.py, which reads the environment in one place.
"""

import os
import resource
import shutil
import tempfile

from config import auth_on, auth_warning, broker_warning, load, server_settings

_server = server_settings()
# tmpfs, for the files written while streams run; None (the system default) where there is none.
_SHM = "/dev/shm" if os.path.isdir("/dev/shm") else None

bind = f"{_server['HOST']}:{_server['PORT']}"
workers = _server["WEB_CONCURRENCY"]

# One greenlet per connection: the gevent worker serves SSE, fetch streams and WebSocket
# (flask-sock takes over the socket) alike, so no other worker class or server is needed. Ours
# only answers what gunicorn's HTTP parser refuses in the API's JSON error shape (serving/).
worker_class = "serving.worker.GeventWorker"
# Each open stream is a connection; the default of 1000 would refuse the 1001st stream.
worker_connections = _server["WORKER_CONNECTIONS"]

# For the gevent worker `timeout` is how long the worker may go without telling the master it
# lives; it does so every second from its own greenlet whatever the streams do, so the default
# suffices and a stream's length is unlimited.
timeout = 30
# On SIGTERM a worker stops accepting and gives open streams this long before it cuts them. Our
# streams do not wait for it: they end within 2 s (at most GRACEFUL_TIMEOUT - 1) telling their
# clients to come back, and resume on another worker with Last-Event-ID (post_worker_init).
graceful_timeout = _server["GRACEFUL_TIMEOUT"]
# How long an idle keep-alive connection waits for its next request. Streams are not idle:
# this only bounds the gap between one request and the next on a reused connection.
keepalive = 5
# A listening socket per worker (SO_REUSEPORT), so the kernel spreads new connections evenly
# over the workers. With one shared socket every idle worker wakes on each connection and the
# first awake accepts a whole batch of a burst (gevent accepts up to 100 per wake-up), however
# busy it then is. What it costs: a worker that exits resets the connections still waiting in
# its own accept queue (the master holds no socket) unless net.ipv4.tcp_migrate_req=1.
reuse_port = _server["REUSE_PORT"]
# Connections waiting to be accepted while thousands of clients connect at once (the kernel
# caps it at net.core.somaxconn).
backlog = 4096
# Recycling a worker after MAX_REQUESTS requests (0: never) ends its streams as a restart does:
# each client is told to come back and resumes on another worker (streaming/shutdown.py). The
# jitter keeps workers started together from recycling together.
max_requests = _server["MAX_REQUESTS"]
max_requests_jitter = max_requests // 10
# The worker's heartbeat file: on tmpfs, so a busy disk never makes the master kill a worker.
worker_tmp_dir = _SHM
preload_app = False
# GET /sse/chat carries its prompt in the URL: gunicorn's largest request line (its default is
# 4094 bytes) fits more of it; a longer prompt goes in the body of POST /api/chat.
limit_request_line = 8190
accesslog = "-"
# The access log never shows keys, tokens or credentials, and costs less than gunicorn's own
# (serving/access_log.py).
logger_class = "serving.access_log.AccessLogger"
errorlog = "-"
loglevel = _server["LOG_LEVEL"]
# Only these peers (nginx) may set X-Forwarded-Proto here, and the app believes their
# X-Forwarded-For (http_policy/forwarded.py); anyone else connecting directly is taken at its word.
forwarded_allow_ips = ",".join(_server["FORWARDED_ALLOW_IPS"])
# gunicorn 27 opens a control socket at a fixed path by default; two servers on one machine
# (the proxy and its upstream in tests) would fight over it, and nothing here uses it.
control_socket_disable = True

# 10,000 streams need 10,000 descriptors; the usual soft limit is 1024.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if _hard == resource.RLIM_INFINITY or _soft < _hard:
    resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))

# prometheus_client's multiprocess mode, so /metrics covers every worker: a fresh directory per
# server unless one is given, set before the workers (which inherit the environment) start.
# prometheus_client reads the variable itself in the workers; the app reads it through config.
_metrics_dir = load()["PROMETHEUS_MULTIPROC_DIR"]
_own_metrics_dir = not _metrics_dir
if _own_metrics_dir:
    _metrics_dir = tempfile.mkdtemp(prefix="stream-metrics-", dir=_SHM)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def on_starting(server):
    # Once, in the master: workers that share no broker would each see only their own events,
    # and a server other machines reach without auth lets anyone watch anything.
    settings = load()
    for warning in (broker_warning(server.cfg.workers, settings["REDIS_URL"]),
                    auth_warning(_server["HOST"], auth_on(settings))):
        if warning:
            server.log.warning(warning)
    os.makedirs(_metrics_dir, exist_ok=True)
    for name in os.listdir(_metrics_dir):  # values left by an earlier run are not ours
        os.remove(os.path.join(_metrics_dir, name))
    _access_log_to_file(os.path.join(load()["LOG_DIR"], "access.log"))


def when_ready(server):
    # With REUSE_PORT the master holds no socket and gunicorn's own "Listening at" names none.
    host = _server["HOST"]
    host = f"[{host}]" if ":" in host else host  # an IPv6 literal in a URL is bracketed
    settings = load()
    server.log.info("Serving http://%s:%s with the %s broker", host, _server["PORT"],
                    _broker_name(settings["REDIS_URL"]))
    server.log.info("Chat answered by %s", _backend_name(settings))


def _backend_name(settings):
    """The demo model, or the upstream's model and address: never its key or credentials."""
    if settings["CHAT_BACKEND"] == "demo":
        return "the demo model"
    from urllib.parse import urlsplit

    base = settings["UPSTREAM_BASE_URL"]
    if not base:
        return f"{settings['CHAT_MODEL']!r} at this server's /mock/v1"
    parts = urlsplit(base)
    host = parts.hostname if ":" not in (parts.hostname or "") else f"[{parts.hostname}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{settings['CHAT_MODEL']!r} at {parts.scheme}://{host}{port}{parts.path}"


def _broker_name(redis_url):
    """"memory", or Redis at the URL's host:port: never its password."""
    if not redis_url:
        return "memory"
    from urllib.parse import urlsplit

    scheme, _, rest = redis_url.partition("://")
    if scheme.lower().endswith("+cluster"):  # host:port[,host:port...] after any user part
        return f"Redis Cluster ({rest.partition('/')[0].rpartition('@')[2]})"
    parts = urlsplit(redis_url)
    return f"Redis ({parts.hostname}:{parts.port or 6379})"


def _access_log_to_file(path):
    # The access log also goes to LOG_DIR/access.log, so /sse/logs has a live file to tail.
    # Opened here in the master: workers inherit it in append mode, so their lines never
    # overwrite each other. logging's FileHandler flushes every record, so each line is
    # written as its request is logged. gunicorn's USR1 reopens it like its own log files,
    # and its default access_log_format never includes the Authorization header.
    import logging

    os.makedirs(os.path.dirname(path), exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger("gunicorn.access").addHandler(handler)


def post_fork(server, worker):
    # Runs in the new worker just before gevent patches it. A late patch (a module holding
    # the unpatched ssl or socket, e.g. from preload_app) would leave a blocking socket that
    # stalls every stream of the worker: fail the boot instead of warning.
    import warnings

    from gevent.monkey import MonkeyPatchWarning

    from serving import dead_peers

    warnings.simplefilter("error", MonkeyPatchWarning)
    # Peers that vanish without a FIN or RST: set on the listeners, inherited by every accepted
    # socket (with REUSE_PORT the worker's own listeners exist by now: gunicorn's spawn_worker).
    dead_peers.apply(worker.sockets, _server["DEAD_PEER_SECONDS"])


def post_worker_init(worker):
    # The app is loaded: move everything alive now out of the collector's reach, or the first
    # burst of allocations triggers a full collection over the whole boot heap (a ~25 ms stall
    # of every stream of the worker, seen with perf).
    import gc

    _import_h2(worker.cfg)
    gc.freeze()
    # Whatever stops this worker (SIGTERM, a reload, max_requests) clears `worker.alive`: then
    # every open stream ends, staggered, with a restart notice. Not an app of ours: nothing to do.
    # Imported here, in the worker once the app is loaded: the master never imports the app.
    from services import services_of

    ours = services_of(worker.wsgi)
    if ours is not None:
        ours.lifetimes.follow(lambda: worker.alive, worker.cfg.graceful_timeout)


def _import_h2(cfg):
    # gunicorn imports its HTTP/2 stack (h2, hpack, hyperframe) inside the first h2
    # connection's greenlet: some 20 ms during which no stream of the worker moves. Import it
    # while the worker boots instead.
    if "h2" in cfg.http_protocols:
        from gunicorn.http2.connection import _import_h2 as import_stack

        import_stack()


def worker_exit(server, worker):
    # A worker that stops on purpose takes its subscriptions out of presence at once, rather
    # than leaving them to expire (a killed one's do, within 1.5 heartbeats).
    from services import services_of

    # A worker whose app failed to load has no `wsgi`: nothing of ours to close.
    ours = services_of(getattr(worker, "wsgi", None))
    if ours is not None:
        ours.broker.presence.close()


def child_exit(server, worker):
    # Imported here, in the master only when a worker has exited, never at config load.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _own_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
