# Copyright 2024 The textkit authors.
# Licensed under the MIT License; see LICENSE for details.
# Maintainer: Dana Whitfield <dana.whitfield@mailbox.org>
"""Small, dependency-free helpers to split text into words and sentences."""

import re
from collections import Counter

_WORD = re.compile(r"[A-Za-z0-9']+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def words(text):
    """Return the lower-cased words of ``text`` in order."""
    return [w.lower() for w in _WORD.findall(text)]


def sentences(text):
    """Split ``text`` into sentences on terminal punctuation followed by whitespace."""
    parts = _SENTENCE_END.split(text.strip())
    return [p for p in parts if p]


def word_frequencies(text, top=None):
    """Count words; return the ``top`` most common as (word, count) pairs, or all of them."""
    counts = Counter(words(text))
    return counts.most_common(top)


def ngrams(tokens, n):
    """Yield the contiguous n-grams of a token list as tuples."""
    if n < 1:
        raise ValueError("n must be positive")
    for i in range(len(tokens) - n + 1):
        yield tuple(tokens[i : i + n])


def type_token_ratio(text):
    """Lexical diversity: distinct words divided by all words (0.0 for empty text)."""
    tokens = words(text)
    if not tokens:
        return 0.0
    return len(set(tokens)) / len(tokens)
