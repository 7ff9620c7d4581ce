"""A real browser (the `browser` fixture of tests/support/browser.py) reading a stream across
origins: allowed from an origin listed in ALLOWED_ORIGINS, refused from any other."""

from __future__ import annotations

import json

FETCH = """async (url) => {
    try {
        const response = await fetch(url, {method: "POST",
            headers: {"Content-Type": "application/json", "Accept": "application/x-ndjson"},
            body: JSON.stringify({prompt: "browser cors", tokens: 5, delay_ms: 0})});
        return {status: response.status, body: await response.text()};
    } catch (error) {
        return {error: String(error)};
    }
}"""


def test_a_browser_reads_a_json_post_stream_only_from_a_listed_origin(browser,
                                                                     start_server, server):
    api = start_server(env={"ALLOWED_ORIGINS": server.url})  # the page's origin, another port
    context = browser.new_context()
    try:
        page = context.new_page()
        # A page of that origin without the playground's Content-Security-Policy, which allows
        # connections to its own origin only.
        page.goto(server.url + "/healthz")
        result = page.evaluate(FETCH, api.url + "/api/chat")
        assert result.get("status") == 200, result
        lines = [json.loads(line) for line in result["body"].splitlines() if line]
        assert [line["type"] for line in lines] == ["start"] + ["token"] * 5 + ["end"]
        page.goto(api.url + "/healthz")  # the API's own origin: listed nowhere in `server`
        refused = page.evaluate(FETCH, server.url + "/api/chat")
        assert "error" in refused and "Failed to fetch" in refused["error"], refused
    finally:
        context.close()
