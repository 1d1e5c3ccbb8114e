"""``oc-synth curate ...``: RefineCode's order of work: ingest -> dedup -> transform -> filter -> sample."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from oc_synth.cli import dedup as dedup_cli
from oc_synth.cli import options as opt

app = typer.Typer(help="RefineCode curation: ingest raw repositories, deduplicate, transform (copyright/PII), "
                       "filter with OpenCoder's heuristic rules.", no_args_is_help=True)


@app.command()
def ingest(
    src: Path = typer.Argument(..., help="A tree of repositories (each top-level folder is one repo; an optional "
                                         "repos.jsonl gives stars/commit_time/license per repo), or JSONL/Parquet "
                                         "records in The Stack v2 style."),
    out: Path = opt.out_arg("Output directory of code-file records (sharded JSONL or Parquet, --output-format)."),
    source_format: Literal["auto", "tree", "stack-v2"] = typer.Option(
        "auto", "--format",
        help="auto | tree | stack-v2 (records with content, path, repo_name, ...).",
    ),
    shard_size: int = typer.Option(10_000, help="Records per output shard (tree input)."),
    max_file_bytes: int = typer.Option(8 * 2**20, help="Drop files larger than this (OpenCoder: 8 MB)."),
    languages: Literal["opencoder", "linguist"] = typer.Option(
        "opencoder", "--languages",
        help="Language table. opencoder: OpenCoder's released extension, file-name and type tables and its 42 "
             "excluded types (opc_data_filtering). linguist: GitHub Linguist 9.5 with our doc types and exclusions. "
             "docs/curation.md lists every difference.",
    ),
    dropped: Path | None = opt.Dropped,
    executor: opt.ExecutorName = opt.Executor,
    output_format: opt.OutputFormatName = opt.OutputFormat,
    overwrite: bool = opt.Overwrite,
    quiet: bool = opt.Quiet,
) -> None:
    """Turn raw source files into code-file records (language and doc type from OpenCoder's released tables, or
    GitHub Linguist's with --languages linguist).

    Files over 8 MB, excluded types, binary and undecodable files are dropped with a counted reason.
    Symlinks are never followed outside SRC.
    """
    from oc_synth.curate.ingest import run_ingest

    run_ingest(src, out, source_format=source_format, shard_size=shard_size, max_file_bytes=max_file_bytes,
               languages=languages, dropped=dropped, overwrite=overwrite, quiet=quiet, output_format=output_format,
               executor=executor)


# dedup's command lives in its own module (it has many options); registered here to list in pipeline order
app.command("dedup")(dedup_cli.dedup)


@app.command()
def transform(
    inp: Path = opt.in_arg(),
    out: Path = opt.out_arg(),
    config: Path | None = opt.ConfigPath,
    overrides: list[str] | None = opt.Overrides,
    executor: opt.ExecutorName = opt.Executor,
    output_format: opt.OutputFormatName = opt.OutputFormat,
    overwrite: bool = opt.Overwrite,
    quiet: bool = opt.Quiet,
) -> None:
    """Strip the copyright notice at a file's head and replace PII (emails, IP addresses, keys, passwords, tokens)
    with placeholders such as <EMAIL>; every replacement is counted by kind."""
    from oc_synth.curate.transform import run_transform

    run_transform(inp, out, config=config, overrides=overrides or [], executor=executor, overwrite=overwrite,
                  quiet=quiet, output_format=output_format)


@app.command("filter")
def filter_(
    inp: Path = opt.in_arg(),
    out: Path = opt.out_arg(),
    config: Path | None = typer.Option(None, "--config", "-c", exists=True, dir_okay=False,
                                          help="Rules YAML merged over the shipped RefineCode rules "
                                               "(oc_synth/curate/rules.yaml): a full edited copy, or only your "
                                               "changes."),
    overrides: list[str] | None = typer.Option(None, "--set", "-s",
                                                  help="Override a rules key, e.g. "
                                                       "-s rules.python.qsc_codepython_frac_lines_print.gt=0.5, "
                                                       "-s rules.code.qsc_code_frac_chars_comments=null (rule off), "
                                                       "-s seed=7 (repeatable)."),
    signals: bool = typer.Option(False, "--signals", help="Keep every qsc_* signal on each output record, plus keep "
                                                          "and drop_reasons."),
    compat: Literal["ours", "reference"] | None = typer.Option(
        None, "--compat",
        help="ours (default): a signal that fails drops the file (error:<signal>); sampled rules use a stable hash "
             "of the record id. reference: OpenCoder's code exactly: a failing signal is null and ends its group, "
             "the file is kept unless a rule fires; sampled rules draw random.random(). See docs/filter.md.",
    ),
    reference_bugs: bool = typer.Option(
        False, "--reference-bugs",
        help="Reproduce the reference's bugs too: JavaScript must parse with esprima 4.0.1 (ES2017; pip install "
             "esprima==4.0.1), and the C#/Go no-variable rules never fire. Off: our fixes, in both --compat modes.",
    ),
    dropped: Path | None = opt.Dropped,
    executor: opt.ExecutorName = opt.Executor,
    workers: int = opt.ShardWorkers,
    output_format: opt.OutputFormatName = opt.OutputFormat,
    overwrite: bool = opt.Overwrite,
    quiet: bool = opt.Quiet,
) -> None:
    """Apply OpenCoder's RefineCode heuristic rules (text, general code, data/shell/sql/html variants, and the
    Python/C/C++/C#/Go/Java/JavaScript/HTML rules). A rule that fires drops the file; its drop reason is the rule's
    qsc_* signal name (error:<signal> when a signal fails or runs past its time budget). See docs/filter.md."""
    from oc_synth.curate.filter import run_filter

    run_filter(inp, out, config=config, overrides=overrides or [], signals=signals, compat=compat,
               reference_bugs=reference_bugs or None, dropped=dropped, executor=executor, workers=workers,
               overwrite=overwrite, quiet=quiet, output_format=output_format)


@app.command()
def sample(
    inp: Path = opt.in_arg(),
    out: Path = opt.out_arg(),
    config: Path | None = opt.ConfigPath,
    overrides: list[str] | None = typer.Option(None, "--set", "-s", help="e.g. -s keep_fraction.Java=0.5 "
                                                  "-s seed=1 (repeatable)."),
    dropped: Path | None = opt.Dropped,
    executor: opt.ExecutorName = opt.Executor,
    output_format: opt.OutputFormatName = opt.OutputFormat,
    overwrite: bool = opt.Overwrite,
    quiet: bool = opt.Quiet,
) -> None:
    """Downsample over-represented languages (RefineCode: Java 450 -> 200 GB, HTML 470 -> 64 GB by default).

    Each record is kept with its language's probability, decided by a stable hash of its id and the seed."""
    from oc_synth.curate.select import run_sample

    run_sample(inp, out, config=config, overrides=overrides or [], dropped=dropped, executor=executor,
               overwrite=overwrite, quiet=quiet, output_format=output_format)


@app.command("select-algorithmic")
def select_algorithmic(
    inp: Path = opt.in_arg(),
    out: Path = opt.out_arg(),
    config: Path | None = opt.ConfigPath,
    overrides: list[str] | None = typer.Option(None, "--set", "-s", help="e.g. -s 'keywords=[leetcode, "
                                                  "def solution]' -s case_sensitive=true (repeatable)."),
    executor: opt.ExecutorName = opt.Executor,
    output_format: opt.OutputFormatName = opt.OutputFormat,
    overwrite: bool = opt.Overwrite,
    quiet: bool = opt.Quiet,
) -> None:
    """The annealing corpus's algorithmic part: curated files matching keywords such as "leetcode",
    "def solution", "class Solution". Adds `algorithmic_keyword`; counts matches per keyword."""
    from oc_synth.curate.select import run_select_algorithmic

    run_select_algorithmic(inp, out, config=config, overrides=overrides or [], executor=executor,
                           overwrite=overwrite, quiet=quiet, output_format=output_format)
