"""Which record of a duplicate cluster survives: RefineCode's rule, made total and deterministic.

Order (best first):
1. most ``stars``;
2. latest ``commit_time`` (ISO 8601; compared as instants, a time without an offset is read as UTC);
3. smallest ``id`` (compared as text, by code point: ``"10" < "9"``);
4. first in input order (shard order, then line), so repeated ids still give one answer.

A missing or unusable ``stars`` / ``commit_time`` / ``id`` ranks below every usable value. Unusable values (``"n/a"``,
a bool, a date that does not parse) are counted per field so a run reports how often the rule fell through.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

import numpy as np


def stars_value(value: Any) -> float | None:
    """Stars as a number; ints, floats and numeric strings are accepted."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        v = float(value)
    elif isinstance(value, str):
        try:
            v = float(value.strip())
        except ValueError:
            return None
    elif hasattr(value, "item"):  # numpy / pandas scalars out of Parquet
        return stars_value(value.item())
    else:
        return None
    return v if math.isfinite(v) else None


def commit_epoch(value: Any) -> float | None:
    """``commit_time`` as seconds since the epoch: ISO 8601 strings, datetimes (Parquet timestamps) or epoch
    seconds."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            dt = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            return None
    elif isinstance(value, (int, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    elif hasattr(value, "item"):
        return commit_epoch(value.item())
    else:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def id_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value if isinstance(value, str) else str(value)


def survivor_order(stars: np.ndarray, times: np.ndarray, ids: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """Permutation that sorts records best-first by the keep rule.

    ``stars`` / ``times`` are float arrays with NaN for missing; ``ids`` an object array of str or None; ``docs``
    the input-order numbers.
    """
    neg_inf = -np.inf
    s = np.where(np.isnan(stars), neg_inf, stars)
    t = np.where(np.isnan(times), neg_inf, times)
    has_id = np.array([i is not None for i in ids], dtype=bool)
    present = np.array([i for i in ids if i is not None], dtype=object)
    id_rank = np.zeros(len(ids), np.int64)
    if len(present):
        _, inverse = np.unique(present.astype(str), return_inverse=True)
        id_rank[has_id] = inverse
    # np.lexsort: last key is primary
    return np.lexsort((docs, id_rank, ~has_id, -t, -s))


def pick_survivors(clusters: np.ndarray, stars: np.ndarray, times: np.ndarray, ids: np.ndarray,
                   docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For records labelled with a cluster, return ``(survivor_index, cluster_size)`` per record: the index (into the
    input arrays) of its cluster's survivor and the number of records in the cluster."""
    n = len(clusters)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = survivor_order(stars, times, ids, docs)
    # stable sort by cluster keeps the keep-rule order inside each cluster: the first of each run survives
    by_cluster = order[np.argsort(clusters[order], kind="stable")]
    sorted_clusters = clusters[by_cluster]
    run_start = np.ones(n, bool)
    run_start[1:] = sorted_clusters[1:] != sorted_clusters[:-1]
    run_id = np.cumsum(run_start) - 1
    starts = np.nonzero(run_start)[0]
    sizes = np.diff(np.append(starts, n))
    survivor = np.empty(n, np.int64)
    size = np.empty(n, np.int64)
    survivor[by_cluster] = by_cluster[starts[run_id]]
    size[by_cluster] = sizes[run_id]
    return survivor, size
