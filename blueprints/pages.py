"""Server-rendered pages: `/`, a playground that streams the demo model over every transport."""

from __future__ import annotations

from flask import Blueprint, render_template

from generation.params import DELAY_MS_DEFAULT, TEXT_MAX_CHARS, TOKENS_DEFAULT, TOKENS_MAX

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    return render_template("chat.html", tokens=TOKENS_DEFAULT, tokens_max=TOKENS_MAX,
                           delay_ms=DELAY_MS_DEFAULT, prompt_max=TEXT_MAX_CHARS)
