"""`demo`: a deterministic stand-in for an LLM.

The same prompt always gives the same token sequence (a longer request extends a shorter one), so
tests and resumed streams can check every token. The vocabulary has what real tokenizers emit and
naive streaming code breaks on: leading spaces, newline tokens, punctuation glued to words, and
multi-byte UTF-8 (CJK, accents, an emoji outside the BMP).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

MODEL_NAME = "demo"

VOCABULARY: tuple[str, ...] = (
    " the", " a", " stream", " token", " flows", " as", " it", " is", " produced", " to",
    " every", " reader", ",", ".", " and", " never", " waits", " for", " the", " end",
    " server", "-sent", " events", " arrive", " one", " by", " one", "\n", "\n\n", " 流式",
    "输出", " café", " naïve", " Ünïcödé", " 🚀", " données", " greenlet", " worker", " —",
    " quickly", " slowly", " world", " hello", "!", " data", ":", " id", " 42", " yes", " no",
)

# Token i is drawn from a hash of (prompt, i): SplitMix64's finalizer over the prompt's seed
# plus i times the golden ratio, as in Steele et al., "Fast splittable pseudorandom number
# generators" (2014). A stream holds no generator state at all (a Mersenne Twister is 2.5 KB,
# and blocks of drawn tokens were 2 KB more per idle stream), a resumed stream starts at its
# index directly, and a 5-token stream costs a fifth of seeding a generator.
_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def seed(prompt: str) -> int:
    """The number every token of `prompt`'s answer is drawn from."""
    # A digest, not hash(): str hashes change from one process to the next.
    return int.from_bytes(hashlib.sha256(prompt.encode("utf-8")).digest()[:8], "big")


def token(seed: int, index: int) -> str:
    """Token `index` of the answer whose `seed()` is `seed`."""
    x = (seed + index * _GOLDEN) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return VOCABULARY[(x ^ (x >> 31)) % len(VOCABULARY)]


def generate(prompt: str, count: int, start: int = 0) -> Iterator[str]:
    """Tokens `start` .. `count - 1` of the demo model's answer to `prompt`."""
    answer = seed(prompt)
    return (token(answer, index) for index in range(start, count))


def complete(prompt: str, count: int) -> str:
    """The whole answer as one string: what a non-streaming client gets."""
    return "".join(generate(prompt, count))
