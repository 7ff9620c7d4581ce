"""Real servers on loopback, for the tests and the benchmarks alike.

The app under gunicorn (`live_server`), Redis (`redis_server`), a certificate for TLS (`tls`),
and the base of every hand-written fake server (`loopback`). Nothing here imports the app or a
feature package, and nothing imports the tests: `bench/` uses it without them.
"""
