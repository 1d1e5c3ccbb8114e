"""Optional check of LSH candidate pairs against their exact Jaccard similarity (``--jaccard-check T``).

LSH at 16 x 128 has almost no false candidates, but looser settings (NeMo's 20 x 13 with a threshold near 0.79)
do. The check re-reads the documents that appear in a candidate pair, computes their shingle sets and keeps a pair
only when its Jaccard similarity is at least ``T``. It holds those documents' shingle sets in memory, which is why it
is meant for small runs.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from oc_common.records import read_file_records
from oc_synth.curate.dedup.index import TEXT, IndexData
from oc_synth.minhash.settings import MinHashSettings
from oc_synth.minhash.shingles import jaccard, shingle_sets


def texts_at(data: IndexData, positions: np.ndarray) -> dict[int, str]:
    """The texts of the records at these index positions, read back from their input shards."""
    wanted: dict[int, dict[int, int]] = defaultdict(dict)  # shard -> row -> position
    for pos, shard, row in zip(positions.tolist(), data.shard[positions].tolist(), data.rows_at(positions).tolist(),
                               strict=True):
        wanted[shard][row] = pos
    out: dict[int, str] = {}
    for shard, rows in wanted.items():
        records, _ = read_file_records(data.sources[shard])
        for row, pos in rows.items():
            out[pos] = records[row][TEXT]
    return out


def verify_pairs(data: IndexData, u: np.ndarray, v: np.ndarray, settings: MinHashSettings) -> np.ndarray:
    """Boolean mask over the pairs: True where Jaccard(u, v) >= settings.jaccard_check."""
    if len(u) == 0:
        return np.zeros(0, bool)
    involved = np.unique(np.concatenate([u, v]))
    texts = texts_at(data, involved)
    sets = dict(zip(involved.tolist(), shingle_sets([texts[p] for p in involved.tolist()], settings), strict=True))
    return np.fromiter((jaccard(sets[a], sets[b]) >= settings.jaccard_check
                        for a, b in zip(u.tolist(), v.tolist(), strict=True)), dtype=bool, count=len(u))
