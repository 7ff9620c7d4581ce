"""Reference "naive Flask generator" SSE app, used as the baseline in benchmarks.

This is deliberately what a typical tutorial writes: a generator wrapped in a
``Response`` with ``text/event-stream``, one ``yield`` (one chunk, one socket
write) per token, ``time.sleep`` between tokens, no disconnect watching, no
batching and no ``/metrics`` endpoint. Do not "improve" it: its job is to be
the thing the real app is compared against.

Run it the two ways the harness does::

    gunicorn -k gthread --threads 1000 -w 1 -b 127.0.0.1:PORT bench.naive_app:app
    gunicorn -k gevent -w 1 --worker-connections 20000 -b 127.0.0.1:PORT bench.naive_app:app

Under the gevent worker gunicorn monkey-patches ``time.sleep``, so the sleep
yields to other greenlets instead of blocking the worker.
"""

import json
import time

from flask import Flask, Response, request

app = Flask(__name__)

# Not part of the naive design: a gauge the harness reads to time when the generator is closed
# after a client leaves. It observes that moment without changing it.
active_streams = 0


@app.get("/metrics")
def metrics() -> Response:
    return Response(f'streams_active{{transport="sse"}} {active_streams}\n', mimetype="text/plain")


@app.get("/sse/chat")
def sse_chat() -> Response:
    prompt = request.args.get("prompt", "")
    tokens = int(request.args.get("tokens", "100"))
    delay = float(request.args.get("delay_ms", "20")) / 1000.0

    def gen():
        global active_streams
        active_streams += 1
        try:
            yield "retry: 3000\n\n"
            yield f"event: start\ndata: {json.dumps({'prompt': prompt, 'tokens': tokens})}\n\n"
            for i in range(tokens):
                # The only concession: skip sleep(0), which under gevent is a
                # hub round-trip per token and would only make the baseline slower.
                if delay:
                    time.sleep(delay)
                yield f"id: {i}\ndata:  tok{i}\n\n"
            yield 'event: end\ndata: {"finish_reason": "stop"}\n\n'
        finally:
            active_streams -= 1

    return Response(gen(), mimetype="text/event-stream")
