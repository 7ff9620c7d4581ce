"""Server-sent events: an encoder for event values and an incremental parser.

Both halves follow the WHATWG HTML standard, section "Server-sent events"
(https://html.spec.whatwg.org/multipage/server-sent-events.html). This module does no I/O.

Encoding (``ServerSentEvent``):

* Field order: comment lines, ``event``, ``id``, ``retry``, then data; every event ends
  with one blank line. Lines end with LF.
* Data is split on CRLF, lone CR and lone LF (CRLF is one line break) and each piece is
  written as ``data: `` + piece. The space is always written, because the parser strips
  exactly one space after the colon: a token such as ``" hello"`` survives the round trip.
  Which line break was used cannot survive it: a parser joins data lines with LF.
* ``id`` and ``event`` may not contain CR, LF or NUL: CR/LF would let a value inject
  fields or events, and a parser ignores an ``id`` containing NUL.

Parsing (``SSEParser``), "Interpreting an event stream":

* UTF-8 with invalid bytes replaced by U+FFFD; one BOM is stripped at the very start of
  the stream only.
* Lines end with CRLF, lone CR or lone LF. Lines starting with ``:`` are comments. The
  field name is what precedes the first colon (the whole line if there is none) and one
  leading space is removed from the value. ``event`` sets the type, ``data`` appends a
  line, ``id`` sets the last event id unless it contains NUL, ``retry`` sets the
  reconnection time if it is ASCII digits only; other fields are ignored.
* A blank line dispatches: the last event id is committed, and an event is produced only
  if some data line was seen. An incomplete event at the end of the stream is discarded.

Deliberate choices:

1. A comment containing line breaks is written as several comment lines rather than
   rejected: a comment cannot inject anything, and error texts are often multi-line.
2. A comment-only event is ``: text`` followed by a blank line. The blank line dispatches
   nothing and keeps framing uniform: every encoded event ends with ``"\\n\\n"``.
3. ``event=""`` is rejected: on the wire it means the default type "message", so the
   value would not survive a round trip. Pass ``None`` for the default type.
4. A CR at the end of a fed chunk ends its line at once (so an event is dispatched
   without waiting for more bytes); an LF at the start of the next chunk is then skipped.
5. All validation errors are ``ValueError`` naming the field, wrong types included.
"""

from __future__ import annotations

import codecs
from dataclasses import KW_ONLY, dataclass

__all__ = ["HEARTBEAT", "ParsedEvent", "SSEParser", "ServerSentEvent", "data_field", "parse"]

# gunicorn skips empty writes in chunked responses (http/wsgi.py, Response.write), so a
# heartbeat must not be empty. It is a comment line with no blank line after it: the next event
# simply follows it. A blank line would add nothing for a spec parser, but httpx-sse dispatches
# an empty event at a blank line once any id was seen (florimondmanca/httpx-sse#35): a phantom
# token between every two tokens of a slow stream.
HEARTBEAT = b": ping\n"


def _lines(value: str) -> list[str]:
    # Not str.splitlines(): it also splits on VT, FF, U+2028 and others, which SSE keeps.
    return value.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def data_field(data: str) -> str:
    """``data`` as its ``data: `` lines, each ending in LF, without the blank line that ends
    an event. For hot paths that write an event's other fields themselves."""
    if "\n" not in data and "\r" not in data:
        return f"data: {data}\n"
    return "".join(f"data: {line}\n" for line in _lines(data))


