"""Rules over quality signals, configured in YAML (``oc_synth/curate/rules.yaml``): which signal, which condition,
for which kind of file.

A rule is a signal name with conditions ``lt`` / ``le`` / ``gt`` / ``ge`` / ``eq``; it fires when any condition holds
(``{lt: 2, gt: 10}``: outside [2, 10]) and never on a missing (None) value. ``drop_probability`` below 1 makes a fired
rule drop only that share of documents, chosen by a stable hash of (seed, rule, document id): the same document gets
the same decision in every run, on every worker.

Rules are grouped in profiles (``text``, ``code``, ``data``, ``python``, ...). A profile may extend another: it starts
from the parent's rules; a rule it names replaces the parent's condition by condition (``{gt: null}`` removes one),
and ``null`` turns the rule off. ``languages`` maps Linguist language names to profiles; other code and data files
use ``code`` / ``data``, text files ``text`` or, by their natural language, the profile ``text_profiles`` names
(``zh: text_zh``, the reference's Chinese rules).

``compat`` picks the semantics: ``ours`` (errors drop the file, a deterministic coin for sampled rules) or
``reference`` (OpenCoder's code exactly: an erroring signal is null and ends its group, the file is kept unless a
rule fires; sampled rules draw ``random.random()``). docs/filter.md lists the differences.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from oc_common.config import StrictModel, load_config, read_yaml
from oc_common.errors import ConfigError
from oc_synth.curate.signals.registry import SIGNALS, SignalValue

DEFAULT_RULES_PATH = Path(__file__).resolve().parent.parent / "rules.yaml"
TEXT_PROFILE = "text"
FALLBACK_PROFILE = {"code": "code", "data": "data", "text": TEXT_PROFILE}  # doc_type -> profile
_CONDITIONS = ("lt", "le", "gt", "ge", "eq")


class RuleSpec(StrictModel):
    """Conditions of one rule (any may be null). It fires when any of the set conditions holds."""

    lt: float | None = None
    le: float | None = None
    gt: float | None = None
    ge: float | None = None
    eq: bool | float | None = None
    drop_probability: float = Field(1.0, ge=0.0, le=1.0)

    def has_condition(self) -> bool:
        return any(getattr(self, c) is not None for c in _CONDITIONS)

    def merged_over(self, parent: RuleSpec) -> RuleSpec:
        """This (partial) spec laid over the parent's: only the keys written here replace the parent's."""
        return parent.model_copy(update={k: getattr(self, k) for k in self.model_fields_set})


class FilterConfig(StrictModel):
    seed: int = 0
    signal_time_budget_s: float = Field(10.0, gt=0)
    text_field: str = "text"
    compat: Literal["ours", "reference"] = "ours"
    reference_bugs: bool = False
    languages: dict[str, str] = Field(default_factory=dict)
    text_profiles: dict[str, str] = Field(default_factory=dict)  # natural language -> profile for text files
    extends: dict[str, str] = Field(default_factory=dict)
    rules: dict[str, dict[str, RuleSpec | None]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_profiles(self) -> FilterConfig:
        for lang, profile in self.languages.items():
            if profile not in self.rules:
                raise ValueError(f"languages.{lang}: unknown profile {profile!r}")
        for lang, profile in self.text_profiles.items():
            if profile not in self.rules:
                raise ValueError(f"text_profiles.{lang}: unknown profile {profile!r}")
        for child, parent in self.extends.items():
            if child not in self.rules or parent not in self.rules:
                raise ValueError(f"extends.{child}: {child!r} and {parent!r} must both be profiles under rules")
        for name in set(FALLBACK_PROFILE.values()) - set(self.rules):
            raise ValueError(f"rules.{name}: missing (the profile for doc_type {name})")
        return self


@dataclass(frozen=True)
class Rule:
    signal: str
    spec: RuleSpec

    def fires(self, value: SignalValue) -> bool:
        if value is None:
            return False
        s = self.spec
        return ((s.lt is not None and value < s.lt) or (s.le is not None and value <= s.le)
                or (s.gt is not None and value > s.gt) or (s.ge is not None and value >= s.ge)
                or (s.eq is not None and value == s.eq))

    @property
    def sampled(self) -> bool:
        return self.spec.drop_probability < 1.0

    def drops(self, value: SignalValue, document_key: str, seed: int) -> bool:
        """Whether this rule drops a document: it fires and the document falls in the sampled share."""
        return self.drops_at(value, stable_uniform(seed, self.signal, document_key) if self.sampled else 0.0)

    def drops_at(self, value: SignalValue, coin: float) -> bool:
        """Whether the rule drops a document whose coin (uniform in [0, 1)) came up ``coin``."""
        return self.fires(value) and coin < self.spec.drop_probability


def stable_uniform(seed: int, rule: str, document_key: str) -> float:
    """A number in [0, 1) that depends only on (seed, rule, document key): a deterministic coin for sampled rules."""
    digest = hashlib.blake2b(f"{seed}\x00{rule}\x00{document_key}".encode("utf-8", "surrogatepass"),
                             digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class RuleProfile:
    name: str
    rules: tuple[Rule, ...]
    for_text: bool = False  # a profile of text files: ``text`` or one that extends it (``text_zh``)

    @property
    def signal_families(self) -> tuple[str, ...]:
        """``doc`` for text files; ``code`` plus this profile's own family (``codepython``, ...) for the others."""
        return ("doc",) if self.for_text else ("code", f"code{self.name}")

    @cached_property
    def all_signals(self) -> tuple[str, ...]:
        """Every signal of this profile's families, ruled or not (what ``--signals`` writes)."""
        return tuple(n for n, s in SIGNALS.items() if s.family in self.signal_families)

    @cached_property
    def ruled_signals(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(rule.signal for rule in self.rules))


