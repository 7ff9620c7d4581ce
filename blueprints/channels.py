"""Broadcast channels: `GET /sse/channels/<name>[?presence=1]`, `POST /api/channels/<name>`
(one event, or a batch: `{"events": [...]}`), `GET /api/channels/<name>/presence`, and the
`flask publish CHANNEL EVENT JSON` command."""

from __future__ import annotations

import hmac
import ipaddress

import click
from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from broker import BrokerUnavailable, EventFormat
from channels import Channels, DataTooLarge
from http_policy.json_body import InvalidJSON, parse_json
from http_policy.validation import InvalidParameter, flag
from services import services

from .access import auth_on, require_publish, require_subscribe
from .bodies import json_object, last_event_id
from .errors import ApiError
from .responses import encoded_sse_response

bp = Blueprint("channels", __name__, cli_group=None)

PUBLISH_BODY_LIMIT = 1024 * 1024
"""A publish's body, one event or a batch; a larger one is refused unread. Each event's data
is limited on its own (channels.MAX_DATA_BYTES)."""


def _channels() -> Channels:
    return services().channels


@bp.get("/sse/channels/<name>")
def subscribe(name: str):
    grant = require_subscribe(name)
    source = _channels().subscribe(name, last_event_id(), subject=grant.subject,
                                   presence_events=flag(request.args, "presence"))
    return encoded_sse_response(source, EventFormat)


@bp.get("/api/channels/<name>/presence")
def presence(name: str):
    require_subscribe(name)  # who is watching is for those who may watch
    return jsonify(_channels().presence(name).as_json())


@bp.post("/api/channels/<name>")
def publish(name: str):
    _authorize(name)
    request.max_content_length = PUBLISH_BODY_LIMIT
    try:
        body = json_object()
    except RequestEntityTooLarge:
        raise ApiError(413, "payload_too_large",
                       f"the request body is limited to {PUBLISH_BODY_LIMIT} bytes") from None
    try:
        if "events" in body:  # a batch: {"events": [{"event": ..., "data": ...}, ...]}
            if body.keys() != {"events"}:
                raise InvalidParameter("events", "a batch has events alone, without data or "
                                                 "event beside them")
            if not isinstance(body["events"], list):
                raise InvalidParameter("events", "events must be a list of events")
            return jsonify(ids=_channels().publish_many(name, body["events"])), 202
        if "data" not in body:
            raise InvalidParameter("data", "data is required (any JSON value)")
        event_id = _channels().publish(name, body.get("event", "message"), body["data"])
    except DataTooLarge as exc:
        raise ApiError(413, "payload_too_large", str(exc), exc.param) from None
    return jsonify(id=event_id), 202


def _authorize(channel: str) -> None:
    """Bearer PUBLISH_TOKEN (server to server), or with auth on a token whose `publish`
    covers the channel; with neither set, loopback clients only."""
    token = current_app.config["PUBLISH_TOKEN"]
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # compare_digest takes as long whatever the bytes; only the length may show.
    if token and scheme.lower() == "bearer" and hmac.compare_digest(given.encode(),
                                                                    token.encode()):
        return
    if auth_on():
        require_publish(channel)
    elif token:
        raise ApiError(401, "unauthorized", "publishing needs Authorization: Bearer <token>",
                       headers={"WWW-Authenticate": "Bearer"})
    elif not _loopback(request.remote_addr):
        raise ApiError(403, "forbidden", "without PUBLISH_TOKEN only loopback clients may publish")


def _loopback(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:  # a Unix socket, or no address at all
        return False
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback


@bp.cli.command("publish")
@click.argument("channel")
@click.argument("event")
@click.argument("data", metavar="JSON")
def publish_command(channel: str, event: str, data: str) -> None:
    """Publish EVENT with JSON data to the subscribers of CHANNEL; prints the event's id."""
    channels = _channels()
    if not channels.broker.shared:
        raise click.ClickException("REDIS_URL is not set: this command's in-memory broker "
                                   "would reach no server's subscribers")
    try:
        value = parse_json(data)
    except InvalidJSON as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="JSON") from None
    try:
        click.echo(channels.publish(channel, event, value))
    except InvalidParameter as exc:
        raise click.BadParameter(exc.message, param_hint=exc.param.upper()) from None
    except (DataTooLarge, BrokerUnavailable) as exc:
        raise click.ClickException(str(exc)) from None
