"""Logits of both sides, for checking a conversion on CPU: a Megatron-Core model at any TP / PP, and a HF directory.

Megatron's logits are cut to the real vocabulary (the padded rows are not part of the model), so both sides have
the HF model's shape.

Used by the conversion tests and ``benchmarks/convert.py``; a conversion is right when both give the same logits
for the same tokens (fp32: bitwise at TP 1 with the local spec, ~1e-6 at TP 2). Megatron-Core's side runs in a gloo
world of one (:func:`single_process_group`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch


@contextlib.contextmanager
def single_process_group(model_parallel: bool = False) -> Iterator[None]:
    """A gloo world of one (and Megatron-Core's TP=PP=1 groups with ``model_parallel``), torn down afterwards, with
    the CPU shims applied: what a Megatron-Core forward needs in one process (conversion itself needs neither).

    Reuses an existing world of one; refuses to run inside a multi-rank job.
    """
    from megatron.core import parallel_state as ps

    from oc_common.errors import ConversionError
    from oc_megatron.models.cpu_compat import apply_cpu_shims
    from oc_megatron.training.distributed import free_port

    apply_cpu_shims()
    created = False
    if torch.distributed.is_initialized():
        if torch.distributed.get_world_size() != 1:
            raise ConversionError("this check runs in one process; launch it without torchrun/srun tasks")
    else:
        torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0,
                                             world_size=1)
        created = True
    if model_parallel:
        if ps.model_parallel_is_initialized():
            ps.destroy_model_parallel()
        ps.initialize_model_parallel(tensor_model_parallel_size=1, pipeline_model_parallel_size=1)
    try:
        yield
    finally:
        if model_parallel and ps.model_parallel_is_initialized():
            ps.destroy_model_parallel()
        if created:
            torch.distributed.destroy_process_group()


@torch.no_grad()
def megatron_logits(chunks: list[torch.nn.Module], tokens: torch.Tensor) -> torch.Tensor | None:
    """Full-vocabulary logits [batch, seq, vocab] of GPTModel ``chunks`` (this rank's, one per virtual stage).

    Runs Megatron-Core's own pipeline schedule (forward only), so it works at any TP / PP / VPP; every rank of the
    model-parallel group must call it. Returns the logits on the last pipeline stage (gathered over TP ranks), None
    on the other stages.
    """
    from megatron.core import parallel_state as ps
    from megatron.core.pipeline_parallel import get_forward_backward_func
    from megatron.core.tensor_parallel import gather_from_tensor_model_parallel_region

    batch, seq = tokens.shape
    device = next(chunks[0].parameters()).device  # the CPU, or the GPU a GPU check built the model on
    tokens = tokens.to(device)
    mask = torch.triu(torch.ones(1, 1, seq, seq, dtype=torch.bool, device=device), diagonal=1)  # True = masked
    positions = torch.arange(seq, device=device).unsqueeze(0).expand(batch, seq)

    def forward_step(data_iterator, model):  # noqa: ANN001 - Megatron's schedule signature
        # Stages after the first ignore the tokens (their input arrives from the previous stage).
        return model(tokens, positions, mask), lambda output, non_loss_data=False: output

    for chunk in chunks:
        chunk.eval()
    outputs = get_forward_backward_func()(
        forward_step_func=forward_step, data_iterator=[None] * len(chunks) if len(chunks) > 1 else None,
        model=chunks if len(chunks) > 1 else chunks[0], num_microbatches=1, seq_length=seq,
        micro_batch_size=batch, forward_only=True, collect_non_loss_data=True,
    )
    if not ps.is_pipeline_last_stage(ignore_virtual=True):
        return None
    logits = gather_from_tensor_model_parallel_region(outputs[0]).float().cpu()
    return logits[..., : chunks[-1].unpadded_vocab_size]  # the padded vocabulary's extra rows are not the model's


def load_megatron_model(ckpt: str | Path, tensor_parallel: int = 1, pipeline_parallel: int = 1,
                        dtype: str = "fp32", first_stage_layers: int | None = None,
                        last_stage_layers: int | None = None) -> list[torch.nn.Module]:
    """This rank's GPTModel chunks (local spec) with the weights of a checkpoint (parallel state must be initialised
    to match; ``first/last_stage_layers``: an uneven pipeline split)."""
    from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed

    from oc_megatron.models.opencoder import ModelConfig, build_model, transformer_config
    from oc_megatron.training.checkpoint import load_checkpoint, read_train_state

    # Attention forks the model-parallel RNG tracker (for dropout, which is 0 here): it must exist.
    model_parallel_cuda_manual_seed(0)
    model = ModelConfig.model_validate(read_train_state(ckpt).model)
    tconfig = transformer_config(model, tensor_parallel=tensor_parallel, pipeline_parallel=pipeline_parallel,
                                 num_layers_in_first_pipeline_stage=first_stage_layers,
                                 num_layers_in_last_pipeline_stage=last_stage_layers, precision=dtype)
    chunks = build_model(model, tconfig, spec="local", initialize=False)
    load_checkpoint(ckpt, chunks)
    return chunks


@torch.no_grad()
def hf_logits(hf_dir: str | Path, tokens: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Logits of a HF model directory loaded with ``AutoModelForCausalLM`` (eager attention, CPU)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=dtype, attn_implementation="eager").eval()
    return model(tokens).logits.float()
