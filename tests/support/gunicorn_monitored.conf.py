"""gunicorn.conf.py exactly, plus the CPU check of gevent's blocking reports in every worker.

The configuration test servers run (testbed/live_server.py): the real settings, and
tests/support/blocking_monitor.py subscribed in each
worker before its hub starts the monitor thread.
"""

from pathlib import Path

_REAL = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"
exec(compile(_REAL.read_text(), str(_REAL), "exec"))

_real_post_fork = globals()["post_fork"]


def post_fork(server, worker):
    _real_post_fork(server, worker)
    from tests.support.blocking_monitor import install

    install()
