"""Stream slots (MAX_STREAMS, MAX_STREAMS_PER_CLIENT): unit tests of `streaming.limits`.

The limits on a real server, over every transport, are in
tests/integration/test_limits_server.py.
"""

from __future__ import annotations

import random

import pytest

from streaming.limits import CLIENT, SERVER, StreamLimitReached, StreamSlots

# --- StreamSlots -------------------------------------------------------------------------------


def test_no_limits_when_unset():
    slots = StreamSlots()
    held = [slots.acquire("a") for _ in range(1000)]
    assert slots.open == 1000
    for slot in held:
        slot.release()
    assert slots.open == 0


def test_the_per_client_limit_refuses_that_client_only():
    slots = StreamSlots(max_per_client=2, rng=random.Random(0))
    slots.acquire("a"), slots.acquire("a")
    with pytest.raises(StreamLimitReached) as caught:
        slots.acquire("a")
    assert caught.value.scope == CLIENT
    assert 5 <= caught.value.retry_after <= 10
    slots.acquire("b")


def test_the_server_limit_refuses_everyone_and_a_release_frees_a_slot_at_once():
    slots = StreamSlots(max_streams=2)
    first, _ = slots.acquire("a"), slots.acquire("b")
    with pytest.raises(StreamLimitReached) as caught:
        slots.acquire("c")
    assert caught.value.scope == SERVER
    first.release()
    first.release()  # twice gives back one slot
    slots.acquire("c")
    assert slots.open == 2


def test_addresses_without_streams_are_forgotten():
    slots = StreamSlots(max_per_client=5)
    slot = slots.acquire("a")
    assert slots.held_by("a") == 1
    slot.release()
    assert slots.held_by("a") == 0
    assert slots._per_client == {}


@pytest.mark.parametrize("bad", [{"max_streams": 0}, {"max_per_client": -1}])
def test_limits_must_be_positive(bad):
    with pytest.raises(ValueError):
        StreamSlots(**bad)
