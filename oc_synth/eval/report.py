"""The summary table printed at the end of ``oc-synth eval``: our pass@k, verdicts, and OpenCoder's published number."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

BENCHMARK_NAMES = {("humaneval", "base"): "HumanEval", ("humaneval", "plus"): "HumanEval+",
                   ("mbpp", "base"): "MBPP", ("mbpp", "plus"): "MBPP+"}


def benchmark_name(summary: dict[str, Any]) -> str:
    if summary["benchmark"] == "multipl-e":
        return f"MultiPL-E ({summary.get('language', '?')})"
    return BENCHMARK_NAMES.get((summary["benchmark"], summary["variant"]), summary["benchmark"])


def render_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console(stderr=True)
    model = summary["model"].get("model", "?")
    title = (f"{benchmark_name(summary)}: {model} ({summary['model'].get('backend')}, "
             f"{summary.get('harness', 'oc')} harness, {summary['settings']['prompt_mode']} prompts, "
             f"n={summary['settings']['n']}, T={summary['settings']['temperature']})")
    t = Table(title=title, title_justify="left")
    t.add_column("metric")
    t.add_column("ours", justify="right")
    ref = summary.get("reference")
    if ref:
        t.add_column(f"published ({ref['model']})", justify="right")
    for key in sorted((k for k in summary if k.startswith("pass@")), key=lambda k: int(k.split("@")[1])):
        row = [key, f"{100 * summary[key]:.1f}"]
        if ref:
            published = ref["published_pass@1"] if key == "pass@1" else None
            row.append("-" if published is None else f"{100 * published:.1f}")
        t.add_row(*row)
    console.print(t)
    verdicts = ", ".join(f"{k} {v}" for k, v in summary["verdicts"].items())
    console.print(f"{summary['problems']} problems, {summary['samples']} samples: {verdicts}", highlight=False)
    if ref and ref["published_pass@1"] is not None and summary["settings"]["temperature"] > 0:
        console.print("note: the published numbers are greedy (temperature 0); this run sampled.", highlight=False)
    if ref and ref["published_pass@1"] is not None and summary.get("harness") != "opencodeeval":
        console.print("note: the published numbers come from OpenCoder's own harness (--harness opencodeeval); "
                      "this run used another, so prompts and answer handling differ.", highlight=False)
    for note in summary.get("harness_notes") or []:
        console.print(Text.assemble(("harness note: ", "bold yellow"), note))
    if summary.get("sandbox_failures"):
        console.print(f"[bold yellow]sandbox failures:[/] {summary['sandbox_failures']} sample(s) got no verdict "
                      "(counted as failed); rerun the same command to run them again.")
    if summary.get("problems_not_asked"):
        console.print(f"[bold yellow]not asked:[/] {summary['problems_not_asked']} problem(s): the prompt does not fit "
                      "the model's context (verdict prompt_too_long, scored as failed).")
    if not summary["complete"]:
        console.print("[bold yellow]incomplete:[/] some problems got no samples (backend errors count as failures); "
                      "rerun the same command to retry them.")
