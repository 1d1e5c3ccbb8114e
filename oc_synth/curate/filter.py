"""``oc-synth curate filter``: OpenCoder's RefineCode heuristic rules as NeMo Curator filters and a pipeline stage.

Two ways in:

- ``RefineCodeFilterStage``: the stage ``run_filter`` runs. Per record it builds one ``Document`` (tokenized once),
  picks the rule profile from the record's ``doc_type`` and ``language``, computes the profile's signals within a time
  budget and applies every rule; each rule that fires adds its signal name to ``drop_reasons``.
- ``RefineCodeRule``: one rule as a NeMo Curator ``DocumentFilter``, for use in Curator's own ``ScoreFilter``.
  It sees only the text, so it tokenizes per rule (slower; what the benchmark's baseline measures), and its
  language and doc type are fixed when it is built (``refinecode_filters("python")``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemo_curator.stages.text.filters.doc_filter import DocumentFilter
from nemo_curator.tasks import DocumentBatch

from oc_common.outcome import reject
from oc_common.stats import Stats
from oc_synth.curate.signals import SIGNALS, Document
from oc_synth.curate.signals.registry import SignalValue
from oc_synth.curate.signals.rules import FilterConfig, Rule, RuleSet, RuleSpec, load_filter_config, stable_uniform
from oc_synth.curate.signals.scoring import DocumentScorer
from oc_synth.pipeline.stages import RecordStage, batch_stats


class RefineCodeRule(DocumentFilter):
    """One RefineCode rule as a NeMo Curator filter: the score is the ``qsc_*`` signal of the text; the document is
    kept unless the rule drops it. For a sampled rule the score is ``[value, coin]``, the coin a stable hash of the
    text (a filter never sees the record id)."""

    def __init__(self, signal: str, spec: RuleSpec | dict[str, Any], *, language: str | None = None,
                 doc_type: str = "code", seed: int = 0):
        super().__init__()
        if signal not in SIGNALS:
            raise ValueError(f"unknown signal {signal!r}")
        self.rule = Rule(signal, spec if isinstance(spec, RuleSpec) else RuleSpec.model_validate(spec))
        self.language, self.doc_type, self.seed = language, doc_type, seed
        self._name = signal

    def score_document(self, text: str) -> SignalValue | list[SignalValue]:
        value = SIGNALS[self.rule.signal].compute(Document(text, language=self.language, doc_type=self.doc_type))
        if self.rule.sampled:
            return [value, stable_uniform(self.seed, self.rule.signal, text)]
        return value

    def keep_document(self, score: SignalValue | list[SignalValue]) -> bool:
        value, coin = (score[0], score[1]) if isinstance(score, (list, tuple)) else (score, 0.0)
        if isinstance(value, float) and math.isnan(value):  # a None score after a trip through pandas
            value = None
        return not self.rule.drops_at(value, coin)


def refinecode_filters(profile: str, config: FilterConfig | None = None) -> list[RefineCodeRule]:
    """The rules of one profile (``text``, ``code``, ``data``, ``python``, ...) as Curator filters."""
    config = config or load_filter_config()
    resolved = RuleSet(config).profiles[profile]
    language = next((lang for lang, name in config.languages.items() if name == profile), None)
    doc_type = {"text": "text", "data": "data"}.get(profile, "code")
    return [RefineCodeRule(rule.signal, rule.spec, language=language, doc_type=doc_type, seed=config.seed)
            for rule in resolved.rules]


@dataclass
class RefineCodeFilterStage(RecordStage):
    """Applies the whole rule set to each record with one shared Document. ``keep_signals`` (``--signals``) writes
    every signal of the record's profile on it, and scores rejected records too."""

    name: str = "refinecode_filter"
    config: FilterConfig | None = None
    keep_signals: bool = False
    _seconds: Counter = field(default_factory=Counter, init=False, repr=False)

    def __post_init__(self) -> None:
        self.process_rejected = self.process_rejected or self.keep_signals

    def setup_worker(self) -> None:
        self._scorer = DocumentScorer(RuleSet(self.config or load_filter_config()), all_signals=self.keep_signals)

    def output_fields(self) -> dict[str, str]:
        """With ``--signals``: every signal of every profile (a record gets its own profile's; null for the others)."""
        if not self.keep_signals:
            return {}
        profiles = RuleSet(self.config or load_filter_config()).profiles.values()
        return {name: "float64" for p in profiles for name in p.all_signals}

    def process(self, batch: DocumentBatch) -> DocumentBatch:
        self.ensure_setup()
        self._seconds = Counter()
        with self._scorer:
            out = super().process(batch)
        st = batch_stats(out)
        for signal, seconds in self._seconds.items():
            st.add_to("signal_seconds", signal, round(seconds, 4))
        return out

    def process_record(self, record: dict[str, Any], stats: Stats) -> dict[str, Any]:
        verdict = self._scorer.score(record)
        stats.add_to("filter_profile", verdict.profile or "(none)")
        for rule in verdict.spared_by_sampling:
            stats.add_to("spared_by_sampling", rule)
        for signal in verdict.errors:
            stats.add_to("signal_errors", signal)
        self._seconds.update(verdict.seconds)
        if self.keep_signals:
            record.update(verdict.values)
        for reason in verdict.drop_reasons:
            reject(record, reason)
        return record


def run_filter(inp: Path, out: Path, *, config: Path | None = None, overrides: Iterable[str] = (),
               signals: bool = False, compat: str | None = None, reference_bugs: bool | None = None,
               dropped: Path | None = None, executor: str = "local", workers: int = 1, overwrite: bool = False,
               quiet: bool = False, output_format: str = "jsonl") -> Stats:
    """Filter IN into OUT with the shipped RefineCode rules (or ``config`` merged over them, plus ``overrides``).
    ``compat`` (ours | reference) and ``reference_bugs``, when given, override the config's keys of those names.
    ``workers`` > 1: shards in that many processes (same output)."""
    from oc_synth.pipeline.runner import run_sharded

    flags = [f"compat={compat}"] if compat is not None else []
    flags += [f"reference_bugs={str(reference_bugs).lower()}"] if reference_bugs is not None else []
    rules = load_filter_config(config, [*overrides, *flags])  # fails here, naming the key, before any work starts
    if rules.reference_bugs:
        _require_esprima()
    stage = RefineCodeFilterStage(config=rules, keep_signals=signals)
    return run_sharded(command="curate filter", inp=inp, out=out, stages=[stage],
                       options={"rules": rules.model_dump(mode="json"), "signals": signals},
                       dropped=dropped, annotate=signals or dropped is not None, executor=executor,
                       workers=workers, overwrite=overwrite, quiet=quiet, output_format=output_format)


def _require_esprima() -> None:
    try:
        import esprima  # noqa: F401
    except ImportError:
        from oc_common.errors import EnvironmentProblem

        raise EnvironmentProblem("--reference-bugs parses JavaScript with esprima 4.0.1, the reference's parser: "
                                 "pip install esprima==4.0.1 (or the project's [reference] extra)") from None
