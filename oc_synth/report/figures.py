"""Matplotlib figures, embedded in the page as base64 PNG data URIs (the page needs no other file)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; set before pyplot is imported

import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

DPI = 110
WIDTH = 9.0  # inches: ~1000 px at DPI, the page's content width
PALETTE = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974",
           "#64B5CD")


def new_figure(height: float = 3.6, ncols: int = 1) -> tuple[Figure, Any]:
    fig, axes = plt.subplots(1, ncols, figsize=(WIDTH, height), dpi=DPI, squeeze=False)
    return fig, axes[0] if ncols > 1 else axes[0][0]


def to_data_uri(fig: Figure) -> str:
    """PNG bytes of ``fig`` as a data URI; the figure is closed (pyplot keeps every open figure alive)."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")  # legends placed outside the axes included
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def number_label(v: float) -> str:
    """1,234 / 12 / 0.4: whole numbers without decimals, small fractions with one."""
    return f"{v:,.0f}" if v == int(v) or abs(v) >= 10 else f"{v:.1f}"


def short(label: str, width: int = 38) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def _grouped_barh_on(ax: Any, categories: Sequence[str], series: dict[str, Sequence[float]], *, xlabel: str,
                     title: str, show_labels: bool = True, colors: Sequence[str] | None = None) -> None:
    height = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        ys = [k + i * height for k in range(len(categories))]
        color = colors if colors is not None else PALETTE[i % len(PALETTE)]
        bars = ax.barh(ys, values, height=height, label=name, color=color)
        ax.bar_label(bars, labels=[number_label(v) for v in values], padding=2, fontsize=7)
    ax.set_yticks([k + 0.4 - height / 2 for k in range(len(categories))],
                  [short(c, 48) for c in categories] if show_labels else [""] * len(categories), fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10, loc="left")
    if colors is None:
        ax.legend(fontsize=8, loc="lower right")
    ax.margins(x=0.15)


def grouped_barh(categories: Sequence[str], series: dict[str, Sequence[float]], *, xlabel: str, title: str) -> str:
    """One row per category, one bar per series (e.g. records before / after sampling per language)."""
    fig, ax = new_figure(height=max(2.4, 0.32 * len(categories) * max(len(series), 1) + 1.0))
    _grouped_barh_on(ax, categories, series, xlabel=xlabel, title=title)
    return to_data_uri(fig)


def grouped_barh_pair(categories: Sequence[str], left: tuple[str, dict[str, Sequence[float]]],
                      right: tuple[str, dict[str, Sequence[float]]], *, title: str) -> str:
    """Two panels over the same categories (e.g. records and bytes in / out per stage), labels on the left one."""
    fig, (a, b) = new_figure(height=max(2.4, 0.32 * len(categories) * 2 + 1.2), ncols=2)
    _grouped_barh_on(a, categories, left[1], xlabel=left[0], title=title)
    _grouped_barh_on(b, categories, right[1], xlabel=right[0], title="", show_labels=False)
    return to_data_uri(fig)


def barh_by_group(labels: Sequence[str], values: Sequence[float], groups: Sequence[str], *, xlabel: str,
                  title: str) -> str:
    """One bar per label, colored by its group (e.g. drop reasons colored by the stage that dropped)."""
    order = list(dict.fromkeys(groups))
    colors = [PALETTE[order.index(g) % len(PALETTE)] for g in groups]
    fig, ax = new_figure(height=max(2.2, 0.3 * len(labels) + 1.0))
    _grouped_barh_on(ax, labels, {"": values}, xlabel=xlabel, title=title, colors=colors)
    handles = [matplotlib.patches.Patch(color=PALETTE[i % len(PALETTE)], label=g) for i, g in enumerate(order)]
    ax.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=3,
              frameon=False)
    return to_data_uri(fig)


def fraction_bars(labels: Sequence[str], values: Sequence[float], *, threshold: float | None, xlabel: str,
                  title: str) -> str:
    """Horizontal bars of fractions in [0, 1] with a threshold line (e.g. positive pages per domain)."""
    fig, ax = new_figure(height=max(2.2, 0.3 * len(labels) + 1.0))
    colors = [PALETTE[2] if threshold is not None and v > threshold else PALETTE[7] for v in values]
    bars = ax.barh(range(len(labels)), values, color=colors)
    ax.bar_label(bars, labels=[f"{100 * v:.0f}%" for v in values], padding=2, fontsize=7)
    ax.set_yticks(range(len(labels)), [short(x, 48) for x in labels], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.1)
    if threshold is not None:
        ax.axvline(threshold, color=PALETTE[3], linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10, loc="left")
    return to_data_uri(fig)


