"""Tests for generation.tts: documented sizes, a deterministic tone per character, validation."""

from __future__ import annotations

import math

import pytest

from generation import tts
from http_policy.validation import InvalidParameter
from streaming.websocket import BINARY, encode_frames


def samples(pcm: bytes) -> list[int]:
    return [int.from_bytes(pcm[i:i + 2], "little", signed=True) for i in range(0, len(pcm), 2)]


def test_documented_sizes():
    assert tts.SAMPLE_RATE == 16_000
    assert tts.FRAME_BYTES == 640  # 20 ms of 16-bit mono at 16 kHz
    assert tts.BYTES_PER_CHAR == tts.SAMPLE_RATE * 2 * tts.CHAR_MS // 1000 == 1920


@pytest.mark.parametrize("text", ["a", "hello world", "café 流式 🚀", " \t\n"])
def test_frames_add_up_to_60_ms_per_character(text):
    frames = list(tts.pcm_frames(text))
    assert all(len(frame) == tts.FRAME_BYTES for frame in frames)
    assert len(frames) == 3 * len(text)
    assert sum(map(len, frames)) == int(tts.SAMPLE_RATE * 0.06 * len(text) * 2)


def test_frames_are_generated_as_they_are_taken():
    frames = tts.pcm_frames("x" * tts.TEXT_MAX_CHARS)
    assert len(next(frames)) == tts.FRAME_BYTES  # no whole clip was built first


def test_the_same_character_always_sounds_the_same_and_others_differ():
    assert tts.tone("a") == tts.tone("a")
    assert tts.tone("a") != tts.tone("b")
    assert b"".join(tts.pcm_frames("aba")) == tts.tone("a") + tts.tone("b") + tts.tone("a")


def test_a_tone_depends_on_the_pitch_class_only():
    # Rendered once per class, so distinct CJK characters cost nothing more than repeated ones.
    first = chr(0x4E00)
    assert tts.tone(first) == tts.tone(chr(0x4E00 + tts.PITCHES))
    assert len({tts.tone(chr(0x4E00 + i)) for i in range(100)}) == tts.PITCHES
    assert next(tts.pcm_frames(first)) is next(tts.pcm_frames(chr(0x4E00 + tts.PITCHES)))


def test_whitespace_is_silence():
    assert set(samples(tts.tone(" "))) == {0}


def test_a_tone_is_a_faded_sine_in_little_endian():
    values = samples(tts.tone("A"))
    assert values[0] == 0 and values[-1] == 0  # faded in and out: no click
    assert max(values) > 9000 and min(values) < -9000  # 0.3 of full scale
    assert max(map(abs, values)) <= 0.3 * 32767 + 1
    frequency = 220.0 * 2 ** ((ord("A") % 24) / 12)
    middle = tts.CHAR_SAMPLES // 2
    expected = 0.3 * 32767 * math.sin(2 * math.pi * frequency * middle / tts.SAMPLE_RATE)
    assert values[middle] == pytest.approx(expected, abs=1)


def test_realtime_paces_frames_20_ms_apart_otherwise_all_at_once():
    realtime = [due for due, _ in tts.Speech(tts.SpeechParams("ab")).items()]
    assert realtime == pytest.approx([i * 0.02 for i in range(6)])
    fast = [due for due, _ in tts.Speech(tts.SpeechParams("ab", realtime=False)).items()]
    assert fast == [0.0] * 6


def test_speech_writes_binary_frames_and_ends_with_what_it_sent():
    speech = tts.Speech(tts.SpeechParams("hi", realtime=False))
    frames = [frame for _, frame in speech.items()]
    assert speech.frames(frames[:2]) == encode_frames(frames[:2], BINARY)
    assert speech.finish().endswith(
        b'{"type":"end","finish_reason":"cancelled","bytes":1280,"sample_rate":16000}')
    speech.frames(frames[2:])
    assert speech.finish().endswith(
        b'{"type":"end","finish_reason":"stop","bytes":3840,"sample_rate":16000}')


@pytest.mark.parametrize(
    ("values", "param"),
    [
        ({}, "text"),
        ({"text": 3}, "text"),
        ({"text": ""}, "text"),
        ({"text": "x" * 4001}, "text"),
        ({"text": "x", "realtime": 1}, "realtime"),
        ({"text": "x", "realtime": "false"}, "realtime"),
        ({"text": "x", "realtime": None}, "realtime"),
    ],
)
def test_parse_speech_rejects(values, param):
    with pytest.raises(InvalidParameter) as error:
        tts.parse_speech(values)
    assert error.value.param == param


def test_parse_speech_defaults_to_real_time():
    assert tts.parse_speech({"type": "speak", "text": "x"}) == tts.SpeechParams("x", True)
    assert tts.parse_speech({"text": "x" * 4000, "realtime": False}).realtime is False
