"""`demo`: a deterministic stand-in for an LLM.

The same prompt always gives the same token sequence (a longer request extends a shorter one), so
tests and resumed streams can check every token. The vocabulary has what real tokenizers emit and
naive streaming code breaks on: leading spaces, newline tokens, punctuation glued to words, and
multi-byte UTF-8 (CJK, accents, an emoji outside the BMP).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator

MODEL_NAME = "demo"

VOCABULARY: tuple[str, ...] = (
    " the", " a", " stream", " token", " flows", " as", " it", " is", " produced", " to",
    " every", " reader", ",", ".", " and", " never", " waits", " for", " the", " end",
    " server", "-sent", " events", " arrive", " one", " by", " one", "\n", "\n\n", " 流式",
    "输出", " café", " naïve", " Ünïcödé", " 🚀", " données", " greenlet", " worker", " —",
    " quickly", " slowly", " world", " hello", "!", " data", ":", " id", " 42", " yes", " no",
)

# Tokens are drawn in blocks of 256, each from its own generator seeded by (prompt, block): one
# Random.choices call per block is several times cheaper than a call per token, a resumed stream
# starts at its block without drawing the ones before it, and an idle stream holds no generator
# state (a Mersenne Twister is 2.5 KB) between blocks.
_BLOCK = 256


def _seed(prompt: str) -> int:
    # A digest, not hash(): str hashes change from one process to the next.
    return int.from_bytes(hashlib.sha256(prompt.encode("utf-8")).digest()[:8], "big")


def generate(prompt: str, count: int, start: int = 0) -> Iterator[str]:
    """Tokens `start` .. `count - 1` of the demo model's answer to `prompt`."""
    seed = _seed(prompt)
    block = start // _BLOCK
    while block * _BLOCK < count:
        first = block * _BLOCK
        tokens = random.Random(seed + block).choices(VOCABULARY, k=min(_BLOCK, count - first))
        yield from tokens[max(0, start - first):]
        block += 1


def complete(prompt: str, count: int) -> str:
    """The whole answer as one string: what a non-streaming client gets."""
    return "".join(generate(prompt, count))
