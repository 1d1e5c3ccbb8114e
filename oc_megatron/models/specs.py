"""Layer specs for the OpenCoder (Llama-architecture) GPTModel: Transformer Engine's when it can run, else local.

* TE spec (``te``): Megatron-Core's ``get_gpt_layer_with_transformer_engine_spec``: fused LayerNorm+Linear, TE
  attention, FP8-capable. Needs Transformer Engine and CUDA.
* Local spec (``local``): Megatron-Core's own ColumnParallelLinear / RowParallelLinear / DotProductAttention / MLP
  with :class:`RMSNorm` below. Runs anywhere (CPU with gloo included).

Both specs give the weights the same distributed-checkpoint keys: the local layer maps its norms onto TE's fused
names (``self_attention.linear_qkv.layer_norm_weight``, ``mlp.linear_fc1.layer_norm_weight``) exactly as
Megatron-Core's own local spec does, and the final norm is ``decoder.final_layernorm.weight`` in both. Their
``_extra_state`` entries differ: TE modules write FP8 metadata there (and TE >= 2.0's RMSNorm, our final norm on the
TE spec, writes one too), Megatron-Core's local linear layers write empty ones, our local RMSNorm and the local
attention none. ``training.checkpoint.load_checkpoint`` therefore accepts a checkpoint that lacks extra states the
model has (they keep their fresh values) and ignores ones the model does not have, so TE and local checkpoints load
into each other.

Public API (imported by training and by checkpoint conversion; keep it stable):
  ``te_available()``, ``te_unavailable_reason()``, ``resolve_spec_backend(name)``, ``RMSNorm``, ``layer_spec(backend)``,
  ``decoder_block_spec(config, backend, vp_stage)``.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

import torch

from oc_common.log import get_logger

log = get_logger(__name__)

SpecBackend = Literal["te", "local"]


_TE_IMPORT_ERROR: list[BaseException | None] = []  # the outcome of the one import attempt, once made


def te_import_error() -> BaseException | None:
    """Why ``import transformer_engine.pytorch`` failed (None: it worked, or TE is not installed at all)."""
    if importlib.util.find_spec("transformer_engine") is None:
        return None
    if not _TE_IMPORT_ERROR:
        try:
            import transformer_engine.pytorch  # noqa: F401
        except Exception as e:  # noqa: BLE001 - anything that stops the import: a wrong build, a missing .so
            _TE_IMPORT_ERROR.append(e)
            log.warning("Transformer Engine is installed but does not import (%s: %s): the layer spec falls back "
                        "to local (no FP8, unfused kernels). Typical causes: the bare `transformer-engine` "
                        "package without `transformer-engine-torch`, or a torch replaced under an NGC container's "
                        "TE build (see docs/install.md)", type(e).__name__, e)
        else:
            _TE_IMPORT_ERROR.append(None)
    return _TE_IMPORT_ERROR[0]


def te_available() -> bool:
    """Transformer Engine's PyTorch extension importable *and* a CUDA device present.

    Not installed: False, quietly. Installed but not importable: False, with a warning naming the import error
    (``te_import_error()``), since that is a broken environment rather than a choice.
    """
    if not torch.cuda.is_available() or importlib.util.find_spec("transformer_engine") is None:
        return False
    return te_import_error() is None


def te_unavailable_reason() -> str:
    """Why ``te_available()`` is False, in words (for errors when TE is asked for explicitly)."""
    if not torch.cuda.is_available():
        return "no CUDA device"
    if importlib.util.find_spec("transformer_engine") is None:
        return "transformer_engine is not installed"
    error = te_import_error()
    if error is not None:
        return f"transformer_engine.pytorch does not import: {type(error).__name__}: {error}"
    return "available"


def resolve_spec_backend(requested: str = "auto", announce: bool = True) -> SpecBackend:
    """``auto`` -> ``te`` when TE and CUDA are present, else ``local``. The choice is logged.

    Asking for ``te`` explicitly without TE/CUDA raises ``ValueError`` (the caller names the config key).
    """
    if requested not in ("auto", "te", "local"):
        raise ValueError(f"unknown layer spec {requested!r}: expected auto, te or local")
    if requested == "te" and not te_available():
        raise ValueError(f"layer spec 'te' needs Transformer Engine and a CUDA device ({te_unavailable_reason()})")
    backend: SpecBackend = ("te" if te_available() else "local") if requested == "auto" else requested  # type: ignore
    reason = {"te": "Transformer Engine + CUDA found: fused kernels, FP8-capable",
              "local": "Megatron-Core local modules (no Transformer Engine/CUDA, or asked for)"}[backend]
    if announce:
        log.info("layer spec: %s (%s)", backend, reason)
    return backend


class RMSNorm(torch.nn.Module):
    """RMSNorm for the local spec: ``x / sqrt(mean(x^2) + eps) * weight``, computed in fp32.

    Megatron-Core's ``WrappedTorchNorm`` refuses sequence parallelism, and an importable ``apex`` would swap in a
    FusedLayerNorm that rejects RMSNorm. This module accepts the constructor Megatron-Core's layers use
    (``config, hidden_size, eps``) and marks its weight ``sequence_parallel`` when SP is on: under SP each TP rank
    normalises a different slice of the sequence, so the weight's gradient is a partial sum that Megatron's
    ``finalize_model_grads`` all-reduces over the TP group for exactly the parameters carrying that mark.
    """

    def __init__(self, config, hidden_size: int, eps: float = 1e-5, **unused) -> None:
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(hidden_size, dtype=config.params_dtype))
        self.weight.sequence_parallel = bool(config.sequence_parallel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (normed * self.weight.float()).to(x.dtype)


def layer_spec(backend: SpecBackend):
    """The ModuleSpec of one dense Llama-style transformer layer (pre-norm, GQA attention, SwiGLU MLP)."""
    from megatron.core.fusions.fused_bias_dropout import get_bias_dropout_add
    from megatron.core.tensor_parallel.layers import ColumnParallelLinear, RowParallelLinear
    from megatron.core.transformer.attention import SelfAttention, SelfAttentionSubmodules
    from megatron.core.transformer.dot_product_attention import DotProductAttention
    from megatron.core.transformer.enums import AttnMaskType
    from megatron.core.transformer.identity_op import IdentityOp
    from megatron.core.transformer.mlp import MLP, MLPSubmodules
    from megatron.core.transformer.spec_utils import ModuleSpec
    from megatron.core.transformer.transformer_layer import TransformerLayer, TransformerLayerSubmodules

    if backend == "te":
        from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_with_transformer_engine_spec

        return get_gpt_layer_with_transformer_engine_spec()

    return ModuleSpec(
        module=TransformerLayer,
        submodules=TransformerLayerSubmodules(
            input_layernorm=RMSNorm,
            self_attention=ModuleSpec(
                module=SelfAttention,
                params={"attn_mask_type": AttnMaskType.causal},
                submodules=SelfAttentionSubmodules(
                    linear_qkv=ColumnParallelLinear,
                    core_attention=DotProductAttention,
                    linear_proj=RowParallelLinear,
                    q_layernorm=IdentityOp,
                    k_layernorm=IdentityOp,
                ),
            ),
            self_attn_bda=get_bias_dropout_add,
            pre_mlp_layernorm=RMSNorm,
            mlp=ModuleSpec(module=MLP, submodules=MLPSubmodules(linear_fc1=ColumnParallelLinear,
                                                                linear_fc2=RowParallelLinear)),
            mlp_bda=get_bias_dropout_add,
            # Same checkpoint keys as the TE spec (whose norms are fused into the following linear layer).
            sharded_state_dict_keys_map={
                "input_layernorm.": "self_attention.linear_qkv.layer_norm_",
                "pre_mlp_layernorm.": "mlp.linear_fc1.layer_norm_",
            },
        ),
    )


def final_norm_class(backend: SpecBackend):
    if backend == "te":
        from megatron.core.extensions.transformer_engine import TENorm

        return TENorm
    return RMSNorm


def decoder_block_spec(config, backend: SpecBackend, vp_stage: int | None = None):
    """TransformerBlockSubmodules for the layers this pipeline stage (and virtual stage) builds, plus the final norm.

    Passing the block spec (rather than a layer spec) is what lets us choose the final norm: given a bare layer
    spec, Megatron-Core picks its own norm class (apex or torch), which breaks RMSNorm + sequence parallelism.
    """
    from megatron.core.transformer.transformer_block import TransformerBlockSubmodules, get_num_layers_to_build

    n = get_num_layers_to_build(config, vp_stage=vp_stage)
    return TransformerBlockSubmodules(layer_specs=[layer_spec(backend)] * n, layer_norm=final_norm_class(backend))
