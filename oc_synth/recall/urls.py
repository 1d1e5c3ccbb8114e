"""URL patterns: people annotate, inside code-related domains, which URLs hold code (``stackoverflow.com/questions/*``).
Pages matching a pattern that the classifier scored negative are what it missed: they join the next round's seeds.

A pattern is ``HOST/PATH`` with shell wildcards (``*`` also crosses ``/``; ``?`` one character): the host part is
matched case-insensitively against the page's domain (``www.`` and port removed), the path part against the URL's
path (query and fragment are not matched). A pattern without ``/`` matches every path of its hosts. A leading
``http(s)://`` and ``www.`` are ignored.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import yaml

from oc_common.config import read_yaml
from oc_common.errors import ConfigError
from oc_common.fileio import atomic_open
from oc_common.records import dumps_record
from oc_common.stats import Stats
from oc_synth.recall.config import SCORE_FIELD
from oc_synth.recall.domains import iter_unique_pages
from oc_synth.recall.pages import stable_key, url_host_path

PATTERNS_KEY = "url_patterns"
SEED_SOURCE_FIELD = "seed_source"


@dataclass(frozen=True)
class UrlPattern:
    text: str
    host: str
    path: str

    @classmethod
    def parse(cls, text: str) -> UrlPattern:
        p = re.sub(r"^[a-zA-Z]+://", "", text.strip()).removeprefix("www.")
        host, sep, path = p.partition("/")
        return cls(text.strip(), host.lower(), f"/{path}" if sep else "*")

    def matches(self, host: str, path: str) -> bool:
        return fnmatchcase(host, self.host) and fnmatchcase(path, self.path)


def load_url_patterns(path: Path) -> list[UrlPattern]:
    """A YAML list of patterns, or a mapping with a ``url_patterns`` list; errors name the file and the item."""
    if not Path(path).is_file():
        raise ConfigError(f"{path}: URL pattern file not found")
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        read_yaml(path)  # raises a ConfigError naming the line and column (or the bad byte)
        raise
    if isinstance(data, dict):
        if set(data) != {PATTERNS_KEY}:
            raise ConfigError(f"{path}: expected a list of URL patterns or a mapping with only `{PATTERNS_KEY}`, "
                              f"got keys {sorted(map(str, data))}")
        data = data[PATTERNS_KEY]
    if data is None:
        data = []
    if not isinstance(data, list):
        raise ConfigError(f"{path}: expected a list of URL patterns such as `stackoverflow.com/questions/*`, got "
                          f"{type(data).__name__}")
    patterns = []
    for i, item in enumerate(data):
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(f"{path}: {PATTERNS_KEY}[{i}]: expected a non-empty string, got {item!r}")
        pat = UrlPattern.parse(item)
        if not pat.host:
            raise ConfigError(f"{path}: {PATTERNS_KEY}[{i}]: {item!r} has no host (write HOST/PATH, e.g. "
                              "stackoverflow.com/questions/*)")
        patterns.append(pat)
    return patterns


def match_pattern(url: str, patterns: list[UrlPattern]) -> UrlPattern | None:
    hp = url_host_path(url)
    if hp is None:
        return None
    return next((p for p in patterns if p.matches(*hp)), None)


@dataclass(frozen=True)
class NegativeExclusion:
    """Which corpus pages may not be sampled as negatives: what the previous round found to be code."""

    code_domains: frozenset[str] = frozenset()
    patterns: tuple[UrlPattern, ...] = ()
    mode: str = "annotated"  # see TrainConfig.negatives_exclude

    def reason(self, url: str) -> str | None:
        if self.mode == "none" or not self.code_domains:
            return None
        hp = url_host_path(url)
        if hp is None or hp[0] not in self.code_domains:
            return None
        if self.mode == "domains":
            return "code_domain"
        return "annotated_code_url" if any(p.matches(*hp) for p in self.patterns) else None

    def describe(self) -> dict:
        return {"mode": self.mode, "code_domains": sorted(self.code_domains),
                "url_patterns": [p.text for p in self.patterns]}


def collect_pattern_seeds(scored: Path, code_domains: set[str], patterns: list[UrlPattern], out_file: Path, *,
                          score_threshold: float, score_field: str = SCORE_FIELD,
                          known_seeds: set[int] = frozenset()) -> Stats:
    """Write the pages of code-related domains that match a pattern but scored below the threshold to ``out_file``
    (each with ``seed_source``: the pattern); count matches per pattern. Pages whose URL key is in ``known_seeds``
    (seeds of this or an earlier round) are counted, not written again."""
    st = Stats()
    t0 = time.perf_counter()
    with atomic_open(out_file, "w") as f:
        if not patterns or not code_domains:  # nothing can match: no pass over the corpus
            return st
        for rec in iter_unique_pages(scored, st, score_field):
            if rec["domain"] not in code_domains:
                continue
            pat = match_pattern(rec["url"], patterns)
            if pat is None:
                continue
            st.add("pattern_matches")
            st.add_to("matches per pattern", pat.text)
            if rec[score_field] >= score_threshold:
                st.add("pattern_matches_positive")
                continue
            if stable_key(rec["url"]) in known_seeds:
                st.add("pattern_matches_already_seed")
                continue
            st.add("new_seeds")
            rec[SEED_SOURCE_FIELD] = f"url_pattern:{pat.text}"
            f.write(dumps_record(rec) + "\n")
    st.add("seconds", round(time.perf_counter() - t0, 3))
    return st
