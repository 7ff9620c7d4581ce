"""gunicorn.conf.py for the benchmarks, with two switches read from the environment.

- `BENCH_ACCESS_LOG=off` turns the access log off: the cost layers measure with and without it;
  `BENCH_ACCESS_LOG=gunicorn` writes it with gunicorn's own Logger instead of ours.
- `BENCH_PROFILE=PATH` runs cProfile over the worker's whole life and writes its stats to
  PATH.<pid> when the worker exits. Every greenlet of the worker is profiled (they share the
  thread the profiler hooks), and the clock is the thread's CPU time: with the wall clock, a
  greenlet switched out inside a function would charge that function all the time it waited.

Everything else is the service's own gunicorn.conf.py, executed here.
"""

import os
import runpy
from pathlib import Path

_service = runpy.run_path(str(Path(__file__).resolve().parent.parent / "gunicorn.conf.py"))
globals().update({name: value for name, value in _service.items() if not name.startswith("_")})

if os.environ.get("BENCH_ACCESS_LOG") == "off":
    accesslog = None
elif os.environ.get("BENCH_ACCESS_LOG") == "gunicorn":
    logger_class = "gunicorn.glogging.Logger"

_profile_path = os.environ.get("BENCH_PROFILE")
if _profile_path:
    _service_post_worker_init = _service.get("post_worker_init")

    def post_worker_init(worker):
        import cProfile
        import time

        if _service_post_worker_init:
            _service_post_worker_init(worker)
        worker.bench_profiler = cProfile.Profile(time.thread_time)
        worker.bench_profiler.enable()

    def worker_exit(server, worker):
        profiler = getattr(worker, "bench_profiler", None)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(f"{_profile_path}.{worker.pid}")
