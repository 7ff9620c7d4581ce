"""The "naive Flask + requests" proxy the real one is compared with: what a tutorial writes.

`requests.post(stream=True)` and the body re-yielded line by line, every upstream header copied
but the ones gunicorn would choke on, no disconnect handling. Run as
`UPSTREAM=http://... gunicorn -k gevent -w 1 -b 127.0.0.1:PORT bench.naive_proxy:app`.
"""

import os

import requests
from flask import Flask, Response, request

app = Flask(__name__)
session = requests.Session()


@app.route("/v1/<path:path>", methods=["GET", "POST"])
def relay(path: str) -> Response:
    upstream = session.request(request.method, f"{os.environ['UPSTREAM']}/{path}",
                               data=request.get_data(), stream=True,
                               headers={"Content-Type": request.content_type or ""})
    lines = (line + b"\n" for line in upstream.iter_lines())
    return Response(lines, status=upstream.status_code,
                    content_type=upstream.headers.get("Content-Type"))
