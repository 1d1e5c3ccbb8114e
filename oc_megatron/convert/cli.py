"""``oc-megatron convert to-hf | from-hf``: thin wrappers over ``to_hf`` / ``from_hf`` (parse, call, summarise)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from oc_common.log import console

app = typer.Typer(help="Convert checkpoints between Megatron-Core (torch_dist) and Hugging Face (LlamaForCausalLM, "
                       "Qwen2ForCausalLM).",
                  no_args_is_help=True)


@app.command("to-hf")
def to_hf_command(
    ckpt_dir: Path = typer.Argument(..., help="Training checkpoint directory (its latest iteration is converted) or "
                                    "one iter_NNNNNNN directory. Any TP/PP layout; no GPU needed."),
    hf_dir: Path = typer.Argument(..., help="Output HF model directory (written atomically; must be empty or absent "
                                  "unless --overwrite)."),
    iteration: int | None = typer.Option(None, "--iteration", help="Convert this iteration instead of the latest."),
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = typer.Option(
        "auto", "--dtype",
        help="Weight dtype of the HF model: bf16, fp16, fp32, or auto (the dtype the checkpoint stores).",
    ),
    max_shard_size: str = typer.Option("5GB", "--max-shard-size", help="Largest safetensors shard, e.g. 5GB, 500MB, "
                                       "2GiB (memory use does not depend on it: shards are streamed)."),
    tokenizer: Path | None = typer.Option(None, "--tokenizer", help="HF tokenizer directory to copy, or a Hugging "
                                             "Face Hub id (default: the one recorded with the checkpoint)."),
    no_tokenizer: bool = typer.Option(False, "--no-tokenizer", help="Write the model without tokenizer files."),
    preset: str | None = typer.Option(None, "--preset", help="Model preset, only for checkpoints that record no "
                                         "model config (opencoder-1.5b, opencoder-8b, tiny)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Training YAML whose `model:` section describes "
                                       "the model, only for checkpoints that record no model config."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace HF_DIR if it exists."),
) -> None:
    """Export a Megatron-Core checkpoint as a Hugging Face LlamaForCausalLM / Qwen2ForCausalLM (transformers, vLLM)."""
    from oc_common.hub import TOKENIZER_FILES, local_or_hub
    from oc_megatron.convert.to_hf import to_hf

    if tokenizer is not None:
        tokenizer = local_or_hub(tokenizer, option="--tokenizer", allow_patterns=TOKENIZER_FILES)
    r = to_hf(ckpt_dir, hf_dir, iteration=iteration, dtype=dtype, max_shard_size=max_shard_size,
              tokenizer=str(tokenizer) if tokenizer else None, no_tokenizer=no_tokenizer, preset=preset,
              config=str(config) if config else None, overwrite=overwrite)
    console.print(f"to-hf: {r.checkpoint} -> {r.hf_dir} ({r.dtype}, {r.shards} shard(s), {r.seconds:.1f} s)")


@app.command("from-hf")
def from_hf_command(
    hf_dir: Path = typer.Argument(..., help="HF LlamaForCausalLM or Qwen2ForCausalLM directory (config.json + "
                                  "safetensors)."),
    ckpt_dir: Path = typer.Argument(..., help="Output checkpoint directory (iter_0000000 + latest file; written "
                                    "atomically; must be empty or absent unless --overwrite)."),
    tp: int = typer.Option(1, "--tp", help="Tensor-parallel size the checkpoint is meant for: checked against the "
                           "heads, KV heads and FFN, and sets the vocabulary padding (rounded up to a multiple of "
                           "--make-vocab-size-divisible-by x TP). (torch_dist loads at any layout.)"),
    pp: int = typer.Option(1, "--pp", help="Pipeline-parallel size; must divide the number of layers unless "
                           "--first-stage-layers / --last-stage-layers give an uneven split."),
    first_stage_layers: int | None = typer.Option(
        None, "--first-stage-layers", help="Uneven pipeline split: layers on the first stage (Megatron-Core's "
        "num_layers_in_first_pipeline_stage; train with parallel.num_layers_in_first_pipeline_stage)."),
    last_stage_layers: int | None = typer.Option(
        None, "--last-stage-layers", help="Uneven pipeline split: layers on the last stage (Megatron-Core's "
        "num_layers_in_last_pipeline_stage)."),
    vocab_divisor: int = typer.Option(
        128, "--make-vocab-size-divisible-by", help="Pad the embedding rows to a multiple of this x --tp "
        "(Megatron's rule and default); recorded as model.make_vocab_size_divisible_by. to-hf removes the padding."),
    preset: str | None = typer.Option(None, "--preset", help="Require the HF model to match this preset's "
                                         "architecture (opencoder-1.5b, opencoder-8b, tiny) and record its name."),
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = typer.Option(
        "auto", "--dtype",
        help="Stored weight dtype: bf16, fp16, fp32, or auto (the HF model's).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace CKPT_DIR if it exists."),
) -> None:
    """Import a Hugging Face Llama / Qwen2 model as a Megatron-Core checkpoint (e.g. to start SFT from a released
    model)."""
    from oc_megatron.convert.from_hf import from_hf

    r = from_hf(hf_dir, ckpt_dir, tp=tp, pp=pp, first_stage_layers=first_stage_layers,
                last_stage_layers=last_stage_layers, make_vocab_size_divisible_by=vocab_divisor, preset=preset,
                dtype=dtype, overwrite=overwrite)
    console.print(f"from-hf: {hf_dir} -> {r.checkpoint} ({r.dtype}, {r.tensors} tensors, {r.seconds:.1f} s)")
