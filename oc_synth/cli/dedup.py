"""``oc-synth curate dedup``: exact (SHA-256) and fuzzy (MinHash + LSH) dedup at RefineCode's settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from oc_synth.cli import options as opt


def dedup(
    inp: Path = opt.in_arg(),
    out: Path = opt.out_arg("Output directory: kept records (one shard per input shard), and .oc/ (manifest, "
                            "stats.json, the index and decisions; reruns resume from it)."),
    mode: Literal["exact", "fuzzy", "both"] = typer.Option(
        "both", "--mode",
        help="exact: identical content (SHA-256). fuzzy: near-duplicates (MinHash + LSH). both: exact, then fuzzy on "
             "the survivors (RefineCode's order).",
    ),
    engine: Literal["auto", "gpu", "cpu"] = typer.Option(
        "auto", "--engine",
        help="auto: gpu when cuDF and a CUDA device are present, else cpu (the summary says which ran and why). gpu: "
             "NeMo Curator's dedup workflows on cuDF/RAPIDS. cpu: SHA-256 + rensa MinHash, same parameters and output "
             "format.",
    ),
    preset: Literal["opencoder", "nemo"] = typer.Option(
        "opencoder", "--preset",
        help="opencoder: word 5-grams, 2,048 permutations, 16 bands x 128 rows (threshold ~0.98). nemo: NeMo Curator's"
             " defaults, char 24-grams, 20 x 13 (threshold ~0.79). The options below override single values.",
    ),
    shingle: Literal["word", "char"] | None = typer.Option(
        None, "--shingle",
        help="word: n-grams of words (runs of letters, digits, _ and non-ASCII). char: n-grams of characters.",
    ),
    ngram: int | None = typer.Option(None, "--ngram", help="Shingle width in words or characters."),
    num_perm: int | None = typer.Option(None, "--num-perm", help="MinHash permutations; must equal bands x rows "
                                                                    "(defaults to it)."),
    bands: int | None = typer.Option(None, "--bands", help="LSH bands: a pair is a candidate when all rows of any "
                                                              "one band agree."),
    rows: int | None = typer.Option(None, "--rows", help="Permutations per LSH band."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the permutations (same seed, same result)."),
    lowercase: bool | None = typer.Option(None, "--lowercase/--no-lowercase",
                                             help="Lower-case text before shingling (default: no; code is "
                                                  "case-sensitive)."),
    jaccard_check: float | None = typer.Option(None, "--jaccard-check", min=0.0, max=1.0,
                                                  help="Keep only candidate pairs whose exact Jaccard similarity is "
                                                       "at least this (re-reads those documents; CPU engine, small "
                                                       "runs)."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Processes computing signatures within a shard "
                                                                  "(CPU engine, local executor). Output is identical "
                                                                  "for any value."),
    executor: opt.ExecutorName = opt.Executor,
    dropped: Path | None = typer.Option(None, "--dropped", file_okay=False,
                                           help="Also write removed records here: all fields, keep=false, "
                                                "drop_reasons (exact_duplicate | fuzzy_duplicate), their cluster and "
                                                "duplicate_of (the kept record's id)."),
    removed_ids: Path | None = typer.Option(None, "--removed-ids", dir_okay=False,
                                               help="Write the removed records' id, shard, row, reason, cluster and "
                                                    "duplicate_of to this .jsonl or .parquet file (small, unlike "
                                                    "--dropped)."),
    output_format: opt.OutputFormatName = opt.OutputFormat,
    level: Literal["file", "repo"] = typer.Option(
        "file", "--level",
        help="file: files are the units (OpenCoder's choice). repo: a repository (records sharing `repo`, its files "
             "joined in path order) is the unit and a duplicate repository is removed whole, the alternative of "
             "OpenCoder's ablation (keeps ~3x the tokens, trains worse). See docs/dedup.md.",
    ),
    overwrite: bool = opt.Overwrite,
    quiet: bool = opt.Quiet,
) -> None:
    """Remove exact and near-duplicate files across repositories (file level), keeping per cluster the record with
    the most stars, then the latest commit_time, then the smallest id.

    Kept records keep every field and gain dup_cluster, dup_count (exact) and minhash_cluster, minhash_count (fuzzy).
    See docs/dedup.md.
    """
    from oc_synth.curate.dedup.settings import build_settings
    from oc_synth.curate.dedup.workflow import run_dedup

    settings = build_settings(mode=mode, engine=engine, preset=preset, workers=workers, shingle=shingle, ngram=ngram,
                              num_perm=num_perm, bands=bands, rows=rows, seed=seed, lowercase=lowercase,
                              jaccard_check=jaccard_check)
    if level == "repo":
        from oc_synth.curate.dedup.repo_level import run_repo_dedup

        run_repo_dedup(inp, out, settings, dropped=dropped, removed_ids=removed_ids, executor=executor,
                       output_format=output_format, overwrite=overwrite, quiet=quiet)
        return
    run_dedup(inp, out, settings, dropped=dropped, removed_ids=removed_ids, executor=executor,
              output_format=output_format, overwrite=overwrite, quiet=quiet)
