"""Browser fixtures: Debian's Chromium driven by Playwright against the real server.

`browser` is one Chromium per module; `page` is a fresh context (its own cookies, storage
and connection pool) whose console errors and uncaught exceptions fail the test, except what a
test allows by pattern (a stream it cut on purpose is logged as a network error). `screenshot`
saves a page into SCREENSHOT_DIR when it is set (`make screenshots` and CI point it at
docs/screenshots), so a local `make test` leaves the committed images alone.

Pages send a Content-Security-Policy without 'unsafe-eval', so tests wait with `expect(...)`
locators, never `page.wait_for_function` (Playwright evaluates its predicate as a string).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# What the machine's closed network needs: no background calls home, no sandbox as root.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--autoplay-policy=no-user-gesture-required"]
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
SCREENSHOT_DIR = os.environ.get("SCREENSHOT_DIR")


@pytest.fixture(scope="module")
def browser():
    """Per module, not per session: Playwright's sync API runs an asyncio loop in the main
    thread while it is started, and any later test's `asyncio.run` would fail under it."""
    if CHROMIUM is None:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail("REQUIRE_BROWSER=1 but no chromium on PATH")
        pytest.skip("no chromium on PATH (CI installs it and sets REQUIRE_BROWSER=1)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    if asyncio.events._get_running_loop() is not None:
        pytest.fail("Playwright left an asyncio loop running in the main thread")


class ConsoleErrors:
    """Console errors and uncaught exceptions of a page, minus what the test allowed."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._allowed: list[re.Pattern[str]] = []

    def allow(self, pattern: str) -> None:
        self._allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [text for text in self.seen if not any(p.search(text) for p in self._allowed)]


def open_page(browser, base_url: str, errors: ConsoleErrors, viewport: dict | None = None):
    """A page in a context of its own, reporting its console errors into `errors`."""
    context = browser.new_context(base_url=base_url, viewport=viewport or DESKTOP)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("pageerror", lambda error: errors.seen.append(f"uncaught: {error}"))
    page.on("console", lambda message: message.type == "error" and errors.seen.append(
        f"console: {message.text} at {message.location.get('url')}"))
    return page


@pytest.fixture
def console() -> ConsoleErrors:
    return ConsoleErrors()


@pytest.fixture
def page(browser, server, console) -> Iterator:
    page = open_page(browser, server.url, console)
    yield page
    page.context.close()
    assert console.unexpected() == []


def screenshot(page, name: str) -> None:
    """Saves the whole page as SCREENSHOT_DIR/<name>.png, when SCREENSHOT_DIR is set."""
    image = page.screenshot(full_page=True, animations="disabled", caret="hide")
    assert image.startswith(b"\x89PNG")
    if SCREENSHOT_DIR:
        directory = Path(SCREENSHOT_DIR)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{name}.png").write_bytes(image)
