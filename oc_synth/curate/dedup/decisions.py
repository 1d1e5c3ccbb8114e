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
from collections.abc import Callable, Iterator
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
REASONS = (None, EXACT_REASON, FUZZY_REASON)  # the codes decide() stores per record: 0 kept, 1 exact, 2 fuzzy
EXACT, FUZZY = 1, 2


def decision_path(decisions_dir: Path, shard: str) -> Path:
    return Path(decisions_dir) / f"{shard}.parquet"


def cluster_outcome(data: IndexData, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per record: its survivor's position (-1 when it took no part) and its cluster's size (0 when none).

    A record alone in its cluster survives itself; the keep rule (and the ids it may need to break ties) only runs
    over the members of clusters of two or more, so a mostly unique corpus costs little here."""
    survivor = np.full(len(data), -1, np.int64)
    size = np.zeros(len(data), np.int64)
    pos = np.nonzero(labels >= 0)[0]
    if not len(pos):
        return survivor, size
    members = labels[pos]  # labels are positions (engines.py): a count per position, no sort
    size[pos] = np.bincount(members, minlength=len(data))[members]
    del members
    alone = size[pos] == 1
    survivor[pos[alone]] = pos[alone]
    shared = pos[~alone]
    if len(shared):
        s, _ = pick_survivors(labels[shared], data.values_at("stars", shared), data.values_at("commit_time", shared),
                              data.ids_at(shared), data.docs_at(shared))
        survivor[shared] = shared[s]
    return survivor, size


def hex_digests(data: IndexData, positions: np.ndarray) -> list[str | None]:
    return [data.sha256[p].ljust(32, b"\0").hex() if p >= 0 else None for p in positions.tolist()]


def decide(data: IndexData, exact_labels: np.ndarray | None,
           fuzzy_labels_fn: Callable[[np.ndarray], np.ndarray] | None, stats: Stats) -> dict[str, Any]:
    """Apply the keep rule to the engine's clusters. ``fuzzy_labels_fn(candidates)`` is called with the records still
    alive after exact dedup (None: no fuzzy pass). Returns per-record numeric columns (no Python object per record:
    the text fields are made per shard when the decisions are written): ``reason`` (a code of ``REASONS``),
    ``survivor_of`` (position of the removed record's survivor, else -1), ``dup_count`` (exact), ``minhash_survivor``
    and ``minhash_count`` (fuzzy; -1 where a record took no part)."""
    n = len(data)
    reason = np.zeros(n, np.int8)
    survivor_of = np.full(n, -1, np.int64)
    cols: dict[str, Any] = {}
    alive = data.has_text.copy()
    if exact_labels is not None:
        surv, size = cluster_outcome(data, exact_labels)
        removed = (surv >= 0) & (surv != np.arange(n))
        reason[removed], survivor_of[removed] = EXACT, surv[removed]
        alive &= ~removed
        cols["dup_count"] = np.where(data.has_text, size, -1)
        stats.add("exact_groups", len(np.unique(exact_labels[size > 1])))
        stats.add("exact_removed", int(removed.sum()))
    if fuzzy_labels_fn is not None:
        candidates = alive & data.shingled
        labels = fuzzy_labels_fn(candidates)
        surv, size = cluster_outcome(data, labels)
        removed = (surv >= 0) & (surv != np.arange(n))
        reason[removed], survivor_of[removed] = FUZZY, surv[removed]
        cols["minhash_survivor"] = surv
        cols["minhash_count"] = np.where(surv >= 0, size, -1)
        stats.add("fuzzy_candidates", int(candidates.sum()))
        stats.add("fuzzy_clusters", len(np.unique(labels[size > 1])))
        stats.add("fuzzy_removed", int(removed.sum()))
    cols["reason"] = reason
    cols["survivor_of"] = survivor_of
    return cols


def _survivor_ids(data: IndexData, cols: dict[str, Any]) -> dict[int, str | None]:
    """Position -> id of every survivor of a removed record (the ``duplicate_of`` values), read once."""
    survivors = np.unique(cols["survivor_of"][cols["survivor_of"] >= 0])
    return dict(zip(survivors.tolist(), data.ids_at(survivors).tolist(), strict=True))


def write_decisions(data: IndexData, cols: dict[str, Any], decisions_dir: Path) -> None:
    """One Parquet file per shard, rows in shard order; -1 counts become nulls. The text columns (cluster digests,
    ``duplicate_of``, reasons) are built here, one shard at a time."""
    bounds = data.starts
    survivor_ids = _survivor_ids(data, cols)
    for i, name in enumerate(data.shard_names):
        lo, hi = bounds[i], bounds[i + 1]
        here = np.arange(lo, hi)
        table = {"row": pa.array(np.arange(hi - lo, dtype=np.int64))}
        if "dup_count" in cols:
            table["dup_cluster"] = pa.array(hex_digests(data, np.where(data.has_text[lo:hi], here, -1)), pa.string())
        if "minhash_survivor" in cols:
            table["minhash_cluster"] = pa.array(hex_digests(data, cols["minhash_survivor"][lo:hi]), pa.string())
        table["reason"] = pa.array([REASONS[c] for c in cols["reason"][lo:hi].tolist()], pa.string())
        table["duplicate_of"] = pa.array([survivor_ids[p] if p >= 0 else None
                                          for p in cols["survivor_of"][lo:hi].tolist()], pa.string())
        for key in ("dup_count", "minhash_count"):
            if key in cols:
                values = cols[key][lo:hi]
                table[key] = pa.array(values, mask=values < 0, type=pa.int64())
        buf = io.BytesIO()
        pq.write_table(pa.table(table), buf)
        atomic_write_bytes(decision_path(decisions_dir, name), buf.getvalue())


def write_removed_ids(data: IndexData, cols: dict[str, Any], path: Path) -> int:
    """The removed records' ids with their cluster and survivor (JSONL or Parquet by suffix)."""
    removed = np.nonzero(cols["reason"] != 0)[0]
    ids = data.ids_at(removed)
    survivor_ids = _survivor_ids(data, cols)

    def rows() -> Iterator[dict[str, Any]]:
        for k, p in enumerate(removed.tolist()):
            fuzzy = cols["reason"][p] == FUZZY
            cluster = cols["minhash_survivor"][p] if fuzzy else p
            yield {"id": ids[k], "shard": data.shard_names[data.shard[p]], "row": int(p - data.starts[data.shard[p]]),
                   "reason": REASONS[cols["reason"][p]], "cluster": hex_digests(data, np.array([cluster]))[0],
                   "duplicate_of": survivor_ids[int(cols["survivor_of"][p])]}

    return write_records(path, rows())
