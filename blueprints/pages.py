"""Server-rendered pages: an overview and one page per capability, on one base layout.

Pages hold no inline script: each loads its ES module from `static/js/pages/`, and the URLs
(built with `url_for` from the real endpoints) and limits it needs reach it through `data-`
attributes. Every page answer carries a
Content-Security-Policy that forbids anything else, and `nosniff` (static files too).
"""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request, url_for

from generation.params import DELAY_MS_DEFAULT, TEXT_MAX_CHARS, TOKENS_DEFAULT, TOKENS_MAX
from generation.tts import BYTES_PER_CHAR, SAMPLE_RATE

from .access import auth_on

bp = Blueprint("pages", __name__)

# (endpoint, label) in the order of the navigation.
NAVIGATION = (
    ("pages.index", "Overview"),
    ("pages.chat", "Chat"),
    ("pages.tts", "Speech"),
    ("pages.tasks", "Tasks"),
    ("pages.logs", "Logs"),
    ("pages.channels", "Channels"),
    ("pages.proxy", "Proxy"),
)

# Same-origin everything; 'self' in connect-src covers ws:/wss: to this host (CSP Level 3).
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))


def url_stem(endpoint: str, param: str = "name") -> str:
    """The URL of `endpoint` without its last segment, the `param` a page's script appends
    (percent-encoded) for the name the user picks: `/sse/channels/` for `channels.subscribe`."""
    marker = "_"
    url = url_for(endpoint, **{param: marker})
    if not url.endswith("/" + marker):
        raise ValueError(f"{param!r} is not the last segment of {endpoint}'s URL {url!r}")
    return url.removesuffix(marker)


@bp.context_processor
def _layout() -> dict:
    # Whether the scripts ask for a token and send it (static/js/token.js).
    return {"navigation": NAVIGATION, "url_stem": url_stem,
            "auth_on": auth_on()}


@bp.after_request
def _page_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.after_app_request
def _static_headers(response: Response) -> Response:
    # A module or stylesheet must be taken for what its Content-Type says, never sniffed.
    if request.endpoint == "static":
        response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/")
def index():
    return render_template("index.html")


@bp.get("/chat")
def chat():
    return render_template("chat.html", tokens=TOKENS_DEFAULT, tokens_max=TOKENS_MAX,
                           delay_ms=DELAY_MS_DEFAULT, prompt_max=TEXT_MAX_CHARS)


@bp.get("/tts")
def tts():
    return render_template("tts.html", text_max=TEXT_MAX_CHARS, sample_rate=SAMPLE_RATE,
                           bytes_per_char=BYTES_PER_CHAR)


@bp.get("/tasks")
def tasks():
    return render_template("tasks.html")


@bp.get("/logs")
def logs():
    return render_template("logs.html")


@bp.get("/channels")
def channels():
    return render_template("channels.html")


@bp.get("/proxy")
def proxy():
    return render_template("proxy.html", tokens=20, tokens_max=TOKENS_MAX)
