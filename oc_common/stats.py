"""Stage statistics: mergeable counters, printed as tables at the end of a command and written as JSON.

``Stats.counters`` holds flat totals (records_in, records_out, bytes_in, ...); ``Stats.groups`` holds per-key
breakdowns (drop reason -> count, language -> count, ...). Shards write their own Stats; the runner merges them,
so a resumed run reports the totals of the whole output, not only of the shards it redid.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table


@dataclass
class Stats:
    counters: Counter = field(default_factory=Counter)
    groups: dict[str, Counter] = field(default_factory=dict)

    def add(self, key: str, n: int | float = 1) -> None:
        self.counters[key] += n

    def add_to(self, group: str, key: str, n: int | float = 1) -> None:
        self.groups.setdefault(group, Counter())[key] += n

    def merge(self, other: Stats) -> Stats:
        self.counters.update(other.counters)
        for g, c in other.groups.items():
            self.groups.setdefault(g, Counter()).update(c)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "counters": dict(sorted(self.counters.items())),
            "groups": {g: dict(c.most_common()) for g, c in sorted(self.groups.items())},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Stats:
        return cls(Counter(d.get("counters", {})), {g: Counter(c) for g, c in d.get("groups", {}).items()})


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def render_stats(title: str, stats: Stats, console: Console | None = None, top: int = 25,
                 keep_rate_groups: tuple[str, str] | None = None) -> None:
    """Print totals, each group (most common first, ``top`` rows), and optionally a keep-rate table built from two
    groups (e.g. ``("language_in", "language_out")``)."""
    console = console or Console(stderr=True)
    t = Table(title=title, title_justify="left")
    t.add_column("counter")
    t.add_column("value", justify="right")
    for k, v in sorted(stats.counters.items()):
        t.add_row(k, human_bytes(v) if k.startswith("bytes") else f"{v:,}" if isinstance(v, int) else f"{v:.4g}")
    console.print(t)
    skip = set(keep_rate_groups or ())
    if keep_rate_groups:
        gin = stats.groups.get(keep_rate_groups[0], Counter())
        gout = stats.groups.get(keep_rate_groups[1], Counter())
        if gin:
            kt = Table(title=f"keep rate per {keep_rate_groups[0].rsplit('_', 1)[0]}", title_justify="left")
            for c in ("key", "in", "out", "keep rate"):
                kt.add_column(c, justify="left" if c == "key" else "right")
            for key, n_in in gin.most_common(top):
                n_out = gout.get(key, 0)
                kt.add_row(str(key), f"{n_in:,}", f"{n_out:,}", f"{n_out / n_in:.1%}" if n_in else "-")
            console.print(kt)
    for g, c in sorted(stats.groups.items()):
        if g in skip or not c:
            continue
        gt = Table(title=g, title_justify="left")
        gt.add_column("key")
        gt.add_column("count", justify="right")
        total = sum(c.values())
        gt.add_column("share", justify="right")
        for key, n in c.most_common(top):
            gt.add_row(str(key), f"{n:,}", f"{n / total:.1%}" if total else "-")
        if len(c) > top:
            gt.add_row(f"... {len(c) - top} more", "", "")
        console.print(gt)
