"""OpenAI's wire shapes that the proxy itself writes: its errors and the end of an event stream.

References: OpenAI's API reference, "Error codes" (`{"error": {message, type, param, code}}`) and
"Chat Completions" streaming (`data: [DONE]` ends the stream; an error mid-stream is an event
holding the error object). This module does no I/O and knows nothing of the mock's demo model,
so the proxy depends on the wire format only.
"""

from __future__ import annotations

from streaming.encoding import compact_json
from streaming.failure import Failure
from streaming.sse import ServerSentEvent

DONE = b"data: [DONE]\n\n"
"""What ends every OpenAI event stream, after the last chunk or an error."""


class OpenAIError(Exception):
    """An error answered with `status` and OpenAI's body `{"error": {message, type, param, code}}`.

    `message` goes to the client, so it never carries a traceback or internal detail.
    """

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}


def error_event(failure: Failure) -> bytes:
    """The records that end a stream which failed after it started: an error event, then DONE.

    This is what OpenAI itself sends mid-stream; the SDKs raise it as an APIError. No
    `finish_reason` is invented: the answer did not finish.
    """
    error = OpenAIError(500, failure.message, "server_error", code=failure.type)
    return ServerSentEvent(compact_json(error.body())).encode() + DONE
