"""Options shared by the sharded curation commands, so every command spells and documents them the same way."""

from __future__ import annotations

from pathlib import Path

import typer

Executor = typer.Option("local", "--executor", "-e",
                        help="local: in-process (fast start, laptops, CI). ray: NeMo Curator's Ray actor pool on a "
                             "local Ray, or on the cluster named by RAY_ADDRESS (see slurm/curate_ray.sbatch). "
                             "xenna: NeMo Curator's streaming executor on Ray.")
Overwrite = typer.Option(False, "--overwrite", help="Delete OUT (and --dropped) first instead of resuming into it.")
Dropped = typer.Option(None, "--dropped", help="Also write rejected records here, each with keep=false and "
                                              "drop_reasons.", file_okay=False)
ConfigPath = typer.Option(None, "--config", "-c", help="YAML file with this command's settings.", exists=True,
                          dir_okay=False)
Overrides = typer.Option(None, "--set", "-s", help="Override a config key, e.g. -s python.max_print_lines=0.5 "
                                                  "(repeatable).")
Quiet = typer.Option(False, "--quiet", "-q", help="No progress bar or summary table (stats.json is still written).")


def in_arg(help_text: str = "Input JSONL/Parquet file or directory of shards.") -> Path:
    return typer.Argument(..., help=help_text)


def out_arg(help_text: str = "Output directory (one shard per input shard; reruns resume).") -> Path:
    return typer.Argument(..., help=help_text, file_okay=False)
