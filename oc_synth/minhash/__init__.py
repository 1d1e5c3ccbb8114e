"""MinHash + LSH near-duplicate detection, shared by curation dedup (``curate dedup``) and synthesis dedup.

Module map:

- ``settings``    shingle kind and width, permutations, bands x rows, seed (``MinHashSettings``)
- ``shingles``    word or char shingles hashed to 64 bits; exact shingle sets and Jaccard similarity
- ``signatures``  rensa signatures -> one 64-bit key per LSH band (``band_keys``), chunked and optionally parallel
- ``lsh``         equal keys -> groups, one band's buckets -> candidate pairs or star edges, connected components

``near_duplicate_pairs`` below is the whole path for an in-memory list of texts: band keys, candidate pairs per
band, each confirmed by its exact shingle Jaccard.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from oc_synth.minhash.lsh import Components, bucket_edges, bucket_pairs, group_equal
from oc_synth.minhash.settings import MinHashSettings
from oc_synth.minhash.shingles import jaccard, shingle_sets
from oc_synth.minhash.signatures import band_keys, band_keys_parallel


def near_duplicate_pairs(texts: Sequence[str], settings: MinHashSettings, min_jaccard: float,
                         max_bucket: int = 100) -> list[tuple[int, int]]:
    """Pairs ``(i, j)``, ``i < j``, that share an LSH band and whose shingle Jaccard is at least ``min_jaccard``,
    sorted by ``j`` then ``i``. A bucket larger than ``max_bucket`` contributes its star (every member paired with
    its first), which keeps a template repeated thousands of times linear instead of quadratic."""
    if len(texts) < 2:
        return []
    keys, has = band_keys(texts, settings)
    members = np.nonzero(has)[0]
    candidates: set[tuple[int, int]] = set()
    for b in range(settings.bands):
        u, v = bucket_pairs(keys[members, b], max_bucket)
        candidates.update(zip(members[u].tolist(), members[v].tolist(), strict=True))
    if not candidates:
        return []
    involved = sorted({x for pair in candidates for x in pair})
    sets = dict(zip(involved, shingle_sets([texts[k] for k in involved], settings), strict=True))
    confirmed = [(i, j) for i, j in candidates if jaccard(sets[i], sets[j]) >= min_jaccard]
    return sorted(confirmed, key=lambda p: (p[1], p[0]))


__all__ = ["Components", "MinHashSettings", "band_keys", "band_keys_parallel", "bucket_edges", "bucket_pairs",
           "group_equal", "jaccard", "near_duplicate_pairs", "shingle_sets"]
