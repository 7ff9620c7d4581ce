"""A request's stream slot: taken once per request, handed to its streaming body or given back
when the request ends (the guards install `release_unclaimed_slot` as a teardown)."""

from __future__ import annotations

from flask import g, request

from services import services
from streaming.pipeline import EventStream


def take_stream_slot() -> None:
    """Count this request as one of the worker's streams (StreamLimitReached past a limit).

    The slot is given back when the request ends, unless `claim_stream_slot` handed it to a
    streaming response, which gives it back the moment its body closes. Taking it twice in one
    request takes one slot.
    """
    if "stream_slot" not in g:
        g.stream_slot = services().slots.acquire(request.remote_addr or "")


def claim_stream_slot(body: EventStream) -> None:
    """Tie this request's slot to a streaming body: released the moment the body is closed."""
    slot = g.pop("stream_slot", None)
    if slot is not None:
        body.call_on_close(slot.release)


def release_unclaimed_slot(exc: BaseException | None = None) -> None:
    """The request ended without a streaming response taking its slot (teardown_request)."""
    slot = g.pop("stream_slot", None)
    if slot is not None:
        slot.release()
