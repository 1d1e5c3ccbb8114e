"""OpenCoder model presets and the Megatron-Core builders: ModelConfig -> TransformerConfig -> GPTModel chunks.

OpenCoder is a Llama-architecture decoder (docs/opencoder.md §5): RMSNorm (eps 1e-5), SwiGLU MLP, RoPE, no biases,
untied input/output embeddings, vocabulary 96,640.

| preset          | layers | hidden | heads / kv | head dim | FFN    | RoPE theta | context |
|-----------------|--------|--------|------------|----------|--------|------------|---------|
| opencoder-1.5b  | 24     | 2240   | 14 / 14    | 160      | 6144   | 10,000     | 4096    |
| opencoder-8b    | 32     | 4096   | 32 / 8     | 128      | 14336  | 500,000    | 8192    |
| tiny            | 4      | 64     | 4 / 2      | 16       | 176    | 10,000     | 128     |

``tiny`` is ours: small enough to train on a CPU in seconds, with GQA and 4 layers so that every parallel layout
(TP 2, PP 2, virtual pipeline 2) has something to split.

Public API (training, annealing, SFT and HF conversion build models only through these; keep them stable):

* ``ModelConfig``: the architecture. ``ModelConfig.from_preset("opencoder-1.5b", num_layers=4)``; as a config
  section ``{preset: opencoder-1.5b, num_layers: 4}`` (explicit keys override the preset).
* ``PRESETS``: name -> ModelConfig.
* ``transformer_config(model, ...)``: Megatron-Core ``TransformerConfig`` for a parallel layout and precision.
* ``build_model(model, tconfig, spec=..., seed=...)``: the GPTModel chunks of this rank (one per virtual pipeline
  stage), initialised identically for every parallel layout (see ``init_weights_``). The chunks are
  ``OpenCoderGPTModel``: Megatron-Core's GPTModel with RoPE angles taken from ``position_ids`` (packed SFT sequences
  restart positions per sample); same parameters and checkpoint keys.

``vocab_size`` is the true vocabulary (the tokenizer's ids, HF's ``vocab_size``). The embedding and output layer
have ``padded_vocab_size(tp)`` rows: Megatron's rule, ``vocab_size`` rounded up to a multiple of
``make_vocab_size_divisible_by`` (128) x the tensor-parallel size, so any TP splits the vocabulary. No token maps
to a padded row, and the loss ignores the padded logits (``OpenCoderGPTModel.compute_language_model_loss``), so
padding never changes what the model computes; conversion to HF strips it again. Checkpoints store the padded rows
of the layout they were written at; Megatron-Core loads them at any other padding (its embedding and output layer
allow a shape mismatch: rows beyond the checkpoint start at zero, rows beyond the model are not read).
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any, Literal

import torch
from pydantic import Field, PositiveInt, model_validator

from oc_common.config import StrictModel
from oc_common.log import get_logger

log = get_logger(__name__)

Precision = Literal["fp32", "bf16"]
FP8Format = Literal["hybrid", "e4m3"]
FP8Recipe = Literal["delayed", "tensorwise"]  # tensorwise = "current scaling" in Transformer Engine's terms
Recompute = Literal["none", "selective", "full"]


class ModelConfig(StrictModel):
    """A Llama-architecture decoder. Every field is concrete after validation; ``preset`` fills unset ones."""

    preset: str | None = Field(None, description="opencoder-1.5b, opencoder-8b or tiny; explicit keys override it")
    num_layers: PositiveInt
    hidden_size: PositiveInt
    num_attention_heads: PositiveInt
    num_query_groups: PositiveInt = Field(description="key/value heads (GQA); = num_attention_heads for MHA")
    ffn_hidden_size: PositiveInt
    vocab_size: PositiveInt = Field(description="the vocabulary (HF's vocab_size); tokenizer ids must be below it")
    make_vocab_size_divisible_by: PositiveInt = Field(
        128, description="embedding rows = vocab_size rounded up to a multiple of this x parallel.tensor "
                         "(Megatron's rule and default); padded logits are ignored by the loss")
    tie_embeddings: bool = Field(False, description="the output layer shares the input embedding "
                                                    "(HF tie_word_embeddings; OpenCoder: untied)")
    qkv_bias: bool = Field(False, description="biases on the q/k/v projections (Qwen2); OpenCoder: none")
    seq_length: PositiveInt = Field(description="training context length (RoPE has no learned positions)")
    rotary_base: float = 10000.0
    norm_epsilon: float = 1e-5
    init_method_std: float = 0.02

    @model_validator(mode="before")
    @classmethod
    def _fill_from_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset") is not None:
            name = data["preset"]
            if name not in _PRESET_VALUES:
                raise ValueError(f"unknown preset {name!r}: expected one of {', '.join(_PRESET_VALUES)}")
            data = {**_PRESET_VALUES[name], **{k: v for k, v in data.items() if v is not None}}
        return data

    @model_validator(mode="after")
    def _check_shapes(self) -> ModelConfig:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_attention_heads "
                             f"{self.num_attention_heads}")
        if self.num_attention_heads % self.num_query_groups:
            raise ValueError(f"num_attention_heads {self.num_attention_heads} is not divisible by num_query_groups "
                             f"{self.num_query_groups}")
        return self

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def padded_vocab_size(self, tensor_parallel: int = 1) -> int:
        """Embedding / output rows at this TP size: ``vocab_size`` rounded up to a multiple of
        ``make_vocab_size_divisible_by x tensor_parallel`` (Megatron-LM's ``vocab_size_with_padding``)."""
        multiple = self.make_vocab_size_divisible_by * tensor_parallel
        return -(-self.vocab_size // multiple) * multiple

    def tensor_parallel_conflicts(self, tp: int) -> list[str]:
        """The dimensions TP must split evenly (attention heads, KV heads, FFN) that ``tp`` does not divide, as
        "field (value)"; empty when ``tp`` is a valid TP size. (The vocabulary is padded to fit any TP.)"""
        dims = {"num_attention_heads": self.num_attention_heads, "num_query_groups": self.num_query_groups,
                "ffn_hidden_size": self.ffn_hidden_size}
        return [f"{name} ({value})" for name, value in dims.items() if value % tp]

    def valid_tensor_parallel_sizes(self) -> list[int]:
        g = math.gcd(self.num_attention_heads, self.num_query_groups, self.ffn_hidden_size)
        return [d for d in range(1, g + 1) if g % d == 0]

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> ModelConfig:
        return cls.model_validate({"preset": name, **overrides})

    def num_parameters(self, include_embeddings: bool = True) -> int:
        """Parameters of the unpadded model (what the HF export holds)."""
        h, f, L, v = self.hidden_size, self.ffn_hidden_size, self.num_layers, self.vocab_size
        kv = self.num_query_groups * self.head_dim
        per_layer = h * (h + 2 * kv) + h * h + 3 * h * f + 2 * h  # qkv, proj, fc1 (gate+up) + fc2, two norms
        if self.qkv_bias:
            per_layer += h + 2 * kv
        embeddings = (1 if self.tie_embeddings else 2) * v * h
        return L * per_layer + h + (embeddings if include_embeddings else 0)

    def flops_per_token(self, seq_length: int | None = None, tensor_parallel: int = 1) -> float:
        """Training FLOPs per token (forward + backward = 3 x forward, 2 per multiply-add), as Megatron-LM counts them.

        Megatron-LM's ``num_floating_point_operations`` (``megatron/training/training.py``, dense branch) divided by
        batch x sequence: per layer ``6 h (q + 2 kv)`` (QKV), ``6 q h`` (output projection), ``18 h ffn`` (SwiGLU:
        gate, up, down), ``6 q s`` (QK^T and AV over the causal half of the s x s scores); plus ``6 h V_pad`` for
        the logits (the padded vocabulary, at this TP). Norms, biases and the embedding lookup are not counted.
        """
        s = seq_length or self.seq_length
        h, L = self.hidden_size, self.num_layers
        q = self.num_attention_heads * self.head_dim
        kv = self.num_query_groups * self.head_dim
        attention = h * (q + 2 * kv) + q * s / 2 * 2 + q * h
        mlp = h * self.ffn_hidden_size * 3
        return 6.0 * (L * (attention + mlp) + h * self.padded_vocab_size(tensor_parallel))


_PRESET_VALUES: dict[str, dict[str, Any]] = {
    "opencoder-1.5b": dict(num_layers=24, hidden_size=2240, num_attention_heads=14, num_query_groups=14,
                           ffn_hidden_size=6144, vocab_size=96640, seq_length=4096, rotary_base=10000.0),
    "opencoder-8b": dict(num_layers=32, hidden_size=4096, num_attention_heads=32, num_query_groups=8,
                         ffn_hidden_size=14336, vocab_size=96640, seq_length=8192, rotary_base=500000.0),
    # head_dim 32: vLLM's CPU attention rejects 16 (what hidden 64 / 4 heads gave), so the model the demo trains can
    # be served; a 256-token context holds HumanEval's first prompts (150-220 tokens with the tiny tokenizer).
    "tiny": dict(num_layers=4, hidden_size=128, num_attention_heads=4, num_query_groups=2, ffn_hidden_size=352,
                 vocab_size=1024, seq_length=256, rotary_base=10000.0),
}
PRESETS: dict[str, ModelConfig] = {name: ModelConfig.from_preset(name) for name in _PRESET_VALUES}


def pipeline_stage_layers(num_layers: int, pipeline: int, virtual_pipeline: int | None = None,
                          first: int | None = None, last: int | None = None) -> list[int]:
    """Decoder layers on each pipeline stage, by Megatron-Core's rules (``get_num_layers_to_build``).

    Without ``first`` / ``last`` the layers split evenly. ``first`` (``last``) fixes the first (last) stage's
    count, and the stages in between share the rest evenly (``num_layers_in_first/last_pipeline_stage``). With a
    virtual pipeline every stage's count must divide into ``virtual_pipeline`` chunks. Raises ``ValueError`` saying
    what does not work (and, for an even split that does not divide, which uneven one would).
    """
    vpp = virtual_pipeline or 1
    if first is None and last is None:
        if num_layers % (pipeline * vpp):
            hint = suggest_pipeline_split(num_layers, pipeline, virtual_pipeline)
            raise ValueError(f"{num_layers} layers do not split evenly over {pipeline} pipeline stages"
                             + (f" x {vpp} virtual stages" if vpp > 1 else "")
                             + (f"; an uneven split that works: {hint}" if hint else ""))
        return [num_layers // pipeline] * pipeline
    if pipeline == 1:
        raise ValueError("first/last pipeline stage layer counts need more than one pipeline stage")
    for name, count in (("first", first), ("last", last)):
        if count is not None and count < 1:
            raise ValueError(f"the {name} pipeline stage needs at least one layer (got {count})")
    middle_stages = pipeline - (first is not None) - (last is not None)
    middle_layers = num_layers - (first or 0) - (last or 0)
    if middle_layers < 0 or bool(middle_layers) != bool(middle_stages):
        raise ValueError(f"{num_layers} layers: first {first} and last {last} leave {middle_layers} layers for "
                         f"{middle_stages} other stage(s)")
    if middle_stages and middle_layers % middle_stages:
        raise ValueError(f"{num_layers} layers: the {middle_layers} layers left after the first/last stage do not "
                         f"split evenly over the other {middle_stages} stage(s)")
    per = middle_layers // middle_stages if middle_stages else 0
    stages = [first if first is not None else per] + [per] * (pipeline - 2) + [last if last is not None else per]
    bad = [i for i, n in enumerate(stages) if n % vpp]
    if bad:
        raise ValueError(f"stage layer counts {stages}: stage {bad[0]} ({stages[bad[0]]} layers) does not divide into "
                         f"{vpp} virtual pipeline chunks")
    return stages


def suggest_pipeline_split(num_layers: int, pipeline: int, virtual_pipeline: int | None = None) -> str | None:
    """The most even uneven split (as config keys) for a layer count that ``pipeline`` does not divide, or None."""
    best: tuple[int, int, str] | None = None
    options = [None, *range(1, num_layers + 1)]
    for first in options:
        for last in options:
            if first is None and last is None:
                continue
            try:
                stages = pipeline_stage_layers(num_layers, pipeline, virtual_pipeline, first, last)
            except ValueError:
                continue
            keys = ", ".join(f"num_layers_in_{name}_pipeline_stage: {n}"
                             for name, n in (("first", first), ("last", last)) if n is not None)
            score = (max(stages) - min(stages), (first is not None) + (last is not None), f"{keys} ({stages})")
            best = min(best, score) if best else score
    return best[2] if best else None


def kernel_fusions(cuda: bool, te: bool) -> dict[str, bool]:
    """The CUDA fusions the layer specs can use, as TransformerConfig flags (``te``: Transformer Engine importable).

    * bias-SwiGLU, bias-dropout-add and the vocab-parallel cross entropy are Megatron-Core's own jit-fused torch
      code: any CUDA device, either spec;
    * fused RoPE is Transformer Engine's kernel: CUDA with TE importable, either spec;
    * masked-softmax fusion is never on: only the local spec's ``FusedScaleMaskSoftmax`` reads it, and it needs
      Apex's compiled kernels (without them the first forward fails) whose causal variant ignores the mask it is
      given (packed SFT would attend across samples). TE's attention does its own softmax and ignores the flag.
    """
    return {"bias_activation_fusion": cuda, "bias_dropout_fusion": cuda, "cross_entropy_loss_fusion": cuda,
            "apply_rope_fusion": cuda and te, "masked_softmax_fusion": False}


def transformer_config(
    model: ModelConfig,
    *,
    tensor_parallel: int = 1,
    pipeline_parallel: int = 1,
    virtual_pipeline: int | None = None,
    num_layers_in_first_pipeline_stage: int | None = None,
    num_layers_in_last_pipeline_stage: int | None = None,
    sequence_parallel: bool = False,
    context_parallel: int = 1,
    precision: Precision = "fp32",
    fp8: FP8Format | None = None,
    fp8_recipe: FP8Recipe = "delayed",
    fp8_amax_history_len: int = 1024,
    recompute: Recompute = "none",
    recompute_num_layers: int = 1,
    fused_kernels: bool = True,
    **extra: Any,
) -> TransformerConfig:  # noqa: F821
    """Megatron-Core TransformerConfig for ``model`` on a given layout and precision.

    The parallel sizes must also be set in TransformerConfig (not only in parallel_state): Megatron-Core checks
    sequence parallelism against them and computes pipeline layer offsets from them. An uneven pipeline split is
    given as Megatron-Core's ``num_layers_in_first/last_pipeline_stage`` (see ``pipeline_stage_layers``).

    The CUDA fusions are those both layer specs can use (``kernel_fusions``): none on the CPU, none with
    ``fused_kernels=False``.
    Gradient-accumulation fusion stays off (it needs Apex or TE wgrad kernels and has not been validated here);
    pass it in ``extra`` to try it. ``recompute``: ``selective`` recomputes core attention; ``full`` recomputes
    ``recompute_num_layers`` whole layers per block (``uniform`` method). ``extra`` is passed to TransformerConfig
    as is.
    """
    import torch.nn.functional as F
    from megatron.core.transformer.transformer_config import TransformerConfig

    from oc_megatron.models.specs import te_available

    cuda = torch.cuda.is_available()
    fusions = kernel_fusions(cuda, cuda and te_available())
    if not fused_kernels:
        fusions = dict.fromkeys(fusions, False)
    bf16 = precision == "bf16"
    dtype = torch.bfloat16 if bf16 else torch.float32
    kwargs: dict[str, Any] = dict(
        num_layers=model.num_layers,
        hidden_size=model.hidden_size,
        num_attention_heads=model.num_attention_heads,
        num_query_groups=model.num_query_groups,
        kv_channels=model.head_dim,
        ffn_hidden_size=model.ffn_hidden_size,
        normalization="RMSNorm",
        layernorm_epsilon=model.norm_epsilon,
        gated_linear_unit=True,
        activation_func=F.silu,
        add_bias_linear=False,
        add_qkv_bias=model.qkv_bias,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        attention_softmax_in_fp32=True,
        init_method_std=model.init_method_std,
        tensor_model_parallel_size=tensor_parallel,
        pipeline_model_parallel_size=pipeline_parallel,
        virtual_pipeline_model_parallel_size=virtual_pipeline,
        num_layers_in_first_pipeline_stage=num_layers_in_first_pipeline_stage,
        num_layers_in_last_pipeline_stage=num_layers_in_last_pipeline_stage,
        sequence_parallel=sequence_parallel,
        context_parallel_size=context_parallel,
        params_dtype=dtype,
        pipeline_dtype=dtype,
        bf16=bf16,
        # Megatron's init also records each weight's TP sharding (tensor_model_parallel, partition_dim/_stride),
        # which DDP, grad-norm and init_weights_ rely on; init_weights_ then overwrites the values layout-invariantly.
        perform_initialization=True,
        use_cpu_initialization=not cuda,
        **fusions,
        gradient_accumulation_fusion=False,
        persist_layer_norm=False,
        deallocate_pipeline_outputs=True,
    )
    if fp8 is not None:
        kwargs.update(fp8=fp8, fp8_recipe=fp8_recipe, fp8_amax_history_len=fp8_amax_history_len,
                      fp8_amax_compute_algo="max")
    if recompute == "selective":
        kwargs.update(recompute_granularity="selective")
    elif recompute == "full":
        kwargs.update(recompute_granularity="full", recompute_method="uniform",
                      recompute_num_layers=recompute_num_layers)
    kwargs.update(extra)
    return TransformerConfig(**kwargs)


def build_model(
    model: ModelConfig,
    tconfig: TransformerConfig,  # noqa: F821
    *,
    spec: str = "auto",
    seed: int = 1234,
    initialize: bool = True,
    vocab_rows: int | None = None,
) -> list[GPTModel]:  # noqa: F821
    """The GPTModel chunks this rank holds: one per virtual pipeline stage (a list of one without VPP).

    Needs ``megatron.core.parallel_state`` initialised with the sizes in ``tconfig``. On a CPU-only torch the
    shims of ``cpu_compat`` are applied first. ``spec``: ``auto`` | ``te`` | ``local`` (see ``specs``).
    With ``initialize`` the weights are set by ``init_weights_(chunks, model, seed)``. ``vocab_rows``: embedding
    rows (default: ``model.padded_vocab_size`` at ``tconfig``'s TP size).
    """
    from megatron.core import parallel_state as ps

    from oc_megatron.models.cpu_compat import apply_cpu_shims
    from oc_megatron.models.specs import decoder_block_spec, resolve_spec_backend

    apply_cpu_shims()
    backend = resolve_spec_backend(spec, announce=spec == "auto")
    gpt_model_class = opencoder_gpt_model_class()
    vpp = tconfig.virtual_pipeline_model_parallel_size
    chunks = []
    for vp_stage in range(vpp or 1):
        stage = vp_stage if vpp else None
        kwargs: dict[str, Any] = {}
        if vpp:
            kwargs["vp_stage"] = stage
        gpt = gpt_model_class(
            config=tconfig,
            transformer_layer_spec=decoder_block_spec(tconfig, backend, vp_stage=stage),
            vocab_size=vocab_rows or model.padded_vocab_size(tconfig.tensor_model_parallel_size),
            max_sequence_length=model.seq_length,
            pre_process=ps.is_pipeline_first_stage(ignore_virtual=False, vp_stage=stage),
            post_process=ps.is_pipeline_last_stage(ignore_virtual=False, vp_stage=stage),
            share_embeddings_and_output_weights=model.tie_embeddings,
            position_embedding_type="rope",
            rotary_percent=1.0,
            rotary_base=int(model.rotary_base),
            parallel_output=True,
            **kwargs,
        )
        gpt.unpadded_vocab_size = model.vocab_size  # logits of the rows above it are padding (see the loss)
        chunks.append(gpt)
    if initialize:
        init_weights_(chunks, model, seed)
    return chunks


_GPT_MODEL_CLASS = None


def opencoder_gpt_model_class():
    """``OpenCoderGPTModel``: Megatron-Core's GPTModel whose RoPE follows ``position_ids`` (built on first use, so
    importing this module does not import Megatron-Core).

    Megatron-Core's GPTModel rotates position ``t`` of every sequence by angle ``t`` whatever ``position_ids`` say
    (they only feed learned position embeddings, which Llama models do not have); its way to restart positions is
    THD packing (``packed_seq_params`` with ``cu_seqlens``), which only Transformer Engine attention accepts. Here,
    when ``position_ids`` are given without ``packed_seq_params``, the rotary angles are computed per token from them
    ([s, b, 1, dim] instead of [s, 1, 1, dim]; the same values for 0..s-1), so packed sequences on the local spec
    (CPU) rotate each sample from position 0, as if it were alone. Every pipeline stage must be given the
    ``position_ids`` (the trainer does): a stage that computes RoPE from 0..s-1 would silently differ. Fused RoPE
    (a CUDA kernel that wants [s, 1, 1, dim]) keeps Megatron's angles: with it, pack with THD.
    """
    global _GPT_MODEL_CLASS
    if _GPT_MODEL_CLASS is not None:
        return _GPT_MODEL_CLASS
    from megatron.core.models.gpt import GPTModel

    class OpenCoderGPTModel(GPTModel):
        unpadded_vocab_size: int | None = None  # set by build_model

        def compute_language_model_loss(self, labels, logits):
            """Megatron's vocab-parallel cross entropy over the real vocabulary only: the padded rows' logits are
            set to -inf first, so they take no probability mass and their output rows get no gradient."""
            from megatron.core import parallel_state as ps

            true_vocab = self.unpadded_vocab_size
            local = logits.shape[-1]
            first = ps.get_tensor_model_parallel_rank() * local  # vocab-parallel: this rank's rows
            if true_vocab is not None and first + local > true_vocab:
                column = torch.arange(first, first + local, device=logits.device)
                logits = logits.masked_fill(column >= true_vocab, float("-inf"))
            return super().compute_language_model_loss(labels, logits)

        def _preprocess(self, input_ids, position_ids, *args, **kwargs):
            out = super()._preprocess(input_ids, position_ids, *args, **kwargs)
            rotary = out[1]
            if (rotary is None or position_ids is None or kwargs.get("packed_seq_params") is not None
                    or kwargs.get("inference_context") is not None or self.config.apply_rope_fusion):
                return out
            return (out[0], self._rotary_from_positions(position_ids), *out[2:])

        def _rotary_from_positions(self, position_ids: torch.Tensor) -> torch.Tensor:
            """RotaryEmbedding.get_emb for arbitrary positions: [b, s] -> [s, b, 1, dim]."""
            rope = self.rotary_pos_emb
            inv_freq = rope.inv_freq.to(position_ids.device)
            positions = position_ids.t().to(inv_freq.dtype)  # [s, b]
            if rope.seq_len_interpolation_factor is not None:
                positions = positions * (1 / rope.seq_len_interpolation_factor)
            freqs = positions[..., None] * inv_freq  # [s, b, dim/2]: the outer product of get_freqs_non_repeated
            if rope.rotary_interleaved:
                emb = torch.stack((freqs, freqs), dim=-1).flatten(-2)
            else:
                emb = torch.cat((freqs, freqs), dim=-1)
            return emb[:, :, None, :]

    _GPT_MODEL_CLASS = OpenCoderGPTModel
    return OpenCoderGPTModel


# Output projections of each residual branch get std / sqrt(2 * num_layers) (GPT-2 / Megatron-LM scaled init).
_SCALED_INIT = re.compile(r"(linear_proj|linear_fc2)\.weight$")
_LAYER_INDEX = re.compile(r"(^|\.)layers\.(\d+)\.")


def _global_param_name(chunk: torch.nn.Module, name: str) -> str:
    """Replace the chunk-local layer index with the global one (Megatron's ``layer_number`` is global, 1-based)."""
    m = _LAYER_INDEX.search(name)
    if m is None:
        return name
    layer = chunk.decoder.layers[int(m.group(2))]
    return name[: m.start(2)] + str(layer.layer_number - 1) + name[m.end(2):]


def _param_seed(seed: int, global_name: str) -> int:
    digest = hashlib.sha256(f"{seed}:{global_name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def _normal(shape: list[int], sigma: float, seed: int, name: str) -> torch.Tensor:
    gen = torch.Generator().manual_seed(_param_seed(seed, name))
    return torch.empty(shape, dtype=torch.float32).normal_(0.0, sigma, generator=gen)


_EMBEDDING_WEIGHT = "embedding.word_embeddings.weight"
_OUTPUT_WEIGHT = "output_layer.weight"


@torch.no_grad()
def init_weights_(chunks: list[torch.nn.Module], model: ModelConfig, seed: int) -> None:
    """Initialise every parameter so that the *global* model is the same for every TP / PP / VPP layout.

    Each parameter draws its full (unsharded) tensor from its own generator, seeded by ``seed`` and the parameter's
    global name, and keeps this rank's shard, split the way Megatron-Core's CPU initialisation splits it (by
    ``partition_dim`` in ``partition_stride`` interleaved pieces: fc1 holds [gate; up] so each TP rank gets a
    slice of both). Megatron's own init consumes one RNG stream in construction order, which differs between
    pipeline stages; with this, "same seed" means "same model" on any layout, so layouts can be compared loss for
    loss from step 1. Norm weights are 1, biases 0; weights are N(0, std), residual output projections
    N(0, std/sqrt(2L)). The rows of the real vocabulary are drawn apart from the padding rows (from their own
    generator), so they are the same whatever the padding (i.e. the TP size); the last pipeline stage's copy of a
    tied embedding gets the embedding's values.
    """
    from megatron.core import parallel_state as ps

    tp_rank, tp_size = ps.get_tensor_model_parallel_rank(), ps.get_tensor_model_parallel_world_size()
    std = model.init_method_std
    for chunk in chunks:
        for name, param in chunk.named_parameters():
            gname = _global_param_name(chunk, name)
            if model.tie_embeddings and gname == _OUTPUT_WEIGHT:
                gname = _EMBEDDING_WEIGHT
            if "norm" in gname:  # input_layernorm / pre_mlp_layernorm / final_layernorm, TE's layer_norm_weight
                param.fill_(1.0)
                continue
            if gname.endswith(".bias"):  # linear_qkv.bias (qkv_bias): Megatron starts biases at zero
                param.zero_()
                continue
            sharded = bool(getattr(param, "tensor_model_parallel", False)) and tp_size > 1
            dim = getattr(param, "partition_dim", 0)
            # fc1 is [gate; up]: Megatron shards it with stride 2 (TE layers may not record the stride).
            stride = 2 if gname.endswith("linear_fc1.weight") else getattr(param, "partition_stride", 1)
            full_shape = list(param.shape)
            if sharded:
                full_shape[dim] *= tp_size
            sigma = std / math.sqrt(2.0 * model.num_layers) if _SCALED_INIT.search(gname) else std
            if gname in (_EMBEDDING_WEIGHT, _OUTPUT_WEIGHT) and full_shape[0] > model.vocab_size:
                rows = [model.vocab_size, full_shape[0] - model.vocab_size]
                full = torch.cat([_normal([rows[0], *full_shape[1:]], sigma, seed, gname),
                                  _normal([rows[1], *full_shape[1:]], sigma, seed, gname + ":padding")])
            else:
                full = _normal(full_shape, sigma, seed, gname)
            if sharded:
                piece = param.shape[dim] // stride
                full = torch.cat(torch.split(full, piece, dim=dim)[tp_rank::tp_size], dim=dim)
            param.copy_(full.to(param.dtype))