def stacked_barh(categories: Sequence[str], parts: dict[str, Sequence[float]], *, xlabel: str, title: str,
                 colors: dict[str, str] | None = None) -> str:
    """One bar per category, split into parts (e.g. verdicts per recipe)."""
    fig, ax = new_figure(height=max(2.2, 0.45 * len(categories) + 1.2))
    left = [0.0] * len(categories)
    for i, (name, values) in enumerate(parts.items()):
        color = (colors or {}).get(name, PALETTE[i % len(PALETTE)])
        ax.barh(range(len(categories)), values, left=left, label=name, color=color)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_yticks(range(len(categories)), [short(c) for c in categories], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10, loc="left")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return to_data_uri(fig)


def bar_histogram(sizes: dict[str, dict[int, int]], *, xlabel: str, ylabel: str, title: str) -> str:
    """Side-by-side bars over integer bins (e.g. cluster size -> number of clusters, per dedup kind)."""
    fig, ax = new_figure(height=3.0)
    bins = sorted({b for counts in sizes.values() for b in counts})
    width = 0.8 / max(len(sizes), 1)
    for i, (name, counts) in enumerate(sizes.items()):
        xs = [k + i * width for k in range(len(bins))]
        bars = ax.bar(xs, [counts.get(b, 0) for b in bins], width=width, label=name, color=PALETTE[i % len(PALETTE)])
        ax.bar_label(bars, fontsize=7, padding=1)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(bins))], [str(b) for b in bins])
    ax.set_yscale("symlog", linthresh=1)
    ax.set_ylim(0, 4 * max((v for counts in sizes.values() for v in counts.values()), default=1))  # room for labels
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10, loc="left")
    ax.legend(fontsize=8)
    return to_data_uri(fig)


def lines(xs: Sequence[float], series: dict[str, Sequence[float | None]], *, xlabel: str, ylabel: str, title: str,
          ylim: tuple[float, float] | None = None) -> str:
    fig, ax = new_figure(height=3.0)
    for i, (name, ys) in enumerate(series.items()):
        pts = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name, color=PALETTE[i % len(PALETTE)])
    ax.set_xticks(list(xs))
    if ylim:
        ax.set_ylim(*ylim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10, loc="left")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return to_data_uri(fig)


def training_curves(runs: Sequence[dict[str, Any]]) -> str:
    """Loss (train and validation) and learning rate against the step, one color per training run; runs are drawn
    one after another on a shared x axis of cumulative steps, as the stages follow each other."""
    fig, (ax_loss, ax_lr) = new_figure(height=3.6, ncols=2)
    offset = 0
    for i, run in enumerate(runs):
        color = PALETTE[i % len(PALETTE)]
        train = run["train"]
        valid = run["valid"]
        marker = "o" if len(train) < 3 else None  # a run of a step or two is a point, not a line
        if train:
            ax_loss.plot([offset + s for s, _ in train], [v for _, v in train], color=color, label=run["name"],
                         marker=marker, markersize=4)
            lr = run["lr"]
            ax_lr.plot([offset + s for s, _ in lr], [v for _, v in lr], color=color, label=run["name"],
                       marker=marker, markersize=4)
        if valid:
            ax_loss.plot([offset + s for s, _ in valid], [v for _, v in valid], color=color, linestyle="none",
                         marker="s", markersize=4)
        if i:
            ax_loss.axvline(offset, color="#bbbbbb", linewidth=0.8)
            ax_lr.axvline(offset, color="#bbbbbb", linewidth=0.8)
        offset += run["steps"]
    ax_loss.set_xlabel("step (stages in order)")
    ax_loss.set_ylabel("loss (line: train, squares: validation)")
    ax_loss.set_title("loss", fontsize=10, loc="left")
    ax_loss.legend(fontsize=7)
    ax_loss.grid(alpha=0.3)
    ax_lr.set_xlabel("step (stages in order)")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_yscale("log")
    ax_lr.set_title("learning rate", fontsize=10, loc="left")
    ax_lr.grid(alpha=0.3)
    return to_data_uri(fig)


def score_bars(labels: Sequence[str], values: Sequence[float], highlight: Sequence[bool], *, xlabel: str,
               title: str) -> str:
    """Horizontal bars of scores in %, ours highlighted."""
    fig, ax = new_figure(height=max(2.2, 0.38 * len(labels) + 1.0))
    colors = [PALETTE[1] if h else PALETTE[0] for h in highlight]
    bars = ax.barh(range(len(labels)), values, color=colors)
    ax.bar_label(bars, labels=[f"{v:.1f}" for v in values], padding=2, fontsize=8)
    ax.set_yticks(range(len(labels)), [short(x, 48) for x in labels], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 105)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10, loc="left")
    return to_data_uri(fig)
