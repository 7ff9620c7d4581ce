"""`GET /openapi.json`: the OpenAPI 3.1 document of the HTTP API (built in `apidoc/`)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from apidoc import document

bp = Blueprint("openapi", __name__)


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(document())
