"""schemathesis hooks and checks for the fuzz run of tests/test_openapi.py (SCHEMATHESIS_HOOKS).

Hooks keep streams short so every generated request ends: a valid `tokens`, `max_tokens` or
task `steps` is lowered to at most MAX_TOKENS and a valid `delay_ms` or `step_ms` to at most
MAX_DELAY_MS (endless streams, channels and logs, end at the server's maximum age), a missing
`delay_ms` is 0 rather than the default 50 ms, and so is the mock's (X-Mock-Delay-Ms).
Out-of-range and mistyped values are left alone: they must be rejected, and the checks see
that they are.

JSON that Python's json reads and RFC 8259 does not: schemathesis generates neither (its float
strategies are finite, it sends bodies through `json.dumps`, which cannot even write 20,000
levels), so one generated JSON object body in three gets a marker as the value of its first
field (`before_generate_body`), which `before_call` sends as 20,000 nested arrays, unclosed
ones, NaN, Infinity, -Infinity or 1e400.

Checks, besides schemathesis's own: every 4xx/5xx body is a JSON error in the documented shape
(ours or OpenAI's: an `error` object with a string `type` and `message`), no response, error or
not, carries a Python traceback, and a hostile body is a 400 saying its JSON is not valid.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from hypothesis import strategies as st

MAX_TOKENS, MAX_DELAY_MS = 20, 2
TRACEBACK_MARKERS = ("Traceback (most recent call last)", 'File "/', "werkzeug.exceptions")


def _shorter(values: dict[str, Any] | None, name: str, most: int) -> None:
    """Lower `values[name]` to `most` if it is a valid count: a JSON integer, or digits (a
    query string or header spells them)."""
    if not isinstance(values, dict) or name not in values:
        return
    value = values[name]
    if type(value) is int and value >= 0:
        values[name] = min(value, most)
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        values[name] = str(min(int(value), most))


HOSTILE_JSON = {
    "deep": "[" * 20_000 + "]" * 20_000, "unclosed": "[" * 20_000, "nan": "NaN",
    "infinity": "Infinity", "minus-infinity": "-Infinity", "overflow": "1e400",
}
HOSTILE_MARKER = "hostile-json:"
RELAYED = "/v1/{path}"  # to the mock, whose answer depends on the path


def _hostile(case) -> str | None:
    """Which HOSTILE_JSON value `case` carries, if any."""
    if isinstance(case.body, dict):
        for value in case.body.values():
            if isinstance(value, str) and value.startswith(HOSTILE_MARKER):
                return value.removeprefix(HOSTILE_MARKER)
    return None


def _with_hostile(drawn: tuple[Any, str | None]) -> Any:
    body, hostile = drawn
    if hostile is None or not isinstance(body, dict):
        return body
    return {**body, next(iter(body), "hostile"): HOSTILE_MARKER + hostile}


@schemathesis.hook
def before_generate_body(context, strategy):
    return st.tuples(strategy, st.sampled_from([None] * 12 + list(HOSTILE_JSON))).map(
        _with_hostile)


@schemathesis.hook
def before_call(context, case, kwargs) -> None:
    """Every request of every phase (the coverage phase calls no map_* hook) goes through here."""
    hostile = _hostile(case)
    if hostile is not None:  # `data` wins over the `json` schemathesis serializes
        marker = json.dumps(HOSTILE_MARKER + hostile)
        kwargs["data"] = json.dumps(case.body).replace(marker, HOSTILE_JSON[hostile]).encode()
    if isinstance(case.query, dict) and "prompt" in case.query:  # /sse/chat
        case.query.setdefault("delay_ms", "0")
    if isinstance(case.body, dict) and "prompt" in case.body and case.body.get("delay_ms") is None:
        case.body["delay_ms"] = 0  # /api/chat: absent or null is the default 50 ms
    _shorter(case.query, "tokens", MAX_TOKENS)
    _shorter(case.query, "delay_ms", MAX_DELAY_MS)
    for name in ("tokens", "max_tokens", "max_completion_tokens", "steps"):
        _shorter(case.body, name, MAX_TOKENS)
    for name in ("delay_ms", "step_ms"):
        _shorter(case.body, name, MAX_DELAY_MS)
    headers = case.headers = dict(case.headers or {})
    if "X-Mock-Delay-Ms" in headers:
        _shorter(headers, "X-Mock-Delay-Ms", MAX_DELAY_MS)
    else:
        headers["X-Mock-Delay-Ms"] = "0"


@schemathesis.check
def error_in_the_documented_shape(ctx, response, case) -> bool | None:
    if response.status_code < 400 or case.method.upper() == "HEAD":  # HEAD has no body
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"a {response.status_code} that is not JSON: "
                             f"{response.content[:200]!r}") from None
    error = body.get("error") if isinstance(body, dict) else None
    if not (isinstance(error, dict) and isinstance(error.get("type"), str)
            and isinstance(error.get("message"), str)):
        raise AssertionError(f"a {response.status_code} not in the error shape: {body!r:.200}")
    return True


@schemathesis.check
def no_traceback(ctx, response, case) -> bool | None:
    text = response.content.decode("utf-8", "replace")
    for marker in TRACEBACK_MARKERS:
        if marker in text:
            raise AssertionError(f"the response carries internal detail: {marker!r}")
    return True


@schemathesis.check
def hostile_json_is_refused(ctx, response, case) -> bool | None:
    if _hostile(case) is None or case.path == RELAYED:
        return None
    if response.status_code != 400 or "not valid JSON" not in response.text:
        raise AssertionError(f"{_hostile(case)} JSON was answered {response.status_code}: "
                             f"{response.content[:200]!r}")
    return True
