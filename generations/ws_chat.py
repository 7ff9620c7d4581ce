"""A generation as a WebSocket session's `Generation` (`/ws/chat` with the upstream backend).

The messages are the NDJSON objects of `generation.formats.message`: `start` (with the
generation's id), `token`s, `end`, or an `error` if the model refused or failed. A connection
that dropped resumes with `{"type":"resume","generation":ID,"after":k}`; a `cancel` ends the
generation for every viewer and cuts the model off; a connection that just closes leaves it
running for its grace, waiting for that resume.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress

from generation.backends import ModelError
from generation.events import End, Token
from generation.formats import json_message
from generation.params import GenerationParams
from streaming.cancellation import Cancellation
from streaming.failure import Failure
from streaming.websocket import text_frames
from streaming.ws_session import CANCELLED

from .service import Generations, UnknownGeneration
from .view import EXPIRED, GenerationView


class WatchedGeneration:
    """A new generation of `params` (with `id_` None; `new_id` is its id, by default a new
    one), or generation `id_` resumed after token `after`, for one WebSocket connection.
    With `known` false, `id_` is answered as an id that does not exist (one the client may
    not see)."""

    __slots__ = ("_after", "_base_url", "_generations", "_known", "_new_id", "_params", "done",
                 "id", "tokens")

    def __init__(self, generations: Generations, *, params: GenerationParams | None = None,
                 base_url: str = "", id_: str | None = None, after: int = -1,
                 new_id: str | None = None, known: bool = True) -> None:
        self._generations = generations
        self._params = params
        self._base_url = base_url
        self._after = after
        self._new_id = new_id
        self._known = known
        self.id = id_
        self.tokens = after + 1  # tokens the client has, as a cancelled `end` reports them
        self.done = False  # the end (or an error) is out: a late cancel has nothing to stop

    def source(self) -> WatchedGeneration:
        return self

    def batches(self, idle: float | None,
                cancellation: Cancellation) -> Iterator[list | object]:
        try:
            view = self._view(cancellation)
        except ModelError as exc:
            self.done = True
            yield [Failure(exc.type, exc.message)]
            return
        except UnknownGeneration:
            self.done = True
            yield [EXPIRED]
            return
        if view is None:  # it had the end already
            self.done = True
            return
        yield from view.batches(idle, cancellation)

    def _view(self, cancellation: Cancellation) -> GenerationView | None:
        if self.id is not None:
            if not self._known:
                raise UnknownGeneration(self.id)
            return self._generations.watch(self.id, self._after)
        run = self._generations.start(self._params, self._base_url, graced=True,
                                      id_=self._new_id)
        self.id = run.id
        run.joined()
        # A cancel while the model has not answered yet reaches it at once; a connection that
        # closes meanwhile kills this greenlet, which leaves the run to its grace.
        cancellation.on_cancel(lambda: cancellation.reason == CANCELLED
                               and run.cancellation.cancel("cancelled"))
        try:
            refused = run.opened.get()
            if refused is not None:
                raise refused
            return self._generations.watch(run.id, None, counted=run)
        except BaseException:
            run.left()
            raise

    def frames(self, batch: list) -> bytes:
        for item in batch:
            if type(item) is Token:
                self.tokens += 1
            elif _ends(item):
                self.done = True
        return text_frames([json_message(item) for item in batch])

    def finish(self) -> bytes:
        """After a cancel: end the generation everywhere, and say so to this client."""
        if self.done or self.id is None:
            return b""
        with suppress(UnknownGeneration):
            self._generations.cancel(self.id)
        return text_frames([json_message(End("cancelled", self.tokens))])


def _ends(item: object) -> bool:
    return type(item) is End or isinstance(item, Failure) or item is EXPIRED
