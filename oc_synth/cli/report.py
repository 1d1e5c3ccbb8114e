"""``oc-synth report RUN_DIR``: one self-contained HTML page of a run, figures embedded, for a researcher."""

from __future__ import annotations

from pathlib import Path

import typer

from oc_synth.cli import options as opt


def report(
    run_dir: Path = typer.Argument(..., file_okay=False,
                                   help="A run directory: the outputs of oc-synth and oc-megatron commands under it "
                                        "are found by their metadata (e.g. the demo's demo_out/)."),
    out: Path | None = opt.out_option("The HTML file to write (default: RUN_DIR/report.html). An earlier report of "
                                      "ours there is replaced; any other file is refused.", required=False,
                                      file_okay=True, dir_okay=False),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the report's path."),
) -> None:
    """Write one self-contained HTML page of a run: the data funnel (records and bytes per stage, drop reasons),
    the language mix before and after sampling, dedup cluster sizes, recall rounds (precision, recall, domains),
    synthesis pass rates by recipe and verdict, loss and learning-rate curves of every training stage, and eval
    scores beside OpenCoder's published ones.

    Figures are drawn with matplotlib and embedded, so the page opens anywhere without other files. A section whose
    inputs the run lacks says what is missing and which command writes it. See docs/report.md.
    """
    from oc_common.log import console
    from oc_synth.report import build_report

    result = build_report(run_dir, out)
    if not quiet:
        for s in result.sections:
            state = (f"{len(s.figures)} figure{'s' if len(s.figures) != 1 else ''}, {len(s.tables)} "
                     f"table{'s' if len(s.tables) != 1 else ''}" if s.has_data else f"[yellow]missing[/]: {s.missing}")
            console.print(f"  {s.title}: {state}", highlight=False)
        for problem in result.inventory.problems:
            console.print(f"  [yellow]warning:[/] {problem}", highlight=False)
    print(result.path)
