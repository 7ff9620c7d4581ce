"""gunicorn's logger, with secrets taken out of the access log.

An access log line is kept for weeks and read by many, so nothing in it may let a reader act as
a client. gunicorn's log atoms (`glogging.Logger.atoms`) would carry:

- the request line (`%(r)s`), query string (`%(q)s`) and Referer (`%(f)s`): some clients put
  keys in the URL (`?api_key=`, `?token=`). Values of query parameters with a secret's name are
  replaced by `REDACTED`;
- the Basic-auth user name (`%(u)s`), which some APIs use for the key itself: always `-`;
- every request header (`%({name}i)s`) and environ value (`%({name}e)s`) for a custom format:
  Authorization, Proxy-Authorization, Cookie, API-key headers, and the environ copies of them
  and of the URL, are redacted too, so no `access_log_format` can print them.

A secret's name: `key`, `token`, `secret`, `password`, `signature`, `auth`, `authorization`,
`credential(s)`, `session`, alone or at the end of the name (`api_key`, `apikey`,
`access_token`, `X-Api-Key`, `publish_token`), in any case, `-` and `_` alike.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_plus

from gunicorn.glogging import Logger

REDACTED = "REDACTED"
SECRET_NAME = re.compile(
    r"(key|token|secret|password|signature|auth|authorization|credentials?|session)$")
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "api-key",
                            "x-api-key"})
_PARAMETER = re.compile(r"([?&;]|^)([^=&;#\s]*)=([^&;#\s]*)")
_URL_ATOMS = ("r", "q", "f", "{raw_uri}e", "{query_string}e", "{http_referer}e",
              "{referer}i", "{path_info}e")


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(unquote_plus(name).lower().replace("-", "_")))


def redact_query(text: str) -> str:
    """`text` (a URL, a request line or a query string) with secret parameters' values redacted."""
    def replace(match: re.Match) -> str:
        separator, name, value = match.groups()
        return f"{separator}{name}={REDACTED if is_secret_name(name) and value else value}"

    return _PARAMETER.sub(replace, text)


def _header_of(atom: str) -> str | None:
    """The request header an atom carries: `{x-api-key}i`, or its environ copy
    `{http_x_api_key}e`."""
    if atom.endswith("}i"):
        return atom[1:-2]
    if atom.startswith("{http_") and atom.endswith("}e"):
        return atom[6:-2].replace("_", "-")
    return None


def redact_atoms(atoms: dict[str, Any]) -> dict[str, Any]:
    """gunicorn's access-log atoms with every secret they could carry redacted, in place."""
    atoms["u"] = "-"
    for key in atoms:
        if _header_of(key) in SECRET_HEADERS:
            atoms[key] = REDACTED
    for key in _URL_ATOMS:
        if isinstance(atoms.get(key), str):
            atoms[key] = redact_query(atoms[key])
    return atoms


class RedactingLogger(Logger):
    """gunicorn's Logger whose access log never shows keys, tokens or credentials."""

    def atoms(self, resp: Any, req: Any, environ: dict, request_time: Any) -> dict[str, Any]:
        return redact_atoms(super().atoms(resp, req, environ, request_time))
