"""An app that imports ssl-using code at import time: with preload_app the master imports it
before the worker can patch, which gunicorn.conf.py must turn into a failed boot."""

import urllib3  # noqa: F401  (imported for its side effect: binding ssl names unpatched)

from wsgi import app  # noqa: F401