class RuleSet:
    """All profiles of a config, resolved (inheritance applied, signal names checked)."""

    def __init__(self, config: FilterConfig):
        self.config = config
        self.profiles = {name: RuleProfile(name, tuple(Rule(sig, spec) for sig, spec in self._resolve(name).items()),
                                           for_text=self._root(name) == TEXT_PROFILE)
                         for name in config.rules}
        for profile in self.profiles.values():
            self._check_signals(profile)

    def _root(self, name: str) -> str:
        """The profile ``name`` extends from, at the top (``text_zh`` -> ``text``); cycles fail in ``_resolve``."""
        seen = set()
        while name in self.config.extends and name not in seen:
            seen.add(name)
            name = self.config.extends[name]
        return name

    def _resolve(self, name: str, seen: tuple[str, ...] = ()) -> dict[str, RuleSpec]:
        if name in seen:
            raise ConfigError(f"extends: cycle {' -> '.join((*seen, name))}")
        parent = self.config.extends.get(name)
        resolved = dict(self._resolve(parent, (*seen, name))) if parent else {}
        for signal, spec in self.config.rules[name].items():
            if spec is None:
                resolved.pop(signal, None)
                continue
            merged = spec.merged_over(resolved[signal]) if signal in resolved else spec
            if not merged.has_condition():
                raise ConfigError(f"rules.{name}.{signal}: no condition left (set one of {', '.join(_CONDITIONS)}, "
                                  "or set the rule to null to turn it off)")
            resolved[signal] = merged
        return resolved

    def _check_signals(self, profile: RuleProfile) -> None:
        for rule in profile.rules:
            if rule.signal not in SIGNALS:
                raise ConfigError(f"rules.{profile.name}.{rule.signal}: unknown signal")
            if SIGNALS[rule.signal].family not in profile.signal_families:
                raise ConfigError(f"rules.{profile.name}.{rule.signal}: a {SIGNALS[rule.signal].family} signal is "
                                  f"never computed for this profile (its families: "
                                  f"{', '.join(profile.signal_families)})")

    def profile_for(self, doc_type: str, language: str | None, natural_language: str = "en") -> RuleProfile | None:
        """The profile for a record; None for a doc_type that is not code, data or text."""
        if doc_type not in FALLBACK_PROFILE:
            return None
        if doc_type == "text" and natural_language in self.config.text_profiles:
            return self.profiles[self.config.text_profiles[natural_language]]
        if doc_type != "text" and language in self.config.languages:
            return self.profiles[self.config.languages[language]]
        return self.profiles[FALLBACK_PROFILE[doc_type]]


def load_filter_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> FilterConfig:
    """The shipped rules, with ``path`` (a YAML file of changes, or a full copy) merged over them and dotted overrides
    applied, e.g. ``rules.python.qsc_codepython_frac_lines_print.gt=0.5``. Problems raise ConfigError naming the key,
    before any work starts."""
    config = load_config(path, list(overrides), FilterConfig, defaults=read_yaml(DEFAULT_RULES_PATH))
    RuleSet(config)
    return config
