"""The JSON text every transport writes."""

from __future__ import annotations

import json
from collections.abc import Callable


def _compact_json_encoder() -> Callable[[object], str]:
    """`json.dumps(value, ensure_ascii=False, separators=(",", ":"))`, its C encoder built once.

    `json.dumps` with non-default options builds a new encoder per call, which costs as much as
    encoding a token message (CPython's `json.encoder.JSONEncoder.iterencode`); at hundreds of
    thousands of tokens a second that is a fifth of the budget. Without the C accelerator the
    plain call is as fast as it gets.

    NaN and the infinities raise ValueError rather than go out as `NaN` or `Infinity`, which
    are not JSON: every JavaScript `JSON.parse` reading the stream would throw.
    """
    options = {"ensure_ascii": False, "separators": (",", ":"), "allow_nan": False}
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return lambda value: json.dumps(value, **options)
    encoder = json.JSONEncoder(check_circular=False, **options)
    iterencode = make(None, encoder.default, json.encoder.encode_basestring, None,
                      encoder.key_separator, encoder.item_separator, encoder.sort_keys,
                      encoder.skipkeys, encoder.allow_nan)
    return lambda value: "".join(iterencode(value, 0))


compact_json = _compact_json_encoder()
"""JSON with no spaces and UTF-8 left as is: what every transport writes (ValueError for a
non-finite float)."""
