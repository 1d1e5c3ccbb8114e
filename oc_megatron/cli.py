"""``oc-megatron``: the model side (Megatron-Core plugin).

Import-safe: nothing heavy runs at import (checkpoint saving and preprocess workers start processes that re-import
this module).
"""

from __future__ import annotations

from pathlib import Path

import typer

from oc_common.cli import common_options, run_app, version_callback
from oc_common.errors import UsageError
from oc_common.hub import TOKENIZER_FILES, local_or_hub
from oc_megatron.convert.cli import app as convert_app
from oc_megatron.data.sft_format import OPENCODER_SYSTEM_PROMPT, SFTTarget

app = typer.Typer(name="oc-megatron", help="OpenCoder models on Megatron-Core: preprocess, train (pretrain / anneal / "
                  "SFT), convert to and from Hugging Face.", no_args_is_help=True, pretty_exceptions_enable=False)

app.add_typer(convert_app, name="convert")


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=version_callback, is_eager=True,
                                 help="Print the version and exit."),
    log_level: str = typer.Option("INFO", "--log-level", envvar="OC_LOG_LEVEL", help="DEBUG, INFO, WARNING, ERROR."),
) -> None:
    common_options(log_level)


@app.command()
def preprocess(
    input_path: Path = typer.Argument(..., metavar="IN", help="JSONL/Parquet file, or a directory searched "
                                      "recursively for them (hidden and _-prefixed entries skipped)."),
    out_prefix: Path = typer.Argument(..., metavar="OUT_PREFIX", help="Writes OUT_PREFIX.bin and OUT_PREFIX.idx "
                                      "(a Megatron indexed dataset) and OUT_PREFIX.stats.json."),
    tokenizer: Path = typer.Option(..., "--tokenizer", help="Hugging Face tokenizer directory (with tokenizer.json), "
                                   "or a Hugging Face Hub repository id (e.g. infly/OpenCoder-1.5B-Base; downloaded "
                                   "to the HF cache, or taken from it offline)."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Tokenizer processes."),
    append_eod: bool = typer.Option(False, "--append-eod", help="End every document with the tokenizer's EOS/EOD "
                                    "token (pretraining: separates documents packed into one sequence)."),
    text_key: str = typer.Option("text", "--text-key", help="Record field holding the text."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Documents per task sent to a worker."),
    keep_parts: bool = typer.Option(False, "--keep-parts", help="Keep OUT_PREFIX.parts/ (per-input-file datasets) "
                                    "after merging."),
) -> None:
    """Tokenize text records into a Megatron indexed dataset.

    Resumable: each input file becomes a finished part before the next starts; rerun the same command after an
    interruption and finished files are skipped. Prints tokens/s.
    """
    from oc_common.log import console
    from oc_megatron.data.preprocess import preprocess as run

    tokenizer = local_or_hub(tokenizer, option="--tokenizer", allow_patterns=TOKENIZER_FILES)
    try:
        stats = run(input_path, out_prefix, tokenizer, workers=workers, append_eod=append_eod, text_key=text_key,
                    batch_size=batch_size, keep_parts=keep_parts)
    except ValueError as e:
        raise UsageError(str(e)) from None
    console.print(f"{out_prefix}.bin/.idx: {stats.documents:,} documents, {stats.tokens:,} tokens "
                  f"({stats.empty_documents:,} empty, {stats.bad_records:,} bad records skipped); "
                  f"{stats.tokens_per_second:,.0f} tokens/s over {stats.seconds:.1f} s"
                  + (f"; {stats.files_skipped_done} of {stats.files} files already done" if stats.files_skipped_done
                     else ""))
    for err in stats.errors[:5]:
        console.print(f"  skipped {err}")


@app.command("sft-data")
def sft_data(
    input_path: Path = typer.Argument(..., metavar="IN", help="JSONL/Parquet file or directory of chat records: "
                                      "`messages` [{role, content}] (OpenAI style), or `instruction` + `output` "
                                      "(OpenCoder's opc-sft) / `response` (oc-synth generate)."),
    out_prefix: Path = typer.Argument(..., metavar="OUT_PREFIX", help="Writes OUT_PREFIX.bin/.idx (tokens), "
                                      "OUT_PREFIX.loss_mask.bin/.idx (1 on assistant tokens) and "
                                      "OUT_PREFIX.stats.json."),
    tokenizer: Path = typer.Option(..., "--tokenizer", help="Hugging Face tokenizer directory with <|im_start|> and "
                                   "<|im_end|> tokens, or a Hub repository id; its chat_template (ChatML) renders the "
                                   "conversations."),
    system_prompt: str = typer.Option(OPENCODER_SYSTEM_PROMPT, "--system-prompt", help="System message added to "
                                      "conversations without one (default: OpenCoder's, which its tokenizer's chat "
                                      "template adds); '' adds none."),
    target: SFTTarget = typer.Option("opencoder", "--target", help="How answers are trained: opencoder = as "
                                     "OpenCoder's released finetune.py (answer + '\\n<|im_end|>', nothing after "
                                     "it); template = as the chat template renders them (answer + '<|im_end|>')."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Tokenizer processes."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Conversations per task sent to a worker."),
    keep_parts: bool = typer.Option(False, "--keep-parts", help="Keep OUT_PREFIX.parts/ after merging."),
) -> None:
    """Tokenize chat records for SFT: ChatML tokens and a loss mask on the assistant turns only.

    Resumable like `preprocess` (finished input files are skipped on a rerun). Train on the result with a config
    whose `data.sft.paths` lists OUT_PREFIX (examples/sft_stage1.yaml).
    """
    from oc_common.log import console
    from oc_megatron.data.sft import sft_data as run

    tokenizer = local_or_hub(tokenizer, option="--tokenizer", allow_patterns=TOKENIZER_FILES)
    try:
        stats = run(input_path, out_prefix, tokenizer, workers=workers, system_prompt=system_prompt, target=target,
                    batch_size=batch_size, keep_parts=keep_parts)
    except ValueError as e:
        raise UsageError(str(e)) from None
    share = stats.loss_tokens / max(stats.tokens, 1)
    console.print(f"{out_prefix}.bin/.idx + .loss_mask: {stats.documents:,} conversations, {stats.tokens:,} tokens, "
                  f"{stats.loss_tokens:,} trained ({share:.0%}); {stats.bad_records:,} bad records skipped"
                  + (f"; {stats.files_skipped_done} of {stats.files} files already done" if stats.files_skipped_done
                     else ""))
    for err in stats.errors[:5]:
        console.print(f"  skipped {err}")


@app.command()
def train(
    config: Path = typer.Argument(..., metavar="CONFIG.yaml",
                                  help="Training recipe, e.g. examples/pretrain_tiny.yaml."),
    overrides: list[str] | None = typer.Option(None, "--set", "-s", help="Override a config key (repeatable), e.g. "
                                               "-s parallel.tensor=2 -s optimizer.lr=1e-4 -s train.iters=100."),
    positional_overrides: list[str] | None = typer.Argument(None, hidden=True, metavar="[KEY=VALUE]...",
                                                            help="Deprecated spelling of -s KEY=VALUE."),
    plan: bool = typer.Option(False, "--plan", help="Validate the config and print what the run will do (model, "
                              "layout, per phase the batch in samples, sequence length, tokens and FLOPs per step; "
                              "steps, tokens, LR schedule, epochs, packing, checkpoints) without training or "
                              "building a model; numbers that need absent data are reported as unknown, with why."),
    json_output: bool = typer.Option(False, "--json", help="With --plan: print the plan as one JSON object."),
) -> None:
    """Pretrain, anneal or fine-tune (SFT) an OpenCoder model with Megatron-Core.

    The config says which: `data.blend` (pretraining / annealing, with `checkpoint.init_from` for annealing) or
    `data.sft` (SFT on `sft-data` output). Run directly for one process, or under `torchrun --nproc-per-node N` /
    `srun` (one task per GPU) for N ranks: data parallel size = ranks / (tensor x pipeline). Resumes automatically
    from the run's latest checkpoint (whose schedule it must continue: see schedule.on_change). SIGTERM / SIGUSR1
    save a checkpoint and exit with code 124 (the sbatch scripts requeue on it). `--plan` shows what a config will
    do, without a GPU.
    """
    import sys
    import warnings

    # Megatron-Core announces each fallback it takes without Transformer Engine / Apex (expected on CPU), and torch
    # deprecation notices for collectives Megatron calls; keep the console for the training log.
    warnings.filterwarnings("ignore", message=r".*(Transformer Engine|Apex).* not installed.*")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.distributed.*")
    from oc_megatron.config import load_train_config
    from oc_megatron.training.loop import Preempted, run_training
    from oc_megatron.training.preemption import PREEMPTED_EXIT_CODE

    if positional_overrides:
        from oc_common.cli import warn_deprecated

        warn_deprecated(" ".join(positional_overrides), " ".join(f"-s {o}" for o in positional_overrides),
                        "oc-megatron train")
    cfg = load_train_config(config, [*(positional_overrides or []), *(overrides or [])])
    if json_output and not plan:
        raise UsageError("--json: only with --plan (see `oc-megatron train --help`)")
    if plan:
        from oc_megatron.training.plan import build_plan, format_plan, plan_json

        result = build_plan(cfg, config)
        typer.echo(plan_json(result) if json_output else format_plan(result))
        return
    try:
        run_training(cfg)
    except Preempted as e:
        from oc_common.log import console

        console.print(str(e))
        sys.exit(PREEMPTED_EXIT_CODE)
    finally:
        from oc_megatron.training.distributed import destroy

        destroy()


# Spellings replaced by the CLI conventions (docs/cli.md), accepted with a warning for one release. (Positional
# KEY=VALUE overrides of `train` are handled by `train` itself.)
DEPRECATED_FLAGS = {
    ("convert", "to-hf"): {"--force": "--overwrite"},
    ("convert", "from-hf"): {"--force": "--overwrite"},
}

main = run_app(app, DEPRECATED_FLAGS)

if __name__ == "__main__":
    main()
