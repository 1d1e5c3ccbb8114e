"""``oc-synth verify IN OUT``: run every record's code and tests in the sandbox, keep the ones that pass."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from oc_synth.cli import options as opt


def verify(
    inp: Path = opt.in_arg("Input JSONL/Parquet file or directory of shards; each record has id, language "
                           "(default python), code, and tests (run after the code, in the same program)."),
    out: Path = opt.out_arg("Output directory (one shard per input shard; reruns resume). Records gain verdict, "
                            "passed, verdict_detail, verdict_reason, stderr_tail, runtime_s."),
    workers: int | None = opt.SandboxWorkers,
    timeout: float | None = opt.SandboxTimeout,
    keep_all: bool = typer.Option(False, "--all", help="Write every record with its verdict; by default only "
                                                      "passing ones are kept."),
    memory_mb: int | None = typer.Option(None, "--memory-mb", min=64,
                                            help="Address-space limit of each program process (default 1024)."),
    isolation: Literal["auto", "namespaces", "rlimits"] | None = typer.Option(None, "--isolation",
                                            help="auto (default): full sandbox when root, else rlimits only "
                                                 "(with a warning); namespaces: require the full sandbox; "
                                                 "rlimits: limits and a timeout only."),
    strictness: Literal["basic", "standard", "strict"] | None = typer.Option(
        None, "--strictness", help="What `passed` demands (docs/sandbox.md, per language). basic: the tests ran for "
                                   "real, to their end, nothing failed (caught or not). standard (default): also no "
                                   "static sign of checks that cannot fail, and a sanity mutant (the code's "
                                   "functions broken) fails the tests. strict: also one mutant per definition."),
    config: Path | None = typer.Option(None, "--config", "-c", exists=True, dir_okay=False,
                                          help="YAML file of sandbox settings (keys of SandboxConfig, see "
                                               "docs/sandbox.md); options given here win."),
    overrides: list[str] | None = typer.Option(None, "--set", "-s",
                                                  help="Override a sandbox setting, e.g. -s tmpfs_mb=512 "
                                                       "-s processes=128 (repeatable)."),
    dropped: Path | None = opt.Dropped,
    executor: opt.ExecutorName = opt.Executor,
    output_format: opt.OutputFormatName = opt.OutputFormat,
    overwrite: bool = opt.Overwrite,
    quiet: bool = opt.Quiet,
) -> None:
    """Execution-verified filtering: each sample's code and tests run in a sandbox (no network, its own /tmp, CPU,
    memory, file and process limits, an unprivileged uid, a timeout, no host files or environment).

    A sample passes only if its tests ran, ran to their end, and a check in them could have failed and did not
    (a sanity mutant of the code fails them). Verdicts: passed, failed, timeout, error, no_tests, weak_tests.
    Languages: Python, C, C++, JavaScript, Java, Rust, shell (where the toolchain is installed).
    """
    from oc_common.config import load_config, validate_config
    from oc_synth.sandbox.config import SandboxConfig
    from oc_synth.sandbox.stage import run_verify

    flags = {**opt.sandbox_flags(workers, timeout), "memory_mb": memory_mb, "isolation": isolation,
             "strictness": strictness}
    data = load_config(config, overrides or [])
    data.update({k: v for k, v in flags.items() if v is not None})
    cfg = validate_config(data, SandboxConfig, str(config) if config else "command-line options")
    run_verify(inp, out, cfg, keep_all=keep_all, dropped=dropped, overwrite=overwrite, quiet=quiet,
               output_format=output_format, executor=executor)
