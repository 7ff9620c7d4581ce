"""A demo-model generation as WebSocket text frames, for `ws_session.Session`.

The messages are the NDJSON objects of `formats.message`: `start`, one `token` per token, and
`end` with `finish_reason` `stop`, or `cancelled` and the number of tokens sent so far.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

from .events import End, Start, Token
from .formats import compact_json, message
from .generation import schedule
from .params import GenerationParams
from .websocket import text_frames


def _reusable_compact_json() -> Callable[[object], str]:
    """`formats.compact_json`, with its C encoder built once rather than on every call.

    `json.dumps` with non-default options builds a new encoder per call, which costs as much as
    encoding a token message (CPython's `json.encoder.JSONEncoder.iterencode`); at 150,000
    tokens a second that is a fifth of the budget.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator: the plain function is as fast as it gets
        return compact_json
    encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)
    iterencode = make(None, encoder.default, json.encoder.encode_basestring, None,
                      encoder.key_separator, encoder.item_separator, encoder.sort_keys,
                      encoder.skipkeys, encoder.allow_nan)
    return lambda value: "".join(iterencode(value, 0))


encode_message = _reusable_compact_json()
"""Same output as `formats.compact_json`, about twice as fast."""


class ChatGeneration:
    """`params`' generation (the `schedule` of `generation.py`) as a session's `Generation`."""

    __slots__ = ("done", "params", "tokens")

    def __init__(self, params: GenerationParams) -> None:
        self.params = params
        self.tokens = 0  # tokens handed to the socket, as the cancelled `end` reports them
        self.done = False  # the `stop` end is out: a late cancel has nothing left to stop

    def items(self) -> Iterator[tuple[float, Start | Token | End]]:
        return schedule(self.params)

    def frames(self, batch: list) -> bytes:
        for item in batch:
            if type(item) is Token:
                self.tokens += 1
            elif type(item) is End:
                self.done = True
        return text_frames([encode_message(message(item)) for item in batch])

    def finish(self) -> bytes:
        if self.done:
            return b""
        return text_frames([encode_message(message(End("cancelled", self.tokens)))])
