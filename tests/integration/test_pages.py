"""The pages in a real browser (Playwright driving Debian's Chromium) against the real server:
every chat transport streams and stops, a generation carries on through a reload of the page,
EventSource survives a reload of the server, the fetch reader survives a cut connection, speech
and the proxy chat arrive whole, no console errors.

The pages of the broker, task and log features are tested in test_pages_fanout.py.
"""

from __future__ import annotations

import os
import re
import signal

import pytest
import requests
from playwright.sync_api import expect

from generation import demo_model
from generation.tts import BYTES_PER_CHAR
from tests.support.browser import PHONE, ConsoleErrors, open_page, screenshot
from tests.support.clients import metric, wait_until
from tests.support.cutting_proxy import CuttingProxy

TRANSPORTS = ["generation", "eventsource", "fetch-sse", "fetch-ndjson", "fetch-text", "websocket"]
# /logs asks for the list of logs as it loads: test_pages_fanout.py covers it.
PAGES = ["/", "/chat", "/tts", "/tasks", "/channels", "/proxy"]
DONE = re.compile(r"^(done|error)")
# What Chromium logs when a stream it reads is cut, in the tests that cut one on purpose.
CUT_STREAM = r"net::ERR_(INCOMPLETE_CHUNKED_ENCODING|CONNECTION_RESET|EMPTY_RESPONSE)"


def start_chat(page, transport: str, prompt: str, tokens: int, delay_ms: int) -> None:
    page.goto("/chat")
    page.fill("textarea[name=prompt]", prompt)
    page.fill("input[name=tokens]", str(tokens))
    page.fill("input[name=delay_ms]", str(delay_ms))
    page.select_option("select[name=transport]", transport)
    page.click("#start")


def finished(page, timeout: float = 20_000) -> str:
    expect(page.locator("#status")).to_have_text(DONE, timeout=timeout)
    return page.text_content("#status")


def tokens_shown(page) -> int:
    return int(page.text_content("#count").replace(",", ""))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_transport_shows_text_growing_then_the_whole_answer(page, transport):
    prompt, tokens = "browser 流式", 40
    start_chat(page, transport, prompt, tokens, 50)
    expect(page.locator("#count")).not_to_have_text(re.compile(r"^[0-4]$"))  # 5 or more
    midway = page.text_content("#output")
    status = page.text_content("#status")
    assert status == "streaming"
    complete = demo_model.complete(prompt, tokens)
    assert midway and complete.startswith(midway) and midway != complete
    assert finished(page) == "done: stop"
    assert page.text_content("#output") == complete
    if transport == "fetch-text":  # no token boundaries: it counts chunks as they came, and
        assert 5 <= tokens_shown(page) <= tokens  # a loaded browser reads several at once
    else:
        assert tokens_shown(page) == tokens
    assert page.text_content("#ttft").endswith(" ms")
    if transport == "eventsource":
        screenshot(page, "chat")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_stop_ends_the_stream_midway_and_the_server_lets_go(page, server, transport):
    label = {"generation": "sse", "eventsource": "sse", "websocket": "ws"}.get(
        transport, transport.split("-")[-1])
    baseline = metric(server.url, "streams_active", transport=label)
    start_chat(page, transport, "stop me", 200, 100)
    expect(page.locator("#count")).not_to_have_text(re.compile(r"^[0-2]$"))  # 3 or more
    page.click("#stop")
    assert finished(page, 5_000) == "done: cancelled"
    assert 3 <= tokens_shown(page) < 200
    wait_until(lambda: metric(server.url, "streams_active", transport=label) == baseline,
               timeout=3.0)


def stored_generation(page) -> dict | None:
    return page.evaluate("() => JSON.parse(sessionStorage.getItem('chat.generation'))")


def test_the_generation_transport_is_the_default(page):
    page.goto("/chat")
    assert page.input_value("select[name=transport]") == "generation"


def test_a_generation_carries_on_through_a_reload_of_the_page(page, server):
    prompt, tokens = "reload me 流式", 60
    start_chat(page, "generation", prompt, tokens, 50)
    expect(page.locator("#count")).not_to_have_text(re.compile(r"^\d$"))  # 10 or more
    generation = stored_generation(page)["generation"]
    page.reload()
    assert page.input_value("textarea[name=prompt]") == prompt
    assert page.input_value("select[name=transport]") == "generation"
    assert finished(page, 30_000) == "done: stop"
    assert page.text_content("#output") == demo_model.complete(prompt, tokens)
    assert tokens_shown(page) == tokens  # each token appended once: no duplicate, no gap
    assert stored_generation(page) is None
    state = requests.get(server.url + generation["status_url"], timeout=5).json()
    assert state["status"] == "done" and state["tokens"] == tokens


