"""The registry of quality signals, keyed by the reference's ``qsc_<family>_<metric>_<unit>_<desc>`` names.

A signal is a function ``Document -> float | None`` (None: not defined for this document, e.g. no lines; a rule never
fires on None). The family is the second part of the name: ``doc`` (text files), ``code`` (every code/data file) or
``code<lang>`` (one language, e.g. ``codepython``), and decides which documents the signal is computed for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from oc_synth.curate.signals.document import Document

SignalValue = float | None
PRECISION = 8  # the reference rounds fractions to 8 decimals


@dataclass(frozen=True)
class QualitySignal:
    name: str
    compute: Callable[[Document], SignalValue]

    @property
    def family(self) -> str:
        return self.name.split("_")[1]


SIGNALS: dict[str, QualitySignal] = {}


def quality_signal(*names: str) -> Callable[[Callable[[Document], SignalValue]], Callable[[Document], SignalValue]]:
    """Register a function under one or more signal names (text and code families share some definitions)."""

    def register(fn: Callable[[Document], SignalValue]) -> Callable[[Document], SignalValue]:
        for name in names:
            if not name.startswith("qsc_") or name in SIGNALS:
                raise ValueError(f"signal {name!r}: names must start with qsc_ and be unique")
            SIGNALS[name] = QualitySignal(name, fn)
        return fn

    return register


def fraction(count: float, total: float) -> SignalValue:
    """count / total rounded like the reference, or None when total is 0."""
    return round(count / total, PRECISION) if total else None


def flag(value: bool) -> float:
    """Categorical (``cate``) signals are 1.0 / 0.0, as in the reference."""
    return 1.0 if value else 0.0


def frac_code_lines_with(doc: Document, *needles: str, ignore_case: bool = False) -> SignalValue:
    """Code lines containing any of ``needles``, over code lines (None without code lines)."""
    return fraction(doc.count_code_lines_with(*needles, ignore_case=ignore_case), len(doc.code_lines))
