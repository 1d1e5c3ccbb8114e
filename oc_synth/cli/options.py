"""Options shared by oc-synth commands, so every command spells, shortens and documents them the same way.

The conventions (docs/cli.md; tests/test_cli_conventions.py enforces them for both CLIs):
- IN and OUT are positional when a command maps one input to one output (``curate *``, ``verify``, ``recall
  score``); commands whose inputs are named options (``generate --seeds``, ``recall run --seeds --corpus``, ``eval``)
  take ``--out/-o``.
- One spelling per concept and one meaning per short flag, across oc-synth and oc-megatron: ``-c --config``,
  ``-s --set KEY=VALUE`` (dotted overrides), ``-o --out``, ``-w --workers``, ``-e --executor``, ``-b --backend``,
  ``-B --backend-option``, ``-m --model``, ``-q --quiet``, ``--overwrite`` (never ``--force``), ``--dropped``.
- Defaults that belong to a settings object (the sandbox's) are read from it, never restated here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from oc_synth.sandbox.config import SandboxConfig

ExecutorName = Literal["local", "ray", "xenna"]
ModelExecutorName = Literal["local", "ray"]  # commands that run model backends (generate, recall label)
BackendName = Literal["vllm", "openai", "hf"]
OutputFormatName = Literal["jsonl", "jsonl.gz", "parquet"]

Executor = typer.Option("local", "--executor", "-e",
                        help="local: in-process (fast start, laptops, CI). ray: whole shards on Ray workers of a "
                             "local Ray, or of the cluster named by RAY_ADDRESS (see slurm/curate_ray.sbatch; OUT on "
                             "a file system every node sees); a shard whose worker is lost runs again elsewhere. "
                             "xenna: NeMo Curator's streaming executor on Ray.")
ShardWorkers = typer.Option(1, "--workers", "-w", min=1,
                            help="--executor local: run shards in this many worker processes (output identical to "
                                 "one process; the work is split by shard, so give at least this many input "
                                 "shards).")
Overwrite = typer.Option(False, "--overwrite", help="Start over: delete what an earlier run of ours wrote to OUT "
                                                    "(and --dropped), as listed in its .oc/manifest.json, instead of "
                                                    "resuming. Never deletes anything else (docs/outputs.md).")
Dropped = typer.Option(None, "--dropped", help="Also write rejected records here, each with keep=false and "
                                              "drop_reasons.", file_okay=False)
ConfigPath = typer.Option(None, "--config", "-c", help="YAML file with this command's settings.", exists=True,
                          dir_okay=False)
Overrides = typer.Option(None, "--set", "-s", help="Override a config key, e.g. -s python.max_print_lines=0.5 "
                                                  "(repeatable).")
OutputFormat = typer.Option("jsonl", "--output-format",
                            help="jsonl, jsonl.gz or parquet, for every output shard (inputs may mix JSONL and "
                                 "Parquet). `datasets.load_dataset(\"json\" or \"parquet\", data_dir=OUT)` reads it.")
Quiet = typer.Option(False, "--quiet", "-q", help="No progress bar or summary table (OUT/.oc/stats.json is still "
                                                  "written).")
Backend = typer.Option("hf", "--backend", "-b", help="vllm: offline engine. openai: any OpenAI-compatible server "
                                                     "(base_url via -B). hf: transformers (CPU or one GPU).")
BackendOptions = typer.Option(None, "--backend-option", "-B",
                              help="Backend keyword option KEY=VALUE (repeatable), e.g. -B dtype=bfloat16 "
                                   "-B max_model_len=4096 -B base_url=http://127.0.0.1:8000/v1.")


def _sandbox_default(field: str) -> object:
    return SandboxConfig.model_fields[field].default


SandboxWorkers = typer.Option(None, "--workers", "-w", min=1,
                              help="Programs run in parallel, one sandbox slot (and uid) each "
                                   f"(default {_sandbox_default('workers')}).")
SandboxTimeout = typer.Option(None, "--timeout", min=0.001,
                              help="Wall-clock seconds a program may run; compile steps have build_timeout_s "
                                   f"(default {_sandbox_default('timeout_s')}).")


def sandbox_flags(workers: int | None, timeout: float | None) -> dict[str, object]:
    """The sandbox settings given on the command line (the others keep SandboxConfig's defaults)."""
    return {k: v for k, v in (("workers", workers), ("timeout_s", timeout)) if v is not None}


def parse_backend_options(items: list[str] | None) -> dict[str, object]:
    """``-B KEY=VALUE`` items as keyword options (values parsed as YAML scalars, e.g. 2 -> int, true -> bool)."""
    from oc_common.config import parse_override
    from oc_common.errors import ConfigError, UsageError

    options: dict[str, object] = {}
    for item in items or []:
        try:
            keys, value = parse_override(item)
        except ConfigError as e:
            raise UsageError(f"--backend-option: {e}") from None
        options[".".join(keys)] = value
    return options


def in_arg(help_text: str = "Input JSONL/Parquet file or directory of shards.") -> Path:
    return typer.Argument(..., help=help_text)


def out_arg(help_text: str = "Output directory (one shard per input shard; reruns resume).") -> Path:
    return typer.Argument(..., help=help_text, file_okay=False)


def out_option(help_text: str = "Output directory (reruns resume into it).", *, required: bool = True,
               file_okay: bool = False, dir_okay: bool = True) -> Path:
    return typer.Option(... if required else None, "--out", "-o", help=help_text, file_okay=file_okay,
                        dir_okay=dir_okay)
