"""A channel's presence: `Channels.subscribe(subject=, presence_events=)`, `Channels.presence`,
and the rules of `GET /api/channels/<name>/presence` and `?presence=` (the streams themselves
are tested against the real server, test_presence_server.py)."""

from __future__ import annotations

import pytest

from broker import Headcount, make_broker
from channels import Channels
from http_policy.validation import InvalidParameter
from tests.unit.broker.test_presence import drain, joins_and_leaves


@pytest.fixture
def channels() -> Channels:
    return Channels(make_broker("", 10, 10))


def test_subjects_of_a_channel_are_counted_and_listed(channels):
    readers = [channels.subscribe("news", None, subject=subject) for subject in ("bo", "al", None)]
    other = channels.subscribe("sport", None, subject="cy")
    for reader in [*readers, other]:
        drain(reader, 0)  # started
    assert channels.presence("news") == Headcount(3, ("al", "bo"))
    assert channels.presence("news").as_json() == {"subscribers": 3, "subjects": ["al", "bo"]}
    readers[0].close()
    assert channels.presence("news") == Headcount(2, ("al",))


def test_presence_events_reach_only_the_subscriber_that_asked(channels):
    watching = channels.subscribe("news", None, presence_events=True)
    plain = channels.subscribe("news", None)
    drain(watching, 0)
    drain(plain, 0)
    al = channels.subscribe("news", None, subject="al")
    drain(al, 0)
    al.close()
    assert joins_and_leaves(drain(watching)) == [("join", "al"), ("leave", "al")]
    assert drain(plain) == []


def test_a_bad_channel_name_is_refused(channels):
    with pytest.raises(InvalidParameter) as caught:
        channels.presence("bad name")
    assert caught.value.param == "channel"


def test_the_endpoint_answers_the_headcount(client):
    response = client.get("/api/channels/news/presence")
    assert response.status_code == 200
    assert response.json == {"subscribers": 0, "subjects": []}
    bad = client.get("/api/channels/bad%20name/presence")
    assert bad.status_code == 400 and bad.json["error"]["param"] == "channel"


@pytest.mark.parametrize("value", ["yes", "", "2", "True"])
def test_a_bad_presence_flag_is_a_400_naming_it(client, value):
    response = client.get(f"/sse/channels/news?presence={value}")
    assert response.status_code == 400
    assert response.json["error"]["type"] == "invalid_request"
    assert response.json["error"]["param"] == "presence"
