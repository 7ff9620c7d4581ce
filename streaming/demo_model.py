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

# Tokens are drawn in blocks: one call to Random.choices per block is several times cheaper
# than a call per token, which matters at hundreds of thousands of tokens per second.
_BLOCK = 256


def _rng(prompt: str) -> random.Random:
    # A digest, not hash(): str hashes change from one process to the next.
    seed = int.from_bytes(hashlib.sha256(prompt.encode("utf-8")).digest()[:8], "big")
    return random.Random(seed)


def generate(prompt: str, count: int, start: int = 0) -> Iterator[str]:
    """Tokens `start` .. `count - 1` of the demo model's answer to `prompt`."""
    rng = _rng(prompt)
    produced = 0
    while produced < count:
        block = rng.choices(VOCABULARY, k=min(_BLOCK, count - produced))
        if produced + len(block) > start:
            yield from block[max(0, start - produced):]
        produced += len(block)


def complete(prompt: str, count: int) -> str:
    """The whole answer as one string: what a non-streaming client gets."""
    return "".join(generate(prompt, count))