def test_stop_cancels_the_generation_on_the_server(page, server):
    start_chat(page, "generation", "cancel me", 200, 100)
    expect(page.locator("#count")).not_to_have_text(re.compile(r"^[0-2]$"))  # 3 or more
    generation_id = stored_generation(page)["generation"]["id"]
    page.click("#stop")
    assert finished(page, 5_000) == "done: cancelled"
    assert 3 <= tokens_shown(page) < 200
    state = requests.get(f"{server.url}/api/generations/{generation_id}", timeout=5).json()
    assert state["status"] == "cancelled"
    assert stored_generation(page) is None


def test_a_stored_generation_that_expired_shows_as_expired(page, console):
    console.allow(r"status of 404 \(NOT FOUND\)")  # Chromium logs every 4xx it fetched
    page.goto("/chat")
    gone = "/api/generations/" + "0" * 32
    page.evaluate("""(gone) => sessionStorage.setItem('chat.generation', JSON.stringify({
        generation: {id: "0".repeat(32), events_url: "/sse/generations/" + "0".repeat(32),
                     status_url: gone},
        request: {prompt: "long ago", tokens: 5, delay_ms: 0}}))""", gone)
    page.reload()
    expect(page.locator("#status")).to_have_text(re.compile(r"^expired"))
    assert page.get_attribute("#status", "data-state") == "idle"
    assert page.input_value("textarea[name=prompt]") == "long ago"
    assert page.is_enabled("#start")
    assert stored_generation(page) is None


def test_chat_works_from_the_keyboard(page):
    page.goto("/chat")
    page.focus("textarea[name=prompt]")
    page.keyboard.press("Control+a")
    page.keyboard.type("keys only")
    page.keyboard.press("Tab")
    expect(page.locator("input[name=tokens]")).to_be_focused()
    page.keyboard.press("Control+a")
    page.keyboard.type("300")
    for name in ("delay_ms", "transport"):
        page.keyboard.press("Tab")
        expect(page.locator(f"[name={name}]")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#start")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#count")).not_to_have_text("0")
    page.keyboard.press("Tab")  # Start is disabled while it streams: Stop is next
    expect(page.locator("#stop")).to_be_focused()
    page.keyboard.press("Space")
    assert finished(page, 5_000) == "done: cancelled"


def test_an_eventsource_page_survives_a_server_reload(browser, start_server):
    server = start_server(env={"GRACEFUL_TIMEOUT": "1"})
    console = ConsoleErrors()
    console.allow(CUT_STREAM)  # the old worker cuts the stream when its grace period ends
    page = open_page(browser, server.url, console)
    old_workers = server.worker_pids()
    prompt, tokens = "survive a reload", 60
    start_chat(page, "eventsource", prompt, tokens, 100)
    expect(page.locator("#count")).not_to_have_text(re.compile(r"^[0-4]$"))
    os.kill(server.process.pid, signal.SIGHUP)  # gunicorn: new workers, the old ones drained
    assert finished(page, 30_000) == "done: stop"
    assert page.text_content("#output") == demo_model.complete(prompt, tokens)
    assert tokens_shown(page) == tokens  # each token appended once: no duplicate, no gap
    assert int(page.text_content("#reconnects")) >= 1, "the reload did not cut the stream"
    assert set(server.worker_pids()).isdisjoint(old_workers)
    page.context.close()
    assert console.unexpected() == []


def test_fetch_event_source_survives_a_dropped_connection(browser, server):
    proxy = CuttingProxy(server.port, marker=b"POST /api/chat", cut_after=700)
    console = ConsoleErrors()
    console.allow(CUT_STREAM)
    page = open_page(browser, proxy.url, console)
    try:
        prompt, tokens = "cut me off", 60
        start_chat(page, "fetch-sse", prompt, tokens, 40)
        assert finished(page, 30_000) == "done: stop"
        assert page.text_content("#output") == demo_model.complete(prompt, tokens)
        assert tokens_shown(page) == tokens
        assert page.text_content("#reconnects") == "1"
        first, resumed = proxy.requests
        assert b"last-event-id" not in first.lower()
        last_id = re.search(rb"(?im)^last-event-id: (\d+)\r?$", resumed)
        assert last_id is not None and 0 <= int(last_id[1]) < tokens - 1
    finally:
        page.context.close()
        proxy.stop()
    assert console.unexpected() == []


def test_speech_arrives_whole_and_is_counted(page):
    text = "Streaming speech, frame by frame."
    page.goto("/tts")
    page.fill("textarea[name=text]", text)
    page.click("#speak")
    expected = len(text) * BYTES_PER_CHAR
    assert finished(page) == f"done: stop, {expected:,} bytes"
    assert page.text_content("#bytes") == f"{expected:,}"
    assert page.text_content("#expected") == f"{expected:,}"
    screenshot(page, "tts")


def test_the_proxy_chat_shows_the_whole_answer(page):
    page.goto("/proxy")
    page.fill("input[name=max_tokens]", "25")
    for prompt, by_keyboard in (("Explain streaming in one paragraph.", False),
                                ("And in one line?", True)):
        page.fill("textarea[name=message]", prompt)
        if by_keyboard:
            page.press("textarea[name=message]", "Control+Enter")
        else:
            page.click("#send")
        assert finished(page) == "done"
        answer = page.locator(".bubble.assistant").last.text_content()
        assert answer == demo_model.complete(prompt, 25)
    assert page.text_content("#finish") == "length"
    assert page.locator(".bubble").count() == 4
    screenshot(page, "proxy")


@pytest.mark.parametrize("path", PAGES)
def test_every_page_has_the_layout_and_logs_no_error(page, path):
    page.goto(path)
    expect(page.locator("h1")).to_have_count(1)
    expect(page.locator("nav a[aria-current=page]")).to_have_count(1)
    assert page.locator("link[rel=icon]").get_attribute("href").endswith("favicon.svg")
    assert page.locator("script:not([src])").count() == 0
    for region in page.locator("[aria-live]").all():
        assert region.get_attribute("aria-live") in ("polite", "assertive")
    if path == "/":
        screenshot(page, "index")
        assert page.locator("main a").count() >= 6


def test_the_chat_page_reads_well_on_a_phone(browser, server):
    console = ConsoleErrors()
    page = open_page(browser, server.url, console, viewport=PHONE)
    start_chat(page, "websocket", "on a phone", 30, 10)
    assert finished(page) == "done: stop"
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], "the page scrolls sideways on a phone"
    screenshot(page, "chat-phone")
    page.context.close()
    assert console.unexpected() == []


