"""Whether a record is kept, and why not: the fields every stage writes and the one helper that writes them.

A stage never deletes a record it rejects; it marks it (``keep = False``) and appends a machine-readable reason
(``drop_reasons``, e.g. ``qsc_code_num_words`` or ``verify:failed``) and, where a person needs more, a sentence
(``drop_details``, same position). Reasons accumulate across stages; counts per reason go into each stage's stats.
"""

from __future__ import annotations

from typing import Any

KEEP = "keep"
DROP_REASONS = "drop_reasons"
DROP_DETAILS = "drop_details"


def reject(record: dict[str, Any], reason: str, detail: str | None = None) -> None:
    """Mark ``record`` dropped for ``reason`` (and ``detail``, kept aligned with the reasons when given)."""
    record[KEEP] = False
    reasons = record.get(DROP_REASONS)
    record[DROP_REASONS] = [*reasons, reason] if isinstance(reasons, list) else [reason]
    if detail is not None:
        details = record.get(DROP_DETAILS)
        record[DROP_DETAILS] = [*details, detail] if isinstance(details, list) else [detail]
