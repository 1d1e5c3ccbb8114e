"""OpenCoder's published scores (greedy pass@1, in %), printed beside ours when the model is an OpenCoder checkpoint.

Source: the OpenCoder paper (arXiv 2411.04905, v3), table of base and instruct results; docs/eval.md says how close a
reproduction gets and why it may differ (prompt format, stop sequences, EvalPlus version).
"""

from __future__ import annotations

import re

from oc_common.errors import OcError

# model id -> benchmark -> variant -> pass@1 (%)
PUBLISHED: dict[str, dict[str, dict[str, float]]] = {
    "opencoder-1.5b-base": {"humaneval": {"base": 54.3, "plus": 49.4}, "mbpp": {"base": 70.6, "plus": 58.7}},
    # v1 of the paper reported 68.9 on HumanEval for the 8B base model.
    "opencoder-8b-base": {"humaneval": {"base": 66.5, "plus": 63.4}, "mbpp": {"base": 79.9, "plus": 70.4}},
    "opencoder-1.5b-instruct": {"humaneval": {"base": 72.5, "plus": 67.7}, "mbpp": {"base": 72.7, "plus": 61.9}},
    "opencoder-8b-instruct": {"humaneval": {"base": 83.5, "plus": 78.7}, "mbpp": {"base": 79.1, "plus": 69.0}},
}


def _normalise(name: str) -> str:
    return re.sub(r"[\s_]+", "-", name.lower())


def reference_model(model: str, explicit: str | None = None) -> str | None:
    """The OpenCoder model id whose published numbers apply: ``explicit`` (``--reference``), else the id that the
    model name or path contains (``infly/OpenCoder-1.5B-Base``, ``/ckpt/opencoder-8b-instruct-hf``), else None."""
    if explicit is not None:
        key = _normalise(explicit)
        if key not in PUBLISHED:
            raise OcError(f"--reference {explicit!r}: unknown; choose one of {', '.join(PUBLISHED)}")
        return key
    name = _normalise(model)
    # Longest id first, so that nothing shorter shadows a longer one that also matches.
    for key in sorted(PUBLISHED, key=len, reverse=True):
        if key in name:
            return key
    return None


def published_pass_at_1(model_id: str, benchmark: str, variant: str) -> float | None:
    """The published pass@1 as a fraction (0.543), or None where none was published."""
    value = PUBLISHED.get(model_id, {}).get(benchmark, {}).get(variant)
    return None if value is None else value / 100.0
