"""Grouping: equal keys -> groups, LSH buckets -> candidate pairs -> connected components. All vectorised numpy.

Nodes are positions 0..n-1 in the caller's arrays; a component is labelled by its smallest member, so labels do not
depend on the order in which edges arrive (any number of workers, any band order gives the same clustering).
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np


def group_equal(keys: np.ndarray) -> np.ndarray:
    """Label each position with the smallest position holding an equal key (exact duplicates share a label)."""
    n = len(keys)
    if n == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(keys, kind="stable")  # stable: each run starts at its smallest position
    sorted_keys = keys[order]
    run_start = np.ones(n, bool)
    run_start[1:] = sorted_keys[1:] != sorted_keys[:-1]
    first = order[np.nonzero(run_start)[0]]
    labels = np.empty(n, np.int64)
    labels[order] = first[np.cumsum(run_start) - 1]
    return labels


def bucket_edges(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs of one LSH band as a star per bucket: every member -> the bucket's smallest position.

    A star has the same connected components as all pairs of the bucket with ``size - 1`` edges instead of
    ``size * (size - 1) / 2``.
    """
    labels = group_equal(keys)
    members = np.nonzero(labels != np.arange(len(keys)))[0]
    return members.astype(np.int64), labels[members]


def bucket_pairs(keys: np.ndarray, max_bucket: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Every pair inside each bucket (for a Jaccard check of candidates); buckets larger than ``max_bucket`` fall
    back to their star (a pair check there would be quadratic)."""
    labels = group_equal(keys)
    u_parts, v_parts = [], []
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    bounds = np.nonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1], True])[0]
    for lo, hi in pairwise(bounds):
        size = hi - lo
        if size < 2:
            continue
        members = order[lo:hi]
        if size > max_bucket:
            u_parts.append(members[1:])
            v_parts.append(np.full(size - 1, members[0]))
            continue
        iu, iv = np.triu_indices(size, k=1)
        u_parts.append(members[iu])
        v_parts.append(members[iv])
    if not u_parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(u_parts).astype(np.int64), np.concatenate(v_parts).astype(np.int64)


class Components:
    """Union of edge sets given one batch at a time (one LSH band at a time keeps only that band's edges in memory).

    Hooking + pointer jumping: ``parent[x] <= x`` always, roots are the smallest members of their component.
    """

    def __init__(self, n: int):
        self.parent = np.arange(n, dtype=np.int64)

    def _compress(self) -> None:
        while True:
            grand = self.parent[self.parent]
            if np.array_equal(grand, self.parent):
                return
            self.parent = grand

    def union(self, u: np.ndarray, v: np.ndarray) -> None:
        if len(u) == 0:
            return
        while True:
            ru, rv = self.parent[u], self.parent[v]
            differ = ru != rv
            if not differ.any():
                return
            ru, rv = ru[differ], rv[differ]
            low = np.minimum(ru, rv)
            np.minimum.at(self.parent, ru, low)
            np.minimum.at(self.parent, rv, low)
            self._compress()

    def labels(self) -> np.ndarray:
        self._compress()
        return self.parent.copy()