def _check_name(field: str, value: object) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a str or None, got {type(value).__name__}")
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError(f"{field} must not contain CR, LF or NUL: {value!r}")


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One server-sent event, validated at construction and encoded with ``encode()``.

    ``id=""`` is allowed and resets the client's last event id. At least one field must
    be given. Encode once and write the bytes to every subscriber.
    """

    data: str | None = None
    _: KW_ONLY
    event: str | None = None
    id: str | None = None
    retry: int | None = None
    comment: str | None = None

    def __post_init__(self) -> None:
        data, id_ = self.data, self.id
        if data is not None and not isinstance(data, str):
            raise ValueError(f"data must be a str or None, got {type(data).__name__}")
        # Checked inline rather than through _check_name(): this runs once per token.
        if id_ is not None and (
            not isinstance(id_, str) or "\n" in id_ or "\r" in id_ or "\0" in id_
        ):
            _check_name("id", id_)
        if self.event is not None or self.retry is not None or self.comment is not None:
            self._check_rare_fields()
        elif data is None and id_ is None:
            raise ValueError("a ServerSentEvent needs at least one field")

    def _check_rare_fields(self) -> None:
        if self.event is not None:
            _check_name("event", self.event)
            if not self.event:
                raise ValueError("event must not be empty (use None for 'message')")
        retry = self.retry
        # bool is an int subclass, but retry=True is surely a mistake.
        if retry is not None and (
            not isinstance(retry, int) or isinstance(retry, bool) or retry < 0
        ):
            raise ValueError(f"retry must be a non-negative int (milliseconds), got {retry!r}")
        if self.comment is not None and not isinstance(self.comment, str):
            raise ValueError(f"comment must be a str or None, got {type(self.comment).__name__}")

    def text(self) -> str:
        """Return the event in wire form, ending with a blank line."""
        data = self.data
        # Hot path: a token event. Fields were validated in __post_init__.
        if (
            self.event is None
            and self.retry is None
            and self.comment is None
            and data is not None
            and "\n" not in data
            and "\r" not in data
        ):
            if self.id is None:
                return f"data: {data}\n\n"
            return f"id: {self.id}\ndata: {data}\n\n"

        parts: list[str] = []
        if self.comment is not None:
            parts.extend(f": {line}\n" for line in _lines(self.comment))
        if self.event is not None:
            parts.append(f"event: {self.event}\n")
        if self.id is not None:
            parts.append(f"id: {self.id}\n")
        if self.retry is not None:
            parts.append(f"retry: {self.retry}\n")
        if data is not None:
            parts.append(data_field(data))
        parts.append("\n")
        return "".join(parts)

    def encode(self) -> bytes:
        """Return the event in wire form as UTF-8 bytes."""
        return self.text().encode("utf-8")


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    """An event dispatched by ``SSEParser``, as a browser's ``MessageEvent`` would see it."""

    data: str
    type: str = "message"
    last_event_id: str = ""


class SSEParser:
    """Incremental parser for a ``text/event-stream`` body.

    Feed it chunks split anywhere (inside a UTF-8 character or a CRLF pair included);
    ``feed()`` returns the events completed so far. Feed one stream as bytes or as str,
    not both within one character. ``last_event_id`` and ``retry`` hold the values last
    set by the stream; they persist across ``close()``, as across a reconnection.
    """

    def __init__(self) -> None:
        self.last_event_id: str = ""
        self.retry: int | None = None
        self._reset_stream()

    def _reset_stream(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._at_start = True  # no character seen yet: a BOM here is stripped
        self._skip_lf = False  # the last chunk ended with CR: a leading LF belongs to it
        self._partial: list[str] = []  # text of the current, unterminated line
        self._data: list[str] = []  # data lines of the event being built
        self._type = ""
        self._id = self.last_event_id

    def feed(self, chunk: bytes | str) -> list[ParsedEvent]:
        """Consume a chunk of the stream and return the events it completes."""
        if isinstance(chunk, str):
            # Flush bytes of an unfinished character (as U+FFFD) so order is kept.
            text = self._decoder.decode(b"", final=True) + chunk
        else:
            text = self._decoder.decode(chunk)
        if not text:
            return []
        if self._at_start:
            self._at_start = False
            if text[0] == "\ufeff":
                text = text[1:]
        if self._skip_lf:
            self._skip_lf = False
            if text[:1] == "\n":
                text = text[1:]
        if "\n" not in text and "\r" not in text:
            if text:
                self._partial.append(text)
            return []
        self._skip_lf = text[-1] == "\r"
        if self._partial:
            self._partial.append(text)
            text = "".join(self._partial)
            self._partial = []
        lines = _lines(text)
        rest = lines.pop()  # text after the last line end: an unfinished line
        if rest:
            self._partial.append(rest)
        return self._process(lines)

    def close(self) -> list[ParsedEvent]:
        """End the stream. An unfinished event is discarded, so this returns ``[]``.

        The parser is then ready for a new stream (a reconnection).
        """
        self._reset_stream()
        return []

    def _process(self, lines: list[str]) -> list[ParsedEvent]:
        events: list[ParsedEvent] = []
        data = self._data
        # Buffers live in locals for the loop (attribute access dominates otherwise).
        type_, id_, last_id = self._type, self._id, self.last_event_id
        for line in lines:
            if not line:
                last_id = id_
                if data:
                    events.append(ParsedEvent("\n".join(data), type_ or "message", id_))
                    data.clear()
                type_ = ""
                continue
            if line[:6] == "data: ":  # the common line, as every encoder writes it
                data.append(line[6:])
                continue
            field, colon, value = line.partition(":")
            if not field:
                continue  # comment
            if colon and value[:1] == " ":
                value = value[1:]
            if field == "data":
                data.append(value)
            elif field == "event":
                type_ = value
            elif field == "id":
                if "\0" not in value:
                    id_ = value
            elif field == "retry" and value.isascii() and value.isdigit():
                self.retry = int(value)
        self._type, self._id, self.last_event_id = type_, id_, last_id
        return events


def parse(stream: bytes | str) -> list[ParsedEvent]:
    """Parse a complete stream and return its events (an unfinished last event is dropped)."""
    parser = SSEParser()
    return parser.feed(stream) + parser.close()
