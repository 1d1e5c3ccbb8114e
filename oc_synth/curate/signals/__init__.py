"""RefineCode quality signals (``qsc_*``): a shared per-document tokenization and one function per signal.

Importing this package registers every signal in ``SIGNALS``.
"""

from oc_synth.curate.signals import c_family, code, csharp, go, html, java, javascript, python, text  # noqa: F401
from oc_synth.curate.signals.document import Document
from oc_synth.curate.signals.registry import SIGNALS, QualitySignal, SignalValue

__all__ = ["SIGNALS", "Document", "QualitySignal", "SignalValue"]
