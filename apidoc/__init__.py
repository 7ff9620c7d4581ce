"""The OpenAPI 3.1 document of the HTTP API, built from the features' own limits so that it
cannot drift from what the validators accept (`document.py`; its parts in `parts.py`)."""

from .document import document

__all__ = ["document"]
