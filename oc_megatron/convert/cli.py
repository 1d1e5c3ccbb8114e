"""``oc-megatron convert to-hf | from-hf``: thin wrappers over ``to_hf`` / ``from_hf`` (parse, call, summarise)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from oc_common.log import console

app = typer.Typer(help="Convert checkpoints between Megatron-Core (torch_dist) and Hugging Face (LlamaForCausalLM).",
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
    tokenizer: Path | None = typer.Option(None, "--tokenizer", help="HF tokenizer directory to copy (default: the "
                                             "one recorded with the checkpoint)."),
    no_tokenizer: bool = typer.Option(False, "--no-tokenizer", help="Write the model without tokenizer files."),
    preset: str | None = typer.Option(None, "--preset", help="Model preset, only for checkpoints that record no "
                                         "model config (opencoder-1.5b, opencoder-8b, tiny)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Training YAML whose `model:` section describes "
                                       "the model, only for checkpoints that record no model config."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace HF_DIR if it exists."),
) -> None:
    """Export a Megatron-Core checkpoint as a Hugging Face LlamaForCausalLM (transformers, vLLM)."""
    from oc_megatron.convert.to_hf import to_hf

    r = to_hf(ckpt_dir, hf_dir, iteration=iteration, dtype=dtype, max_shard_size=max_shard_size,
              tokenizer=str(tokenizer) if tokenizer else None, no_tokenizer=no_tokenizer, preset=preset,
              config=str(config) if config else None, overwrite=overwrite)
    console.print(f"to-hf: {r.checkpoint} -> {r.hf_dir} ({r.dtype}, {r.shards} shard(s), {r.seconds:.1f} s)")


@app.command("from-hf")
def from_hf_command(
    hf_dir: Path = typer.Argument(..., help="HF LlamaForCausalLM directory (config.json + safetensors)."),
    ckpt_dir: Path = typer.Argument(..., help="Output checkpoint directory (iter_0000000 + latest file; written "
                                    "atomically; must be empty or absent unless --overwrite)."),
    tp: int = typer.Option(1, "--tp", help="Tensor-parallel size the checkpoint is meant for; checked against the "
                           "heads, KV heads, FFN and vocabulary. (torch_dist loads at any layout.)"),
    pp: int = typer.Option(1, "--pp", help="Pipeline-parallel size; must divide the number of layers."),
    preset: str | None = typer.Option(None, "--preset", help="Require the HF model to match this preset's "
                                         "architecture (opencoder-1.5b, opencoder-8b, tiny) and record its name."),
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = typer.Option(
        "auto", "--dtype",
        help="Stored weight dtype: bf16, fp16, fp32, or auto (the HF model's).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace CKPT_DIR if it exists."),
) -> None:
    """Import a Hugging Face Llama model as a Megatron-Core checkpoint (e.g. to start SFT from a released model)."""
    from oc_megatron.convert.from_hf import from_hf

    r = from_hf(hf_dir, ckpt_dir, tp=tp, pp=pp, preset=preset, dtype=dtype, overwrite=overwrite)
    console.print(f"from-hf: {hf_dir} -> {r.checkpoint} ({r.dtype}, {r.tensors} tensors, {r.seconds:.1f} s)")
