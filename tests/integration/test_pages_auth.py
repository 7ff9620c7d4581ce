"""The pages in a real browser against a real server with auth on (AUTH_SECRET): every page
asks for a token once and sends it, a token that expires mid-stream or is refused is asked for
again and the stream carries on with the new one, a 403 shows the server's message. With auth
off (the shared `server`) no field is shown and no request carries a token.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

import auth
from app import create_app
from generation import demo_model
from tests.integration.test_pages import finished, start_chat, tokens_shown
from tests.support.browser import ConsoleErrors, open_page, screenshot

SECRET = "pages-auth-test-secret-of-at-least-32-bytes"
ASK = re.compile(r"needs an access token")
ASK_AGAIN = re.compile(r"expired or was refused: paste a new one")
# Transports that resume after a new token (plain text has no ids to resume from).
RESUMING = ["generation", "eventsource", "fetch-sse", "fetch-ndjson", "websocket"]
TRANSPORTS = [*RESUMING, "fetch-text"]
# What Chromium logs for every 4xx it fetched, in the tests that present a refused token.
REFUSED = r"status of 40[13] \((UNAUTHORIZED|FORBIDDEN)\)"


def chat_token(ttl: float = 600, scope: tuple[str, ...] = (auth.CHAT, auth.TASKS)) -> str:
    """A token for the chat page's streams (a generation is started as a task); its `exp` is
    `ttl` seconds from now or up to one less (whole seconds)."""
    return auth.mint_token(SECRET, sub="reader", scope=scope, ttl=ttl)


@pytest.fixture(scope="module")
def auth_server(start_server):
    # A short `retry`: a fetch reader that got its new token reconnects after it.
    return start_server(env={"AUTH_SECRET": SECRET, "HEARTBEAT_SECONDS": "1",
                             "SSE_RETRY_MS": "300"})


@pytest.fixture
def auth_console() -> ConsoleErrors:
    return ConsoleErrors()


@pytest.fixture
def auth_page(browser, auth_server, auth_console):
    page = open_page(browser, auth_server.url, auth_console)
    yield page
    page.context.close()
    assert auth_console.unexpected() == []


def paste_token(page, token: str) -> None:
    page.fill("#token-form input[name=token]", token)
    page.click("#token-form button[type=submit]")
    expect(page.locator("#token-form")).to_be_hidden()


def asked(page, message: re.Pattern[str]) -> None:
    expect(page.locator("#token-form")).to_be_visible()
    expect(page.locator("#token-form .token-message")).to_have_text(message)


def test_the_page_asks_for_a_token_once_and_keeps_it_for_the_tab(auth_page):
    auth_page.goto("/chat")
    assert auth_page.get_attribute("body", "data-auth") == "on"
    asked(auth_page, ASK)
    expect(auth_page.locator("#token-form input[name=token]")).to_be_focused()
    paste_token(auth_page, chat_token())
    for path in ("/tasks", "/chat"):
        auth_page.goto(path)
        expect(auth_page.locator("h1")).to_have_count(1)
        expect(auth_page.locator("#token-form")).to_be_hidden()


def test_a_token_that_is_not_a_jwt_or_already_expired_is_not_taken(auth_page):
    auth_page.goto("/chat")
    auth_page.fill("#token-form input[name=token]", "not a token")
    auth_page.click("#token-form button[type=submit]")
    asked(auth_page, re.compile("not a token"))
    auth_page.fill("#token-form input[name=token]", chat_token(ttl=-60))
    auth_page.click("#token-form button[type=submit]")
    asked(auth_page, re.compile("already expired"))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_transport_streams_with_the_token(auth_page, transport):
    auth_page.goto("/chat")
    paste_token(auth_page, chat_token())
    prompt, tokens = "with a token", 20
    start_chat(auth_page, transport, prompt, tokens, 10)
    assert finished(auth_page) == "done: stop"
    assert auth_page.text_content("#output") == demo_model.complete(prompt, tokens)


def test_a_run_started_before_the_token_waits_for_it(auth_page):
    prompt, tokens = "waiting", 10
    start_chat(auth_page, "eventsource", prompt, tokens, 10)
    asked(auth_page, ASK)
    assert auth_page.text_content("#status") == "connecting"
    paste_token(auth_page, chat_token())
    assert finished(auth_page) == "done: stop"
    assert auth_page.text_content("#output") == demo_model.complete(prompt, tokens)


@pytest.mark.parametrize("transport", RESUMING)
def test_an_expired_token_is_asked_for_again_and_the_stream_carries_on(auth_page, transport):
    auth_page.goto("/chat")
    # The token lives 4-5 s, the stream 8 s: a loaded machine still shows tokens before it ends.
    paste_token(auth_page, chat_token(ttl=5))
    prompt, tokens = "expire midway 流式", 100
    start_chat(auth_page, transport, prompt, tokens, 80)
    asked(auth_page, ASK_AGAIN)
    expect(auth_page.locator("#status")).to_have_text("waiting for a new token")
    before = tokens_shown(auth_page)
    assert 0 < before < tokens
    assert auth_page.evaluate("() => sessionStorage.getItem('stream.token')") is None
    if transport == "eventsource":
        screenshot(auth_page, "chat-token-expired")
    paste_token(auth_page, chat_token())
    assert finished(auth_page, 30_000) == "done: stop"
    assert auth_page.text_content("#output") == demo_model.complete(prompt, tokens)
    assert tokens_shown(auth_page) == tokens  # each token once: resumed from the last id


def test_a_refused_token_is_asked_for_again_and_the_request_goes_with_the_new_one(
        auth_page, auth_console):
    auth_console.allow(REFUSED)
    auth_page.goto("/chat")
    foreign = auth.mint_token("another-secret-that-is-at-least-32-bytes", scope=[auth.CHAT])
    paste_token(auth_page, foreign)
    prompt, tokens = "refused first", 10
    start_chat(auth_page, "fetch-ndjson", prompt, tokens, 10)
    asked(auth_page, ASK_AGAIN)
    paste_token(auth_page, chat_token())
    assert finished(auth_page) == "done: stop"
    assert auth_page.text_content("#output") == demo_model.complete(prompt, tokens)


@pytest.mark.parametrize(("transport", "scope", "missing"), [
    ("fetch-ndjson", auth.TASKS, auth.CHAT),
    ("fetch-sse", auth.TASKS, auth.CHAT),
    ("generation", auth.CHAT, auth.TASKS),
])
def test_a_token_without_the_scope_shows_the_servers_message(auth_page, auth_console,
                                                             transport, scope, missing):
    auth_console.allow(REFUSED)
    auth_page.goto("/chat")
    paste_token(auth_page, chat_token(scope=(scope,)))
    start_chat(auth_page, transport, "not mine", 10, 10)
    assert finished(auth_page) == f"error: the token's scope does not include {missing}"
    expect(auth_page.locator("#token-form")).to_be_hidden()  # not a token problem: kept


def channel_token(channel: str, ttl: float = 600) -> str:
    return auth.mint_token(SECRET, sub="reader", subscribe=[channel], publish=[channel], ttl=ttl)


def subscribe(page, channel: str) -> None:
    page.fill("#subscribe-form input[name=channel]", channel)
    page.click("#subscribe")
    expect(page.locator("#status")).to_have_text(f"subscribed to {channel}")


def publish(page, text: str) -> None:
    page.fill("#publish-form textarea[name=data]", f'{{"text": "{text}"}}')
    page.click("#publish")
    expect(page.locator("#publish-result")).to_have_text(re.compile("^Published"))


def test_the_channels_page_subscribes_and_publishes_with_the_token(auth_page):
    auth_page.goto("/channels")
    asked(auth_page, ASK)
    paste_token(auth_page, channel_token("private"))
    subscribe(auth_page, "private")
    publish(auth_page, "for token holders")
    expect(auth_page.locator("#events .data").first).to_contain_text("for token holders")


def test_a_subscription_whose_token_expires_resumes_with_the_new_one(auth_page):
    auth_page.goto("/channels")
    paste_token(auth_page, channel_token("expiring", ttl=3))
    subscribe(auth_page, "expiring")
    publish(auth_page, "before")
    expect(auth_page.locator("#events .data")).to_have_count(1)
    asked(auth_page, ASK_AGAIN)
    expect(auth_page.locator("#status")).to_have_text("waiting for a new token")
    paste_token(auth_page, channel_token("expiring"))
    expect(auth_page.locator("#status")).to_have_text("subscribed to expiring")
    publish(auth_page, "after")
    expect(auth_page.locator("#events .data").first).to_contain_text("after")
    expect(auth_page.locator("#events .data")).to_have_count(2)  # nothing missed or repeated


def test_with_auth_off_there_is_no_field_and_no_request_carries_a_token(page):
    requests, sockets = [], []
    page.on("request", lambda request: requests.append(request))
    page.on("websocket", lambda socket: sockets.append(socket.url))
    page.goto("/chat")
    assert page.get_attribute("body", "data-auth") == "off"
    expect(page.locator("#token-form")).to_have_count(0)
    for transport in ("generation", "eventsource", "fetch-ndjson", "websocket"):
        start_chat(page, transport, "no token", 5, 0)
        assert finished(page) == "done: stop"
    streams = [request for request in requests if re.search(r"/(sse|api)/", request.url)]
    assert len(streams) >= 4 and len(sockets) == 1
    for url in [request.url for request in streams] + sockets:
        assert "access_token" not in url
    for request in streams:
        assert "authorization" not in request.all_headers()


@pytest.mark.parametrize("path", ["/", "/chat", "/tts", "/tasks", "/logs", "/channels", "/proxy"])
def test_every_page_says_auth_is_on_and_has_the_field_and_its_script(path):
    html = create_app({"TESTING": True, "AUTH_SECRET": SECRET}).test_client().get(path).text
    assert '<body data-auth="on">' in html
    assert re.search(r'<form id="token-form"[^>]* hidden', html)
    assert 'src="/static/js/token-field.js"' in html


def test_with_auth_off_the_page_has_neither_the_field_nor_its_script(client):
    html = client.get("/chat").text
    assert '<body data-auth="off">' in html
    assert "token-form" not in html and "token-field.js" not in html
