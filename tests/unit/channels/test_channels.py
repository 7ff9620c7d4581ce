"""POST /api/channels/<name> rules, publish() from application code, `flask publish`."""

from __future__ import annotations

import pytest

import config
from app import create_app
from channels import MAX_BATCH_EVENTS, MAX_DATA_BYTES, publish, publish_many
from services import services


def post(client, name="news", body=None, **kwargs):
    return client.post(f"/api/channels/{name}", json=body if body is not None else
                       {"event": "update", "data": {"v": 1}}, **kwargs)


def test_a_publish_is_accepted_with_the_event_id(client):
    response = post(client)
    assert response.status_code == 202
    assert response.json["id"].count("-") == 1
    assert post(client, body={"data": None}).status_code == 202  # event defaults to "message"


@pytest.mark.parametrize(("name", "body", "param"), [
    ("bad name", None, "channel"),
    ("x" * 129, None, "channel"),
    ("a/b", None, None),  # not even routed to a channel: 404
    ("news", {"event": "sp ace", "data": 1}, "event"),
    ("news", {"event": "e" * 65, "data": 1}, "event"),
    ("news", {"event": 7, "data": 1}, "event"),
    ("news", {"event": "ok"}, "data"),
])
def test_bad_names_and_missing_data_are_400(client, name, body, param):
    response = post(client, name, body)
    if param is None:
        assert response.status_code == 404
        return
    assert response.status_code == 400
    assert response.json["error"]["param"] == param


def test_the_longest_names_are_accepted(client):
    assert post(client, "A-z_0.9:" * 16, {"event": "e" * 64, "data": 1}).status_code == 202


