"""A demo-model generation as WebSocket text frames, for `ws_session.Session`.

The messages are the NDJSON objects of `formats.message`: `start`, one `token` per token, and
`end` with `finish_reason` `stop`, or `cancelled` and the number of tokens sent so far. A
generation resumed after token `after` (a reconnect after close 1012) starts at the next token,
with no `start`, and counts the tokens before it as sent.
"""

from __future__ import annotations

from collections.abc import Iterator

from streaming.sources import PacedSource
from streaming.websocket import text_frames

from .events import End, Start, Token
from .formats import json_message
from .params import GenerationParams
from .schedule import schedule


class ChatGeneration:
    """`params`' generation (the `schedule` of `generation.py`) as a session's `Generation`."""

    __slots__ = ("after", "done", "params", "tokens")

    def __init__(self, params: GenerationParams, after: int | None = None) -> None:
        self.params = params
        self.after = after
        # tokens the client has, as the cancelled `end` reports them
        self.tokens = 0 if after is None else after + 1
        self.done = False  # the `stop` end is out: a late cancel has nothing left to stop

    def items(self) -> Iterator[tuple[float, Start | Token | End]]:
        return schedule(self.params, self.after)

    def source(self) -> PacedSource:
        return PacedSource(self.items())

    def frames(self, batch: list) -> bytes:
        for item in batch:
            if type(item) is Token:
                self.tokens += 1
            elif type(item) is End:
                self.done = True
        return text_frames([json_message(item) for item in batch])

    def finish(self) -> bytes:
        if self.done:
            return b""
        return text_frames([json_message(End("cancelled", self.tokens))])
