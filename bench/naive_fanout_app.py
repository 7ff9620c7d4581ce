"""Reference naive fan-out: a Flask generator per subscriber, one write per event.

What a tutorial writes for broadcast SSE: every subscriber gets a queue, the publishing view puts
each event in every queue, and each subscriber's generator yields one event per chunk. Do not
"improve" it: its job is to be the thing the real app is compared against.

    gunicorn -k gevent -w 1 --worker-connections 20000 -b 127.0.0.1:PORT bench.naive_fanout_app:app

Under the gevent worker `queue.Queue` is gevent's, so a waiting generator yields to the others.
"""

import json
import queue

from flask import Flask, Response, request

app = Flask(__name__)
subscribers: dict[str, list[queue.Queue]] = {}


@app.get("/sse/channels/<name>")
def subscribe(name: str) -> Response:
    mine: queue.Queue = queue.Queue()
    subscribers.setdefault(name, []).append(mine)

    def gen():
        try:
            yield "retry: 3000\n\n"
            while True:
                event = mine.get()
                yield f"event: {event['event']}\ndata: {json.dumps(event['data'])}\n\n"
        finally:
            subscribers[name].remove(mine)

    return Response(gen(), mimetype="text/event-stream")


@app.post("/api/channels/<name>")
def publish(name: str) -> tuple[dict, int]:
    event = request.get_json()
    for mine in subscribers.get(name, []):
        mine.put(event)
    return {"id": None}, 202