def test_a_body_that_is_not_json_is_400(client):
    response = client.post("/api/channels/news", data="{nope", content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"]["type"] == "invalid_json"
    not_json = client.post("/api/channels/news", data="x=1",
                           content_type="application/x-www-form-urlencoded")
    assert not_json.status_code == 415  # a JSON type forces a CORS preflight on browsers


def test_data_over_64_kib_is_413(client):
    at_limit = "x" * (MAX_DATA_BYTES - 2)  # the JSON string's quotes make 64 KiB exactly
    assert post(client, body={"event": "e", "data": at_limit}).status_code == 202
    over = post(client, body={"event": "e", "data": at_limit + "é"})
    assert over.status_code == 413
    assert over.json["error"]["param"] == "data"
    huge = client.post("/api/channels/news", data="[" + "1," * 600_000 + "1]",
                       content_type="application/json")
    assert huge.status_code == 413  # over the body's 1 MiB, refused unread


def batch(count: int, data=1) -> dict:
    return {"events": [{"event": f"e{i}", "data": data} for i in range(count)]}


def test_a_batch_is_published_in_order_with_its_ids(app, client):
    channels = services(app).channels
    subscription = channels.subscribe("news", None)
    assert subscription.get(0) is None  # it follows the channel now
    response = post(client, body={"events": [{"event": "a", "data": 1}, {"data": [2]}]})
    assert response.status_code == 202
    ids = response.json["ids"]
    assert len(ids) == 2 and ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    got = subscription.next_batch(1)  # one hand-over: both in one batch
    assert [(e.id, e.event, e.data) for e in got] == [(ids[0], "a", "1"),
                                                       (ids[1], "message", "[2]")]


def test_a_batch_of_the_most_events_is_accepted(client):
    response = post(client, body=batch(MAX_BATCH_EVENTS))
    assert response.status_code == 202 and len(response.json["ids"]) == MAX_BATCH_EVENTS


@pytest.mark.parametrize(("body", "param"), [
    ({"events": []}, "events"),
    (batch(MAX_BATCH_EVENTS + 1), "events"),
    ({"events": {"data": 1}}, "events"),
    ({"events": [{"data": 1}], "data": 2}, "events"),
    ({"events": [{"data": 1}, {"event": "x"}]}, "events[1].data"),
    ({"events": [{"data": 1}, 7]}, "events[1].data"),
    ({"events": [{"data": 1}, {"event": "sp ace", "data": 1}]}, "events[1].event"),
])
def test_a_bad_batch_is_400_naming_the_bad_part_and_publishes_nothing(app, client, body, param):
    broker = services(app).broker
    response = post(client, body=body)
    assert response.status_code == 400, response.json
    assert response.json["error"]["param"] == param
    assert broker.latest("channel/news") == []


def test_a_batch_event_over_64_kib_is_413_naming_it(client):
    over = "x" * MAX_DATA_BYTES
    response = post(client, body={"events": [{"data": 1}, {"data": 2}, {"data": over}]})
    assert response.status_code == 413
    assert response.json["error"] == {"type": "payload_too_large", "param": "events[2].data",
                                      "message": f"event data is limited to {MAX_DATA_BYTES} "
                                                 "bytes of JSON"}


def test_a_batch_over_1_mib_is_413(client):
    data = "x" * 60_000
    assert post(client, body=batch(17, data)).status_code == 202  # about 1,000,000 bytes
    response = post(client, body=batch(18, data))  # about 1,080,000
    assert response.status_code == 413
    assert response.json["error"]["type"] == "payload_too_large"


def test_with_a_token_publishing_needs_it_as_bearer():
    client = create_app({"TESTING": True, "PUBLISH_TOKEN": "s3cret"}).test_client()
    missing = post(client)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert post(client, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert post(client, headers={"Authorization": "Basic s3cret"}).status_code == 401
    assert post(client, headers={"Authorization": "Bearer s3cret"}).status_code == 202
    # The token is checked before anything else is looked at.
    assert post(client, "bad name").status_code == 401


@pytest.mark.parametrize(("address", "status"), [
    ("127.0.0.1", 202), ("127.9.9.9", 202), ("::1", 202), ("::ffff:127.0.0.1", 202),
    ("10.0.0.7", 403), ("::ffff:1.2.3.4", 403), ("", 403),
])
def test_without_a_token_only_loopback_clients_publish(client, address, status):
    response = post(client, environ_base={"REMOTE_ADDR": address})
    assert response.status_code == status
    if status == 403:
        assert "PUBLISH_TOKEN" in response.json["error"]["message"]


def test_publish_from_application_code_reaches_subscribers(app):
    with app.app_context():
        subscription = services(app).channels.subscribe("news", None)
        event_id = publish("news", "update", {"from": "code"})
        event = subscription.get(1)
    assert (event.id, event.event, event.data) == (event_id, "update", '{"from":"code"}')


def test_publish_many_from_application_code_returns_the_ids_in_order(app):
    with app.app_context():
        ids = publish_many("jobs", [{"event": "a", "data": 1}, {"event": "b", "data": 2}])
        assert [e.id for e in services(app).broker.latest("channel/jobs", 5)] == ids


def test_publish_outside_the_app_needs_redis(monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    from broker import environment_broker

    environment_broker.cache_clear()
    with pytest.raises(RuntimeError, match="REDIS_URL"):
        publish("news", "update", 1)


def test_the_cli_refuses_to_publish_into_its_own_memory(app):
    result = app.test_cli_runner().invoke(args=["publish", "news", "update", '{"a":1}'])
    assert result.exit_code != 0
    assert "REDIS_URL" in result.output


def test_the_cli_publishes_through_redis(redis_url):
    app = create_app({"TESTING": True, "REDIS_URL": redis_url})
    runner = app.test_cli_runner()
    result = runner.invoke(args=["publish", "news", "update", '{"a":1}'])
    assert result.exit_code == 0, result.output
    event_id = result.output.strip()
    assert services(app).broker.latest("channel/news")[-1].id == event_id
    bad = runner.invoke(args=["publish", "news", "update", "{nope"])
    assert bad.exit_code != 0 and "JSON" in bad.output
    bad_name = runner.invoke(args=["publish", "bad name", "update", "1"])
    assert bad_name.exit_code != 0 and "CHANNEL" in bad_name.output
    services(app).broker.close()


def test_settings_and_the_warning_for_workers_without_redis():
    settings = config.load({})
    assert (settings["CHANNEL_HISTORY"], settings["SUBSCRIBER_QUEUE"]) == (1000, 1000)
    assert settings["REDIS_URL"] == settings["PUBLISH_TOKEN"] == ""
    assert "REDIS_URL" in config.broker_warning(2, "")
    assert config.broker_warning(1, "") is None
    assert config.broker_warning(4, "redis://127.0.0.1") is None
