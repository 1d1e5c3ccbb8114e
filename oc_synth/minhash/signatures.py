"""The CPU MinHash engine: shingle hashes -> rensa R-MinHash signatures -> one 64-bit key per LSH band.

Why rensa: on this project's 2-core boxes it computed 2,048-permutation signatures ~5x faster than datasketch and
~9x faster than datatrove (docs/platform.md), and its per-slot collision rate matches Jaccard similarity, so the LSH
S-curve 1 - (1 - J^r)^b holds (tests/oc_synth/curate/dedup/test_dedup_fuzzy_accuracy.py checks this).

Memory: a 2,048-permutation signature is 8 KB per document; only the band keys (8 bytes x bands) leave this module,
and signatures exist for one chunk of documents at a time.

Reproducibility: the permutations are drawn from ``settings.seed`` by rensa (same seed and rensa algorithm version
-> same signatures on any machine); band keys are a fixed 64-bit hash of each band's values, so they are stable too.
"""

from __future__ import annotations

import array
from collections.abc import Sequence
from concurrent.futures import Executor

import numpy as np

from oc_synth.minhash.settings import MinHashSettings
from oc_synth.minhash.shingles import mix64, shingle_hashes, unit_hashes

CHUNK_DOCS = 512  # signatures of one chunk: 512 x 2,048 x 4 B = 4 MB, plus rensa's row lists (~30 MB transient)


def engine_version() -> str:
    """Goes into the run's fingerprint: band keys from different rensa algorithms or key schemes must never be
    mixed."""
    from importlib.metadata import version

    from rensa import RMinHash

    return f"rensa {version('rensa')} (R-MinHash algorithm v{RMinHash.ALGORITHM_VERSION}), band keys {BAND_KEY_SCHEME}"


def signatures(flat_shingles: np.ndarray, offsets: np.ndarray, settings: MinHashSettings) -> np.ndarray:
    """(documents, num_perm) uint32 signatures; every document must have at least one shingle."""
    from rensa import RMinHash

    matrix = RMinHash.digest_matrix_from_flat_token_hashes(flat_shingles, offsets.astype(np.uint64),
                                                           settings.num_perm, settings.seed)
    rows = matrix.to_rows()
    if not rows:
        return np.zeros((0, settings.num_perm), np.uint32)
    buf = b"".join(array.array("I", r).tobytes() for r in rows)  # fastest list->buffer path measured
    return np.frombuffer(buf, dtype=np.uint32).reshape(len(rows), settings.num_perm)


BAND_KEY_SCHEME = "mix64-sum v1"  # goes into the run's fingerprint with the rensa version


def _position_salts(rows: int) -> np.ndarray:
    # fixed (not user-seeded): the seed changes the permutations, not how a band's values become its key
    return np.random.default_rng(0xBA4D_5EED).integers(0, 2**64, size=rows, dtype=np.uint64, endpoint=False)


def band_keys_of_signatures(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(documents, bands) uint64: each band's ``rows`` values as one 64-bit key, the sum (mod 2^64) of
    splitmix64(value xor a salt per position). Equal bands get equal keys; two different bands get the same key
    with probability ~2^-64, as with a 64-bit digest (these replaced per-band BLAKE2b digests: the same decisions,
    computed in numpy for the whole chunk instead of 16 hashlib calls per document)."""
    n = len(sigs)
    values = np.ascontiguousarray(sigs, dtype=np.uint32).reshape(n, bands, rows).astype(np.uint64)
    values ^= _position_salts(rows)
    return mix64(mix64(values).sum(axis=2, dtype=np.uint64))


def band_keys(texts: Sequence[str], settings: MinHashSettings) -> tuple[np.ndarray, np.ndarray]:
    """Band keys for documents with at least one shingle.

    Returns ``(keys, has_shingles)``: ``keys`` is (documents, bands) uint64 with zero rows where ``has_shingles`` is
    False (those documents take no part in fuzzy dedup).
    """
    keys = np.zeros((len(texts), settings.bands), np.uint64)
    has = np.zeros(len(texts), bool)
    for lo in range(0, len(texts), CHUNK_DOCS):
        chunk = texts[lo : lo + CHUNK_DOCS]
        flat, lengths = unit_hashes(chunk, settings)
        has[lo : lo + len(chunk)] = lengths > 0
        if not (lengths > 0).any():
            continue
        # documents without shingles are left out of the signature call (an empty set has no minimum)
        sh, offsets = shingle_hashes(flat, lengths, settings.ngram)
        nonempty = np.nonzero(lengths > 0)[0]
        sigs = signatures(sh, np.concatenate([offsets[nonempty], [offsets[-1]]]), settings)
        keys[lo + nonempty] = band_keys_of_signatures(sigs, settings.bands, settings.rows)
    return keys, has


def band_keys_parallel(texts: Sequence[str], settings: MinHashSettings, pool: Executor | None,
                       workers: int) -> tuple[np.ndarray, np.ndarray]:
    """``band_keys`` spread over a process pool in contiguous chunks; results are reassembled in input order, so the
    output is identical for any number of workers."""
    if pool is None or workers <= 1 or len(texts) <= CHUNK_DOCS:
        return band_keys(texts, settings)
    size = max(CHUNK_DOCS, -(-len(texts) // workers))
    parts = [list(texts[i : i + size]) for i in range(0, len(texts), size)]
    results = list(pool.map(band_keys, parts, [settings] * len(parts)))
    return np.concatenate([k for k, _ in results]), np.concatenate([h for _, h in results])
