"""Every template is compiled when the app is built, never on a page's first view."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import create_app

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


@pytest.fixture
def built_app(monkeypatch):
    """An app whose template loader fails once create_app has returned."""
    app = create_app({"TESTING": True})

    def no_loading(environment, name):
        raise AssertionError(f"{name} was loaded after create_app")

    monkeypatch.setattr(type(app.jinja_env.loader), "get_source", no_loading)
    return app


@pytest.mark.parametrize("name", sorted(p.name for p in TEMPLATES.glob("*.html")))
def test_each_template_is_compiled_by_create_app(built_app, name):
    assert built_app.jinja_env.get_template(name).name == name


def test_the_chat_page_renders_without_loading_a_template(built_app):
    response = built_app.test_client().get("/chat")
    assert response.status_code == 200
    assert b"<html" in response.data
