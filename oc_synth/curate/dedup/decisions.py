"""Pass 2: clusters -> survivors -> one decision file per shard (what pass 3 applies), the same for every engine.

Fields the removal pass puts on records (documented in docs/dedup.md):

- exact (``--mode exact|both``), on every record with text: ``dup_cluster`` = SHA-256 (hex) of the content, which
  names the group of identical files; ``dup_count`` = how many input records have that content (1: unique).
- fuzzy (``--mode fuzzy|both``), on every record that took part: ``minhash_cluster`` = SHA-256 (hex) of the
  cluster's surviving record; ``minhash_count`` = records in the near-duplicate cluster (after exact dedup in
  ``both`` mode, so identical copies are counted once, in ``dup_count``).
- removed records also get ``duplicate_of`` (the survivor's ``id``) and the drop reason ``exact_duplicate`` or
  ``fuzzy_duplicate``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from oc_common.fileio import atomic_write_bytes
from oc_common.records import write_records
from oc_common.stats import Stats
from oc_synth.curate.dedup.index import IndexData
from oc_synth.curate.dedup.keep_rule import pick_survivors

EXACT_REASON = "exact_duplicate"
FUZZY_REASON = "fuzzy_duplicate"


def decision_path(decisions_dir: Path, shard: str) -> Path:
    return Path(decisions_dir) / f"{shard}.parquet"


def cluster_outcome(data: IndexData, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per record: its survivor's position (-1 when it took no part) and its cluster's size (0 when none)."""
    survivor = np.full(len(data), -1, np.int64)
    size = np.zeros(len(data), np.int64)
    pos = np.nonzero(labels >= 0)[0]
    s, c = pick_survivors(labels[pos], data.stars[pos], data.times[pos], data.ids[pos], data.docs[pos])
    survivor[pos] = pos[s]
    size[pos] = c
    return survivor, size


def hex_digests(data: IndexData, positions: np.ndarray) -> np.ndarray:
    return np.array([data.sha256[p].ljust(32, b"\0").hex() if p >= 0 else None for p in positions.tolist()],
                    dtype=object)


def decide(data: IndexData, exact_labels: np.ndarray | None,
           fuzzy_labels_fn: Callable[[np.ndarray], np.ndarray] | None, stats: Stats) -> dict[str, Any]:
    """Apply the keep rule to the engine's clusters. ``fuzzy_labels_fn(candidates)`` is called with the records still
    alive after exact dedup (None: no fuzzy pass). Returns per-record columns for the decision files."""
    n = len(data)
    reason = np.full(n, None, dtype=object)
    survivor_of = np.full(n, -1, np.int64)
    cols: dict[str, Any] = {}
    alive = data.has_text.copy()
    if exact_labels is not None:
        surv, size = cluster_outcome(data, exact_labels)
        removed = (surv >= 0) & (surv != np.arange(n))
        reason[removed], survivor_of[removed] = EXACT_REASON, surv[removed]
        alive &= ~removed
        cols["dup_cluster"] = hex_digests(data, np.where(data.has_text, np.arange(n), -1))
        cols["dup_count"] = np.where(data.has_text, size, -1)
        stats.add("exact_groups", len(np.unique(exact_labels[size > 1])))
        stats.add("exact_removed", int(removed.sum()))
    if fuzzy_labels_fn is not None:
        candidates = alive & data.shingled
        labels = fuzzy_labels_fn(candidates)
        surv, size = cluster_outcome(data, labels)
        removed = (surv >= 0) & (surv != np.arange(n))
        reason[removed], survivor_of[removed] = FUZZY_REASON, surv[removed]
        cols["minhash_cluster"] = hex_digests(data, surv)
        cols["minhash_count"] = np.where(surv >= 0, size, -1)
        stats.add("fuzzy_candidates", int(candidates.sum()))
        stats.add("fuzzy_clusters", len(np.unique(labels[size > 1])))
        stats.add("fuzzy_removed", int(removed.sum()))
    cols["reason"] = reason
    cols["duplicate_of"] = np.array([data.ids[p] if p >= 0 else None for p in survivor_of.tolist()], dtype=object)
    return cols


def write_decisions(data: IndexData, cols: dict[str, Any], decisions_dir: Path) -> None:
    """One Parquet file per shard, rows in shard order; -1 counts become nulls."""
    bounds = np.searchsorted(data.shard, np.arange(len(data.shard_names) + 1))
    for i, name in enumerate(data.shard_names):
        lo, hi = bounds[i], bounds[i + 1]
        table = {"row": pa.array(data.row[lo:hi])}
        for key in ("dup_cluster", "minhash_cluster", "reason", "duplicate_of"):
            if key in cols:
                table[key] = pa.array(cols[key][lo:hi].tolist(), type=pa.string())
        for key in ("dup_count", "minhash_count"):
            if key in cols:
                values = cols[key][lo:hi]
                table[key] = pa.array(values, mask=values < 0, type=pa.int64())
        buf = io.BytesIO()
        pq.write_table(pa.table(table), buf)
        atomic_write_bytes(decision_path(decisions_dir, name), buf.getvalue())


def write_removed_ids(data: IndexData, cols: dict[str, Any], path: Path) -> int:
    """The removed records' ids with their cluster and survivor (JSONL or Parquet by suffix)."""
    removed = np.nonzero(cols["reason"] != None)[0]  # noqa: E711 - object array comparison
    rows = []
    for p in removed.tolist():
        fuzzy = cols["reason"][p] == FUZZY_REASON
        rows.append({
            "id": data.ids[p],
            "shard": data.shard_names[data.shard[p]],
            "row": int(data.row[p]),
            "reason": cols["reason"][p],
            "cluster": cols["minhash_cluster"][p] if fuzzy else cols["dup_cluster"][p],
            "duplicate_of": cols["duplicate_of"][p],
        })
    return write_records(path, rows)
