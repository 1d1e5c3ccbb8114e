"""Score one record against a rule set: build its Document once, compute its profile's signals within the time
budget, apply the rules.

A signal that raises or runs past the budget gets the value None and drops the record with reason
``error:<signal>``; every other signal is still computed, so the record's remaining values (and rule hits) are
still reported.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from oc_common.log import get_logger
from oc_synth.curate.signals.budget import SignalTimeout, TimeBudget
from oc_synth.curate.signals.document import Document
from oc_synth.curate.signals.registry import SIGNALS, SignalValue
from oc_synth.curate.signals.rules import RuleProfile, RuleSet

log = get_logger(__name__)
ERROR_PREFIX = "error:"
UNKNOWN_DOC_TYPE = "unknown_doc_type"
MAX_ERRORS_LOGGED = 5


@dataclass
class Verdict:
    profile: str | None
    values: dict[str, SignalValue] = field(default_factory=dict)
    drop_reasons: list[str] = field(default_factory=list)  # error:<signal> first, then fired rules in rule order
    spared_by_sampling: list[str] = field(default_factory=list)  # sampled rules that fired but did not drop
    seconds: Counter = field(default_factory=Counter, repr=False)  # per signal

    @property
    def keep(self) -> bool:
        return not self.drop_reasons


def document_key(record: Mapping[str, Any], text: str) -> str:
    """What sampled rules hash: the record id, or the text's digest for records without one."""
    rid = record.get("id")
    if rid is not None and rid != "":
        return str(rid)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class DocumentScorer:
    """Applies a RuleSet to records. ``all_signals``: compute every signal of the profile, not only ruled ones.

    Use as a context manager around a batch (it arms the time budget's alarm handler for that span), or call
    ``score`` outside one (the budget is then checked after each signal instead of interrupting it).
    """

    def __init__(self, rules: RuleSet, all_signals: bool = False):
        self.rules = rules
        self.all_signals = all_signals
        self.budget = TimeBudget(rules.config.signal_time_budget_s)
        self._errors_logged = 0

    def __enter__(self) -> DocumentScorer:
        self.budget.__enter__()
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self.budget.__exit__(*exc)

    def signals_for(self, profile: RuleProfile) -> tuple[str, ...]:
        return profile.all_signals if self.all_signals else profile.ruled_signals

    def score(self, record: Mapping[str, Any]) -> Verdict:
        doc = Document.from_record(record, self.rules.config.text_field)
        profile = self.rules.profile_for(doc.doc_type, doc.language)
        if profile is None:
            return Verdict(profile=None, drop_reasons=[UNKNOWN_DOC_TYPE])
        verdict = Verdict(profile=profile.name)
        errors = []
        for name in self.signals_for(profile):
            start = time.perf_counter()
            try:
                verdict.values[name] = self.budget.call(SIGNALS[name].compute, doc)
            except (Exception, SignalTimeout) as exc:  # noqa: BLE001 - one bad signal must not cost the others
                verdict.values[name] = None
                errors.append(name)
                self._log_error(record, name, exc)
            verdict.seconds[name] += time.perf_counter() - start
        verdict.drop_reasons = [ERROR_PREFIX + name for name in errors]
        key = document_key(record, doc.text)
        for rule in profile.rules:
            value = verdict.values.get(rule.signal)
            if rule.drops(value, key, self.rules.config.seed):
                verdict.drop_reasons.append(rule.signal)
            elif rule.sampled and rule.fires(value):
                verdict.spared_by_sampling.append(rule.signal)
        return verdict

    def _log_error(self, record: Mapping[str, Any], signal: str, exc: BaseException) -> None:
        if self._errors_logged >= MAX_ERRORS_LOGGED:
            return
        self._errors_logged += 1
        what = "ran past its time budget" if isinstance(exc, SignalTimeout) else f"raised {exc!r}"
        log.warning("signal %s %s on record %s (%s); the record is dropped as %s%s", signal, what,
                    record.get("id"), record.get("path"), ERROR_PREFIX, signal)
