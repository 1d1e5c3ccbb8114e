"""The CPU MinHash engine: shingle hashes -> rensa R-MinHash signatures -> one 64-bit key per LSH band.

Why rensa: on this project's 2-core boxes it computed 2,048-permutation signatures ~5x faster than datasketch and
~9x faster than datatrove (docs/platform.md), and its per-slot collision rate matches Jaccard similarity, so the LSH
S-curve 1 - (1 - J^r)^b holds (tests/oc_synth/curate/dedup/test_dedup_fuzzy_accuracy.py checks this).

Band keys are rensa's own LSH band hashes (what ``RMinHashLSH`` buckets by: FxHash over a band's ``rows`` values),
read from the LSH index rensa builds for one chunk of documents. rensa hands signatures out only as Python lists
(``to_rows``), and turning 2,048 Python ints per document into numpy cost twice the MinHash itself; its LSH state is
one bytes object (postcard: LEB128 varints) that ends with every document's band hashes, decoded here in numpy.
``band_keys_of_matrix`` checks that layout against what it inserted and refuses a rensa whose state it cannot read,
naming the version; the tests compare the keys with FxHash computed from the signatures.

Memory: a 2,048-permutation signature is 8 KB per document; only the band keys (8 bytes x bands) leave this module,
and signatures exist for one chunk of documents at a time.

Reproducibility: the permutations are drawn from ``settings.seed`` by rensa (same seed and rensa algorithm version
-> same signatures on any machine), and band keys are a fixed hash of each band's values, so they are stable too.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor

import numpy as np

from oc_common.errors import EnvironmentProblem
from oc_synth.minhash.settings import MinHashSettings
from oc_synth.minhash.shingles import shingle_hashes, unit_hashes

CHUNK_DOCS = 512  # signatures of one chunk: 512 x 2,048 x 4 B = 4 MB, plus rensa's working memory
BAND_KEY_SCHEME = "rensa LSH band hash v1"  # goes into the run's fingerprint with the rensa version
_LSH_STATE_HEADER = b"Rensa:RMinHashLSH:2\x00"  # then one varint and the f64 threshold, then only varints


def engine_version() -> str:
    """Goes into the run's fingerprint: band keys from different rensa algorithms or key schemes must never be
    mixed."""
    from importlib.metadata import version

    from rensa import RMinHash

    return f"rensa {version('rensa')} (R-MinHash algorithm v{RMinHash.ALGORITHM_VERSION}), band keys {BAND_KEY_SCHEME}"


def digest_matrix(flat_shingles: np.ndarray, offsets: np.ndarray, settings: MinHashSettings) -> object:
    """rensa's ``RMinHashDigestMatrix`` of the documents (every document must have at least one shingle)."""
    from rensa import RMinHash

    return RMinHash.digest_matrix_from_flat_token_hashes(flat_shingles, offsets.astype(np.uint64), settings.num_perm,
                                                         settings.seed)


def signatures(flat_shingles: np.ndarray, offsets: np.ndarray, settings: MinHashSettings) -> np.ndarray:
    """(documents, num_perm) uint32 signatures in numpy: slow (rensa hands them out as Python lists), for checks."""
    rows = digest_matrix(flat_shingles, offsets, settings).to_rows()
    return np.array(rows, dtype=np.uint32).reshape(len(rows), settings.num_perm)


def band_keys_of_matrix(matrix: object, settings: MinHashSettings) -> np.ndarray:
    """(documents, bands) uint64: rensa's LSH band hashes of a ``RMinHashDigestMatrix``'s rows."""
    from rensa import RMinHashLSH

    n = matrix.len()
    if n == 0:
        return np.zeros((0, settings.bands), np.uint64)
    lsh = RMinHashLSH(settings.threshold(), settings.num_perm, settings.bands)
    lsh.insert_matrix(matrix, 0)
    return _key_bands(lsh.__getstate__(), n, settings)


def _key_bands(state: bytes, n: int, settings: MinHashSettings) -> np.ndarray:
    """The ``key_bands`` map that ends an ``RMinHashLSH`` state holding keys 0..n-1: per key, ``bands`` hashes."""
    if not state.startswith(_LSH_STATE_HEADER):
        _unreadable(f"it starts {state[:len(_LSH_STATE_HEADER)]!r}")
    buf = np.frombuffer(state, np.uint8, offset=len(_LSH_STATE_HEADER))
    first_end = int(np.argmax((buf & 0x80) == 0))  # the varint before the threshold
    values = _varints(buf[first_end + 1 + 8:])
    b = settings.bands
    if values[:4].tolist() != [settings.num_perm, b, settings.rows, b]:
        _unreadable(f"its parameters read {values[:4].tolist()}")
    size = n * (b + 2)  # per key: the key, the number of bands, the band hashes
    if len(values) < size + 5 or int(values[len(values) - size - 1]) != n:
        _unreadable("its key_bands map is not the last field")
    tail = values[len(values) - size:].reshape(n, b + 2)
    if (tail[:, 1] != b).any() or not np.array_equal(np.sort(tail[:, 0]), np.arange(n, dtype=np.uint64)):
        _unreadable("its key_bands map does not hold the inserted keys")
    keys = np.empty((n, b), np.uint64)
    keys[tail[:, 0].astype(np.int64)] = tail[:, 2:]
    return keys


def _varints(buf: np.ndarray) -> np.ndarray:
    """Unsigned LEB128 varints (7 bits a byte; the high bit is set on every byte but a value's last), at once."""
    ends = np.nonzero((buf & 0x80) == 0)[0]
    if not len(ends) or ends[-1] != len(buf) - 1:
        _unreadable("it does not end with a whole varint")
    starts = np.concatenate([[0], ends[:-1] + 1])
    shifts = (np.arange(len(buf)) - np.repeat(starts, ends - starts + 1)).astype(np.uint64) * np.uint64(7)
    return np.add.reduceat((buf & 0x7F).astype(np.uint64) << shifts, starts)  # disjoint bits: the sum is the or


def _unreadable(why: str) -> None:
    from importlib.metadata import version

    raise EnvironmentProblem(f"rensa {version('rensa')}: its RMinHashLSH state is not the layout dedup reads band "
                             f"keys from ({why}); install rensa==0.5.0, the version pyproject.toml pins")


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
        matrix = digest_matrix(sh, np.concatenate([offsets[nonempty], [offsets[-1]]]), settings)
        keys[lo + nonempty] = band_keys_of_matrix(matrix, settings)
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
