"""The OpenAPI document: every route is in it, it is valid OpenAPI 3.1, and a property-based fuzz
run of every operation against the real server finds no 5xx, no traceback, and no rejection
outside the documented error shape (schemathesis, configured in tests/support/schemathesis.toml with
the hooks and checks of tests/support/fuzz_hooks.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import requests
import schemathesis

from apidoc import document
from testbed.live_server import ROOT

AUTOMATIC = {"HEAD", "OPTIONS"}  # Flask adds these to every GET route, and OPTIONS to all
EXAMPLES_PER_OPERATION = 25


def _openapi_path(rule: str) -> str:
    """`/static/<path:filename>` as OpenAPI writes it: `/static/{filename}`."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def test_every_route_and_method_is_documented(app):
    paths = document()["paths"]
    for rule in app.url_map.iter_rules():
        path = _openapi_path(rule.rule)
        assert path in paths, f"{rule.rule} is not in the OpenAPI document"
        for method in rule.methods - AUTOMATIC:
            assert method.lower() in paths[path], f"{method} {rule.rule} is not documented"


def test_every_documented_path_is_a_route(app):
    routes = {_openapi_path(rule.rule) for rule in app.url_map.iter_rules()}
    assert set(document()["paths"]) <= routes


def test_the_served_document_is_valid_openapi_3_1(server):
    response = requests.get(server.url + "/openapi.json", timeout=10)
    assert response.status_code == 200
    served = response.json()
    assert served["openapi"] == "3.1.0"
    # schemathesis validates the document against OpenAPI's own schema while loading it.
    operations = [result.ok() for result in
                  schemathesis.openapi.from_dict(served).get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
        "GET /sse/chat", "POST /api/chat", "GET /ws/chat", "POST /mock/v1/chat/completions",
        "POST /v1/{path}", "GET /openapi.json"}


@pytest.mark.long
@pytest.mark.timeout(600)
def test_fuzzing_every_operation_finds_no_5xx_traceback_or_stray_error_shape(start_server,
                                                                             tmp_path):
    # Channel and log streams never end by themselves: the maximum age ends each one.
    server = start_server(env={"HEARTBEAT_SECONDS": "1", "STREAM_MAX_AGE_SECONDS": "0.2"})
    command = [sys.executable, "-m", "schemathesis.cli",
               "--config-file", str(ROOT / "tests" / "support" / "schemathesis.toml"),
               "run", server.url + "/openapi.json",
               "--max-examples", str(EXAMPLES_PER_OPERATION), "--workers", "1",
               "--request-timeout", "20", "--no-color"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Run elsewhere: Hypothesis keeps its example database in the working directory.
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout[-20_000:] + run.stderr[-5_000:]
    assert re.search(r"\d+ generated, \d+ passed", run.stdout), run.stdout[-3_000:]
    # A failure after a stream started is in band (not a 5xx): the log is where it would show.
    assert "Traceback" not in server.log()
