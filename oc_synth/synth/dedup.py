"""Exact and near-duplicate detection over generated instructions (or code, or text: the recipe's dedup field).

The MinHash machinery is the curation dedup's (``oc_synth.minhash``: shingles, rensa signatures, LSH band keys,
candidate pairs), run with settings fit for short texts: word 5-grams, 20 bands x 10 rows (candidate threshold near
Jaccard 0.74), and every candidate pair confirmed by its exact shingle Jaccard (>= 0.7 by default). OpenCoder
publishes no instruction-dedup parameters; these are ours and live in the recipe's ``dedup`` section.

The first record (in the caller's order) of each duplicate group is kept, so the result is deterministic.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from oc_synth.synth.recipes.recipe import DedupSpec

_WS = re.compile(r"\s+")
MAX_BUCKET_PAIRS = 64


def normalize(text: str) -> str:
    """Exact dedup ignores case and whitespace layout: the same instruction re-wrapped is the same instruction."""
    return _WS.sub(" ", text).strip().lower()


def find_duplicates(texts: Sequence[str], spec: DedupSpec) -> list[tuple[int, str] | None]:
    """For each text: None (kept) or ``(index of the kept text it duplicates, "exact" | "near")``."""
    result: list[tuple[int, str] | None] = [None] * len(texts)
    if spec.exact:
        first: dict[bytes, int] = {}
        for i, t in enumerate(texts):
            key = hashlib.sha256(normalize(t).encode()).digest()
            if key in first:
                result[i] = (first[key], "exact")
            else:
                first[key] = i
    if spec.fuzzy:
        alive = [i for i, r in enumerate(result) if r is None]
        for i, j in _near_pairs([texts[k] for k in alive], spec):
            a, b = alive[i], alive[j]  # i < j: b is the later one
            if result[b] is None:
                result[b] = (_root(result, a), "near")
    return result


def _root(result: list[tuple[int, str] | None], i: int) -> int:
    while result[i] is not None:
        i = result[i][0]
    return i


def _near_pairs(texts: list[str], spec: DedupSpec) -> list[tuple[int, int]]:
    """Confirmed near-duplicate pairs (i < j), in order of j then i."""
    from oc_synth.minhash import MinHashSettings, near_duplicate_pairs

    settings = MinHashSettings(shingle="word", ngram=spec.ngram, num_perm=spec.bands * spec.rows, bands=spec.bands,
                               rows=spec.rows, lowercase=True)
    return near_duplicate_pairs(texts, settings, spec.jaccard, max_bucket=MAX_BUCKET_PAIRS)
