"""LSH band keys partitioned on disk: pass 1 writes one sorted key file per shard, pass 2 groups one key range at a
time, so the grouping holds one partition, never every record's keys.

Files (written by the index pass, beside the shard's index file, before it: the index file is the done-marker):

``WORK/index/<shard>.bands.npy``  a (2, entries) uint64 array: row 0 the keys, sorted; row 1 the record's row in
the shard. One entry per (record with shingles, band). A key is rensa's band hash mixed with the band number
(``stored_keys``), so one 64-bit space holds every band, spread uniformly, and two records share a key exactly when
they share a band (up to 64-bit collisions).

Partitions: ``count`` equal ranges of the 64-bit key space (``key_range``). Keys are sorted, so partition ``p`` is one
contiguous slice of every shard's file, found by binary search on the memory-mapped keys and copied out alone.
``partition_count`` picks ``count`` so that a partition holds at most ``PARTITION_ENTRIES`` entries (~30 MB while
grouped), whatever the corpus size. ``partition_edges(files, starts, p, count, candidates)`` is everything one
partition needs: the shards' band files in shard order, the global position of each shard's first record, the
partition, and which records take part (a bool array over all records, or None); it returns the partition's
candidate edges as global positions. Partitions are independent of each other: separate processes (or Ray tasks) can
each take some partitions from the same files and return their edges; the only global step is the union-find over
those edges (``Components``: 8 bytes per record).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from oc_common.fileio import atomic_write_bytes
from oc_synth.minhash.lsh import bucket_edges, bucket_pairs
from oc_synth.minhash.shingles import mix64

PARTITION_ENTRIES = 1 << 19  # ours: 524,288 entries a partition: ~30 MB while grouped (~55 B an entry, measured)
SPACE = 1 << 64


def band_path(index_dir: Path, shard: str) -> Path:
    return Path(index_dir) / f"{shard}.bands.npy"


@lru_cache(maxsize=8)
def _band_salts(bands: int) -> np.ndarray:
    # fixed (not user-seeded): the seed changes the permutations, not how a band's hash becomes a stored key
    return np.random.default_rng(0xBA4D_5EED).integers(0, 2**64, size=bands, dtype=np.uint64, endpoint=False)


def stored_keys(keys: np.ndarray) -> np.ndarray:
    """(records, bands) band hashes -> the keys stored on disk: each mixed with its band's salt."""
    return mix64(keys ^ _band_salts(keys.shape[1]))


def write_bands(path: Path, keys: np.ndarray, rows: np.ndarray) -> int:
    """One shard's band file (atomic) from the band hashes of the records at ``rows``; returns its entries."""
    flat = stored_keys(keys).ravel()
    order = np.argsort(flat)
    table = np.empty((2, len(flat)), np.uint64)
    table[0] = flat[order]
    table[1] = np.repeat(rows.astype(np.uint64), keys.shape[1])[order]
    buf = io.BytesIO()
    np.save(buf, table)
    atomic_write_bytes(path, buf.getvalue())
    return len(flat)


def entries_in(path: Path) -> int:
    return int(np.load(path, mmap_mode="r").shape[1])


def partition_count(entries: int) -> int:
    return max(1, -(-entries // PARTITION_ENTRIES))


def key_range(p: int, count: int) -> tuple[int, int]:
    """Partition ``p``'s keys: ``lo <= key < hi`` (``hi`` is 2^64 for the last, which no uint64 reaches)."""
    return p * SPACE // count, (p + 1) * SPACE // count


def read_partition(files: Sequence[Path], starts: Sequence[int], p: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Partition ``p``'s (keys, global positions) from every shard's band file, in shard order."""
    lo, hi = key_range(p, count)
    keys, positions = [], []
    for path, start in zip(files, starts, strict=True):
        table = np.load(path, mmap_mode="r")
        a = int(np.searchsorted(table[0], np.uint64(lo), side="left"))
        b = int(np.searchsorted(table[0], np.uint64(hi), side="left")) if hi < SPACE else table.shape[1]
        if b > a:
            keys.append(np.array(table[0, a:b]))
            positions.append(table[1, a:b].astype(np.int64) + start)
        del table  # unmap: the partition's pages leave this process
    if not keys:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    return np.concatenate(keys), np.concatenate(positions)


def partition_edges(files: Sequence[Path], starts: Sequence[int], p: int, count: int,
                    candidates: np.ndarray | None = None, all_pairs: bool = False,
                    max_bucket: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Candidate edges of partition ``p`` as global positions: a star per bucket of records sharing a key
    (``bucket_edges``), or with ``all_pairs`` every pair of a bucket up to ``max_bucket`` members (for a Jaccard
    check, ``bucket_pairs``). Only records where ``candidates`` is True take part."""
    keys, positions = read_partition(files, starts, p, count)
    if candidates is not None:
        keep = candidates[positions]
        keys, positions = keys[keep], positions[keep]
    if not all_pairs:  # a star's centre does not change the components
        u, v = bucket_edges(keys)
        return positions[u], positions[v]
    # in position order: a bucket too large for pairs falls back to the star around its first record
    order = np.argsort(positions, kind="stable")
    keys, positions = keys[order], positions[order]
    u, v = bucket_pairs(keys, max_bucket)
    return positions[u], positions[v]
