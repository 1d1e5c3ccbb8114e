"""Score one record against a rule set: build its Document once, compute its profile's signals within the time
budget, apply the rules.

``compat: ours`` (the default): a signal that raises or runs past the budget gets the value None and drops the record
with reason ``error:<signal>``; every other signal is still computed, so the record's remaining values (and rule hits)
are still reported. Sampled rules use a deterministic coin (``stable_uniform``).

``compat: reference``: OpenCoder's semantics. Signals are computed group by group (``qsc_doc_*``; or ``qsc_code_*``
then the language's own) in the reference's order (data/reference_signal_order.json); one that raises or times out is
None and the rest of its group is not computed, and the record is kept unless a rule fires on the values there are.
A sampled rule that fires draws ``random.random()`` and drops when the draw exceeds ``1 - drop_probability`` (the
reference's ``x > 0.5 and random.random() > 0.2``); the draws come from a generator seeded by (seed, record), so a
rerun repeats them. Errors are counted in both modes.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import json
import random
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
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
# The cyclic collector's first-generation threshold while a batch is scored. Scoring allocates containers by the
# million (token tuples, AST nodes, word lists), few if any in reference cycles, so most default collections (each
# 700 allocations) walk young objects only to free nothing; at this threshold the filter spends ~10% less CPU
# (benchmarks/filter_throughput.py). Cycles made elsewhere in the process are still collected, just less often.
BATCH_GC_THRESHOLD = 50_000


@dataclass
class Verdict:
    profile: str | None
    values: dict[str, SignalValue] = field(default_factory=dict)
    drop_reasons: list[str] = field(default_factory=list)  # error:<signal> first, then fired rules in rule order
    spared_by_sampling: list[str] = field(default_factory=list)  # sampled rules that fired but did not drop
    errors: list[str] = field(default_factory=list)  # signals that raised or ran out of time
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

    Use as a context manager around a batch (it arms the time budget's alarm handler and raises the garbage
    collector's threshold for that span), or call ``score`` outside one (the budget is then checked after each signal
    instead of interrupting it).
    """

    def __init__(self, rules: RuleSet, all_signals: bool = False):
        self.rules = rules
        self.all_signals = all_signals
        self.budget = TimeBudget(rules.config.signal_time_budget_s)
        self._errors_logged = 0

    def __enter__(self) -> DocumentScorer:
        self.budget.__enter__()
        self._gc_thresholds = gc.get_threshold()
        gc.set_threshold(max(BATCH_GC_THRESHOLD, self._gc_thresholds[0]), *self._gc_thresholds[1:])
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        gc.set_threshold(*self._gc_thresholds)
        self.budget.__exit__(*exc)

    def signals_for(self, profile: RuleProfile) -> tuple[str, ...]:
        return profile.all_signals if self.all_signals else profile.ruled_signals

    def score(self, record: Mapping[str, Any]) -> Verdict:
        config = self.rules.config
        doc = Document.from_record(record, config.text_field, reference_bugs=config.reference_bugs)
        profile = self.rules.profile_for(doc.doc_type, doc.language, doc.natural_language)
        if profile is None:
            return Verdict(profile=None, drop_reasons=[UNKNOWN_DOC_TYPE])
        verdict = Verdict(profile=profile.name)
        key = document_key(record, doc.text)
        if config.compat == "reference":
            for group in reference_groups(profile):
                for name in group:
                    if not self._compute(record, doc, name, verdict):
                        break  # the reference abandons the rest of the group
            rng = random.Random(f"{config.seed}\0{key}")
            for rule in profile.rules:
                if not rule.fires(verdict.values.get(rule.signal)):
                    continue
                if rule.sampled and not rng.random() > 1.0 - rule.spec.drop_probability:
                    verdict.spared_by_sampling.append(rule.signal)
                else:
                    verdict.drop_reasons.append(rule.signal)
            return verdict
        for name in self.signals_for(profile):
            self._compute(record, doc, name, verdict)
        verdict.drop_reasons = [ERROR_PREFIX + name for name in verdict.errors]
        for rule in profile.rules:
            value = verdict.values.get(rule.signal)
            if rule.drops(value, key, config.seed):
                verdict.drop_reasons.append(rule.signal)
            elif rule.sampled and rule.fires(value):
                verdict.spared_by_sampling.append(rule.signal)
        return verdict

    def _compute(self, record: Mapping[str, Any], doc: Document, name: str, verdict: Verdict) -> bool:
        """Compute one signal into ``verdict``; False when it raised or ran out of time (its value is then None)."""
        start = time.perf_counter()
        try:
            verdict.values[name] = self.budget.call(SIGNALS[name].compute, doc)
            return True
        except (Exception, SignalTimeout) as exc:  # noqa: BLE001 - one bad signal must not cost the others
            verdict.values[name] = None
            verdict.errors.append(name)
            self._log_error(record, name, exc)
            return False
        finally:
            verdict.seconds[name] += time.perf_counter() - start

    def _log_error(self, record: Mapping[str, Any], signal: str, exc: BaseException) -> None:
        if self._errors_logged >= MAX_ERRORS_LOGGED:
            return
        self._errors_logged += 1
        what = "ran past its time budget" if isinstance(exc, SignalTimeout) else f"raised {exc!r}"
        outcome = ("its value is null (compat reference)" if self.rules.config.compat == "reference"
                   else f"the record is dropped as {ERROR_PREFIX}{signal}")
        log.warning("signal %s %s on record %s (%s); %s", signal, what, record.get("id"), record.get("path"), outcome)


@functools.lru_cache(maxsize=1)
def reference_signal_order() -> tuple[str, ...]:
    """The reference's signal registration order (generated by scripts/build_opencoder_table.py)."""
    path = resources.files("oc_synth.curate").joinpath("data/reference_signal_order.json")
    return tuple(json.loads(path.read_text(encoding="utf-8"))["order"])


def reference_groups(profile: RuleProfile) -> list[list[str]]:
    """The signal groups the reference computes for a profile, in its order: ``qsc_doc_*`` for text; ``qsc_code_*``,
    then the profile's language family. Every signal of a group is computed, ruled or not (an error in an unruled
    one still ends the group)."""
    prefixes = ["qsc_doc_"] if profile.for_text else ["qsc_code_", f"qsc_code{profile.name}_"]
    order = reference_signal_order()
    return [[name for name in order if name.startswith(prefix) and name in SIGNALS] for prefix in prefixes]
