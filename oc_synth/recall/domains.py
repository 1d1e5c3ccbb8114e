"""Domain discovery: group scored pages by domain; a domain is code-related when more than ``domain_threshold`` of
its pages score positive (OpenCoder: 10%).

Scored shards are read in sorted order and each URL counts once (its first occurrence): a URL that appears in two
shards is a counted ``duplicate_url``, here and in every later pass, so domain fractions, seeds and the recalled
set never count a page twice. Holding the URL hashes costs ~70 bytes per page (Python ints in a set).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from oc_common.fileio import atomic_write_text
from oc_common.log import console
from oc_common.records import RecordError, iter_file_records, list_record_files
from oc_common.stats import Stats
from oc_synth.recall.config import SCORE_FIELD
from oc_synth.recall.pages import DOMAIN_FIELD, stable_key, url_domain


@dataclass
class DomainStats:
    pages: int = 0
    positives: int = 0
    positive_fraction: float = 0.0
    code_related: bool = False


class UniquePages:
    """Reads scored shards, yielding each URL's first occurrence; read the shards in ``list_record_files`` order
    so that every pass over the same output picks the same occurrence."""

    def __init__(self, stats: Stats, score_field: str = SCORE_FIELD):
        self.stats = stats
        self.score_field = score_field
        self.seen: set[int] = set()

    def read(self, shard: Path) -> Iterator[dict[str, Any]]:
        for _, rec in iter_file_records(shard):
            if isinstance(rec, RecordError):
                self.stats.add_to("skipped", "bad_record")
                continue
            url, score = rec.get("url"), rec.get(self.score_field)
            if not isinstance(url, str) or not isinstance(score, (int, float)):
                self.stats.add_to("skipped", "not_scored")
                continue
            h = stable_key(url)
            if h in self.seen:
                self.stats.add_to("skipped", "duplicate_url")
                continue
            self.seen.add(h)
            if not rec.get(DOMAIN_FIELD):
                rec[DOMAIN_FIELD] = url_domain(url)
            yield rec


def iter_unique_pages(scored: Path, stats: Stats, score_field: str = SCORE_FIELD) -> Iterator[dict[str, Any]]:
    pages = UniquePages(stats, score_field)
    for shard in list_record_files(scored):
        yield from pages.read(shard)


def domain_table(scored: Path, *, score_threshold: float, domain_threshold: float, min_pages: int = 1,
                 score_field: str = SCORE_FIELD, stats: Stats | None = None) -> dict[str, DomainStats]:
    stats = stats if stats is not None else Stats()
    table: dict[str, DomainStats] = {}
    for rec in iter_unique_pages(scored, stats, score_field):
        d = table.setdefault(rec[DOMAIN_FIELD], DomainStats())
        d.pages += 1
        d.positives += rec[score_field] >= score_threshold
    for d in table.values():
        d.positive_fraction = round(d.positives / d.pages, 6)
        d.code_related = d.pages >= min_pages and d.positive_fraction > domain_threshold
    stats.add("pages", sum(d.pages for d in table.values()))
    stats.add("positive_pages", sum(d.positives for d in table.values()))
    stats.add("domains", len(table))
    stats.add("code_domains", sum(d.code_related for d in table.values()))
    # most code-related first: the order of domains.json and of the printed table
    return dict(sorted(table.items(), key=lambda kv: (-kv[1].code_related, -kv[1].positive_fraction,
                                                      -kv[1].pages, kv[0])))


def write_domains(path: Path, table: dict[str, DomainStats]) -> None:
    """domains.json: domain -> {pages, positives, positive_fraction, code_related}, most code-related first."""
    atomic_write_text(path, json.dumps({k: asdict(v) for k, v in table.items()}, indent=1, ensure_ascii=False) + "\n")


def read_domains(path: Path) -> dict[str, DomainStats]:
    from oc_common.errors import OcError

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return {k: DomainStats(**v) for k, v in data.items()}
    except FileNotFoundError:
        raise OcError(f"{path}: domains file not found (written by `oc-synth recall domains`)") from None
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, AttributeError) as e:
        raise OcError(f"{path}: not a domains.json file ({e})") from None


def code_domains(table: dict[str, DomainStats]) -> set[str]:
    return {k for k, v in table.items() if v.code_related}


def render_domains(table: dict[str, DomainStats], top: int = 20, title: str = "domains") -> None:
    t = Table(title=f"{title}: {sum(v.code_related for v in table.values())} of {len(table)} code-related",
              title_justify="left")
    for c in ("domain", "pages", "positive", "fraction", "code-related"):
        t.add_column(c, justify="left" if c == "domain" else "right")
    for k, v in list(table.items())[:top]:
        t.add_row(k, f"{v.pages:,}", f"{v.positives:,}", f"{v.positive_fraction:.1%}", "yes" if v.code_related else "")
    if len(table) > top:
        t.add_row(f"... {len(table) - top} more", "", "", "", "")
    console.print(t)
