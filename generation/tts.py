"""A mock text-to-speech: a deterministic tone per character, as 16-bit PCM in ~20 ms frames.

Each character lasts `CHAR_MS` (60 ms): a sine whose pitch follows the code point (two octaves
up from 220 Hz, in semitones), faded in and out over 5 ms so characters do not click; whitespace
is silence. Audio is 16 kHz mono signed 16-bit little-endian PCM, so a text of n characters is
`n * BYTES_PER_CHAR` bytes (n * 0.06 s * 16000 samples/s * 2 bytes). It is sent frame by frame
as it is taken, never as a whole clip; the frames are slices of the 24 tones, rendered once.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from http_policy.validation import InvalidParameter, required_text
from streaming.encoding import compact_json
from streaming.sources import PacedSource
from streaming.websocket import BINARY, encode_frames, text_frames

from .params import TEXT_MAX_CHARS

SAMPLE_RATE = 16_000
SAMPLE_BYTES = 2
CHAR_MS = 60
FRAME_MS = 20
CHAR_SAMPLES = SAMPLE_RATE * CHAR_MS // 1000
BYTES_PER_CHAR = CHAR_SAMPLES * SAMPLE_BYTES
FRAME_BYTES = SAMPLE_RATE * FRAME_MS // 1000 * SAMPLE_BYTES

PITCHES = 24
"""Semitones above 220 Hz a character's tone may have: two octaves, by code point modulo 24."""

_AMPLITUDE = 0.3 * 32767
_FADE_SAMPLES = SAMPLE_RATE * 5 // 1000


@dataclass(frozen=True, slots=True)
class SpeechParams:
    text: str
    realtime: bool = True


def parse_speech(values: Mapping[str, Any]) -> SpeechParams:
    """`text` (1..TEXT_MAX_CHARS characters) and `realtime` (a boolean, default true)."""
    text = required_text(values, "text", TEXT_MAX_CHARS)
    realtime = values.get("realtime", True)
    if not isinstance(realtime, bool):
        raise InvalidParameter("realtime", "realtime must be true or false")
    return SpeechParams(text, realtime)


def _render(pitch: int) -> bytes:
    """CHAR_SAMPLES samples of the tone `pitch` semitones above 220 Hz, little-endian."""
    step = 2 * math.pi * 220.0 * 2 ** (pitch / 12) / SAMPLE_RATE
    samples = array("h", [round(_AMPLITUDE * envelope * math.sin(step * i))
                          for i, envelope in enumerate(_ENVELOPE)])
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


def _frames(pcm: bytes) -> tuple[bytes, ...]:
    return tuple(pcm[start:start + FRAME_BYTES] for start in range(0, len(pcm), FRAME_BYTES))


_ENVELOPE = [min(1.0, i / _FADE_SAMPLES, (CHAR_SAMPLES - 1 - i) / _FADE_SAMPLES)
             for i in range(CHAR_SAMPLES)]
# A tone depends only on the character's pitch class, so all of them are rendered here, once
# per process (about 10 ms of CPU at import). Rendered while serving, a text of distinct CJK
# characters would compute a tone per character in the serving greenlet and hold the loop.
_TONE_FRAMES = tuple(_frames(_render(pitch)) for pitch in range(PITCHES))
_SILENCE_FRAMES = _frames(bytes(BYTES_PER_CHAR))


def _char_frames(char: str) -> tuple[bytes, ...]:
    return _SILENCE_FRAMES if char.isspace() else _TONE_FRAMES[ord(char) % PITCHES]


def tone(char: str) -> bytes:
    """The PCM of one character: CHAR_SAMPLES samples, little-endian."""
    return b"".join(_char_frames(char))


def pcm_frames(text: str) -> Iterator[bytes]:
    """The audio of `text` in FRAME_BYTES frames; a character is exactly three of them."""
    for char in text:
        yield from _char_frames(char)


class Speech:
    """`params.text` spoken as a session's `Generation`: binary frames, then a text `end`.

    Real time sends frame i when the audio reaches it (i * 20 ms after the start); otherwise
    frames go out as fast as the socket takes them.
    """

    __slots__ = ("params", "sent")

    def __init__(self, params: SpeechParams) -> None:
        self.params = params
        self.sent = 0  # bytes of audio handed to the socket

    def items(self) -> Iterator[tuple[float, bytes]]:
        step = FRAME_MS / 1000 if self.params.realtime else 0.0
        return ((index * step, frame) for index, frame in enumerate(pcm_frames(self.params.text)))

    def source(self) -> PacedSource:
        return PacedSource(self.items())

    def frames(self, batch: list) -> bytes:
        self.sent += sum(map(len, batch))
        return encode_frames(batch, BINARY)

    def finish(self) -> bytes:
        complete = self.sent == len(self.params.text) * BYTES_PER_CHAR
        end = {"type": "end", "finish_reason": "stop" if complete else "cancelled",
               "bytes": self.sent, "sample_rate": SAMPLE_RATE}
        return text_frames([compact_json(end)])