def test_page_passes_urls_through_data_attributes(page):
    page.goto("/chat")
    form = page.locator("#chat-form")
    assert form.get_attribute("data-sse-url") == "/sse/chat"
    assert form.get_attribute("data-ws-url").endswith("/ws/chat")  # ws:// or wss://
    assert form.get_attribute("data-fetch-url") == "/api/chat"
    assert form.get_attribute("data-generations-url") == "/api/generations"


@pytest.mark.parametrize(("path", "form", "attribute", "url", "method"), [
    ("/channels", "subscribe-form", "data-events-url", "/sse/channels/", "GET"),
    ("/channels", "publish-form", "data-publish-url", "/api/channels/", "POST"),
    ("/logs", "log-form", "data-logs-url", "/api/logs", "GET"),
    ("/logs", "log-form", "data-events-url", "/sse/logs/", "GET"),
    ("/tasks", "task-form", "data-tasks-url", "/api/tasks", "POST"),
    ("/proxy", "proxy-form", "data-url", "/v1/chat/completions", "POST"),
])
def test_pages_pass_the_urls_of_the_real_routes(client, path, form, attribute, url, method):
    html = client.get(path).get_data(as_text=True)
    tag = re.search(rf'<form id="{form}"[^>]*>', html)[0]
    assert f'{attribute}="{url}"' in tag
    # A stem ending in "/" gets a name appended by the page's script: with one, it is a route.
    routes = client.application.url_map.bind("localhost")
    routes.match(url + "name" if url.endswith("/") else url, method=method)


def test_a_bad_request_shows_the_server_message(page, console):
    console.allow(r"status of 400 \(BAD REQUEST\)")  # Chromium logs every 4xx it fetched
    start_chat(page, "fetch-ndjson", "x", 20_000, 5)  # past the 10000-token limit
    assert finished(page, 5_000).startswith("error")
    assert "tokens" in page.text_content("#status")


@pytest.mark.parametrize("path", [*PAGES, "/logs"])
def test_pages_forbid_inline_script_and_sniffing(client, path):
    response = client.get(path)
    assert response.status_code == 200
    policy = dict(part.strip().split(" ", 1)
                  for part in response.headers["Content-Security-Policy"].split(";"))
    assert policy["script-src"] == "'self'"
    assert policy["default-src"] == "'self'"
    assert "unsafe" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    html = response.get_data(as_text=True)
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []  # no inline script at all
    assert " style=" not in html and "<style" not in html


def test_static_files_are_not_sniffed(client):
    with client.get("/static/js/fetch-event-source.js") as response:
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.mimetype == "text/javascript"
