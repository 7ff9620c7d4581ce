"""The playground page in a real browser (Playwright driving Debian's Chromium) against the
real server: every transport shows the demo model's text as it streams, and Stop stops it."""

from __future__ import annotations

import os
import shutil

import pytest

from generation import demo_model
from tests.clients import metric, wait_until

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TRANSPORTS = ["eventsource", "fetch-sse", "fetch-ndjson", "fetch-text", "websocket"]
# What the machine's closed network needs: no background calls home, no sandbox as root.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail("REQUIRE_BROWSER=1 but no chromium on PATH")
        pytest.skip("no chromium on PATH (CI installs it and sets REQUIRE_BROWSER=1)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(base_url=server.url)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    yield page
    context.close()
    assert errors == []


def start(page, transport: str, prompt: str, tokens: int, delay_ms: int) -> None:
    page.goto("/")
    page.fill("textarea[name=prompt]", prompt)
    page.fill("input[name=tokens]", str(tokens))
    page.fill("input[name=delay_ms]", str(delay_ms))
    page.select_option("select[name=transport]", transport)
    page.click("#start")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_transport_shows_the_whole_answer(page, transport):
    start(page, transport, "browser 流式", 40, 5)
    page.wait_for_function("document.getElementById('status').textContent.startsWith('done')",
                           timeout=15_000)
    assert page.text_content("#status") == "done: stop"
    assert page.text_content("#output") == demo_model.complete("browser 流式", 40)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_stop_ends_the_stream_midway_and_the_server_lets_go(page, server, transport):
    label = "ws" if transport == "websocket" else transport.split("-")[-1]
    label = "sse" if label == "eventsource" else label
    baseline = metric(server.url, "streams_active", transport=label)
    start(page, transport, "stop me", 200, 100)
    page.wait_for_function("Number(document.getElementById('count').textContent) >= 3",
                           timeout=15_000)
    page.click("#stop")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('done')",
                           timeout=5_000)
    assert page.text_content("#status") == "done: cancelled"
    received = int(page.text_content("#count"))
    assert 3 <= received < 200
    wait_until(lambda: metric(server.url, "streams_active", transport=label) == baseline,
               timeout=2.0)


def test_page_passes_urls_through_data_attributes(page):
    page.goto("/")
    form = page.locator("#chat-form")
    assert form.get_attribute("data-sse-url") == "/sse/chat"
    assert form.get_attribute("data-ws-url").endswith("/ws/chat")  # ws:// or wss://
    assert page.locator("script:not([src])").count() == 0


def test_a_bad_request_shows_the_server_message(page):
    start(page, "fetch-ndjson", "x", 20_000, 5)  # past the 10000-token limit
    page.wait_for_function("document.getElementById('status').textContent.startsWith('error')",
                           timeout=5_000)
    assert "tokens" in page.text_content("#status")
