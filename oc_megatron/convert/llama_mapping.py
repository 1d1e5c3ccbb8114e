"""The Megatron-Core GPTModel <-> Hugging Face ``LlamaForCausalLM`` mapping, tensor by tensor, in one table.

Read it next to ``transformers/models/llama/modeling_llama.py``: every HF name below is a parameter there
(``LlamaModel.embed_tokens``, ``LlamaDecoderLayer.{input_layernorm, self_attn, post_attention_layernorm, mlp}``,
``LlamaAttention.{q,k,v,o}_proj``, ``LlamaMLP.{gate,up,down}_proj``, ``LlamaModel.norm``,
``LlamaForCausalLM.lm_head``), with the shape its ``nn.Linear`` / ``nn.Embedding`` / ``LlamaRMSNorm`` gives it.

The Megatron side is named by **distributed-checkpoint keys of the global (unsharded) tensors**, one layer at a time
(``{i}`` = global layer index). Megatron-Core's torch_dist checkpoints store exactly these global tensors whatever
TP / PP they were saved at, and re-shard them on load:

* ``linear_qkv`` rows are split over TP ranks in whole query groups, so the global tensor is the TP-1 layout;
* ``linear_fc1`` holds [gate; up]; at TP > 1 each rank holds ``cat(gate.chunk(tp)[r], up.chunk(tp)[r])``, and
  Megatron-Core's SwiGLU sharded factory saves the two halves as separate pieces of the global [gate; up];
* the layer norms are stored under the names of Transformer Engine's fused LayerNorm+Linear
  (``linear_qkv.layer_norm_weight``, ``linear_fc1.layer_norm_weight``) by both layer specs (see ``models/specs.py``).

So the rules here never depend on the parallel layout: three kinds of mapping, after Megatron-Bridge's
``AutoMapping`` / ``QKVMapping`` / ``GatedMLPMapping``:

* :class:`Direct`: one tensor, same layout on both sides;
* :class:`GroupedQKV`: per query group ``g`` the fused rows are ``[q heads of g | k head g | v head g]``
  (``heads / groups`` query heads then one key and one value head, each ``head_dim`` rows);
  MHA is the case ``groups == heads``;
* :class:`GatedMLP`: ``linear_fc1 = cat([gate_proj, up_proj])``.

Both sides use rotate-half RoPE (Megatron-Core's ``rotary_interleaved=False``, HF's ``rotate_half``), so q and k need
no permutation. With this table TP-1 logits are bitwise equal to transformers' (docs/platform.md).

Shapes are written with the dimension names of :class:`Dims` so that inputs can be checked and output shards planned
before any tensor is read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

__all__ = [
    "Dims",
    "Direct",
    "GroupedQKV",
    "GatedMLP",
    "FIRST",
    "PER_LAYER",
    "LAST",
    "mappings",
    "hf_tensor_shapes",
    "IGNORED_HF_TENSORS",
]


@dataclass(frozen=True)
class Dims:
    """The dimensions tensor shapes are written in (all from the model config)."""

    vocab: int  # V: embedding rows (= HF vocab_size; never padded further, see models/opencoder.py)
    hidden: int  # H
    heads: int
    groups: int  # key/value heads (num_query_groups = num_key_value_heads)
    head_dim: int
    ffn: int  # F

    def size(self, name: str) -> int:
        return {
            "V": self.vocab,
            "H": self.hidden,
            "Q": self.heads * self.head_dim,  # all query heads
            "KV": self.groups * self.head_dim,  # all key (or value) heads
            "F": self.ffn,
        }[name]

    def shape(self, spec: tuple[str, ...]) -> tuple[int, ...]:
        return tuple(self.size(d) for d in spec)

    @classmethod
    def of(cls, model) -> Dims:  # noqa: ANN001 - oc_megatron.models.opencoder.ModelConfig
        return cls(vocab=model.vocab_size, hidden=model.hidden_size, heads=model.num_attention_heads,
                   groups=model.num_query_groups, head_dim=model.head_dim, ffn=model.ffn_hidden_size)


def _at(template: str, layer: int | None) -> str:
    return template if layer is None else template.format(i=layer)


@dataclass(frozen=True)
class Direct:
    """One Megatron tensor is one HF tensor, element for element."""

    megatron: str
    hf: str
    shape: tuple[str, ...]

    def megatron_shape(self, d: Dims) -> tuple[int, ...]:
        return d.shape(self.shape)

    def hf_shapes(self, d: Dims, layer: int | None = None) -> dict[str, tuple[int, ...]]:
        return {_at(self.hf, layer): d.shape(self.shape)}

    def to_hf(self, t: torch.Tensor, d: Dims, layer: int | None = None) -> dict[str, torch.Tensor]:
        return {_at(self.hf, layer): t}

    def to_megatron(self, hf: dict[str, torch.Tensor], d: Dims, layer: int | None = None) -> torch.Tensor:
        return hf[_at(self.hf, layer)]


@dataclass(frozen=True)
class GroupedQKV:
    """Megatron's fused ``linear_qkv`` <- HF ``q_proj``, ``k_proj``, ``v_proj``, grouped by query group.

    HF (``LlamaAttention``): ``q_proj`` [heads*head_dim, H], ``k_proj`` / ``v_proj`` [groups*head_dim, H], rows
    head-major. Megatron (``SelfAttention.get_query_key_value_tensors``) views the fused output as
    [groups, (heads/groups + 2) * head_dim] and splits each group into its query heads, its key head, its value head.
    """

    megatron: str
    q: str
    k: str
    v: str

    def megatron_shape(self, d: Dims) -> tuple[int, ...]:
        return (d.size("Q") + 2 * d.size("KV"), d.hidden)

    def hf_shapes(self, d: Dims, layer: int | None = None) -> dict[str, tuple[int, ...]]:
        return {_at(self.q, layer): d.shape(("Q", "H")), _at(self.k, layer): d.shape(("KV", "H")),
                _at(self.v, layer): d.shape(("KV", "H"))}

    def to_megatron(self, hf: dict[str, torch.Tensor], d: Dims, layer: int | None = None) -> torch.Tensor:
        q, k, v = (hf[_at(n, layer)] for n in (self.q, self.k, self.v))
        per_group = d.heads // d.groups * d.head_dim
        fused = torch.cat([q.reshape(d.groups, per_group, d.hidden),
                           k.reshape(d.groups, d.head_dim, d.hidden),
                           v.reshape(d.groups, d.head_dim, d.hidden)], dim=1)
        return fused.reshape(-1, d.hidden)

    def to_hf(self, t: torch.Tensor, d: Dims, layer: int | None = None) -> dict[str, torch.Tensor]:
        per_group = d.heads // d.groups * d.head_dim
        q, k, v = t.reshape(d.groups, per_group + 2 * d.head_dim, d.hidden).split(
            [per_group, d.head_dim, d.head_dim], dim=1)
        return {_at(self.q, layer): q.reshape(-1, d.hidden).contiguous(),
                _at(self.k, layer): k.reshape(-1, d.hidden).contiguous(),
                _at(self.v, layer): v.reshape(-1, d.hidden).contiguous()}


@dataclass(frozen=True)
class GatedMLP:
    """Megatron's ``linear_fc1`` = [gate; up] <- HF ``gate_proj``, ``up_proj`` (SwiGLU: ``silu(gate(x)) * up(x)``)."""

    megatron: str
    gate: str
    up: str

    def megatron_shape(self, d: Dims) -> tuple[int, ...]:
        return (2 * d.ffn, d.hidden)

    def hf_shapes(self, d: Dims, layer: int | None = None) -> dict[str, tuple[int, ...]]:
        return {_at(self.gate, layer): d.shape(("F", "H")), _at(self.up, layer): d.shape(("F", "H"))}

    def to_megatron(self, hf: dict[str, torch.Tensor], d: Dims, layer: int | None = None) -> torch.Tensor:
        return torch.cat([hf[_at(self.gate, layer)], hf[_at(self.up, layer)]], dim=0)

    def to_hf(self, t: torch.Tensor, d: Dims, layer: int | None = None) -> dict[str, torch.Tensor]:
        gate, up = t.split([d.ffn, d.ffn], dim=0)
        return {_at(self.gate, layer): gate.contiguous(), _at(self.up, layer): up.contiguous()}


Mapping = Direct | GroupedQKV | GatedMLP

# ------------------------------------------------------------------------------------------------------------------
# The table, in forward order (HF files written by to-hf hold the tensors in this order).

FIRST: tuple[Mapping, ...] = (
    Direct("embedding.word_embeddings.weight", "model.embed_tokens.weight", ("V", "H")),
)

PER_LAYER: tuple[Mapping, ...] = (
    Direct("decoder.layers.{i}.self_attention.linear_qkv.layer_norm_weight",
           "model.layers.{i}.input_layernorm.weight", ("H",)),
    GroupedQKV("decoder.layers.{i}.self_attention.linear_qkv.weight",
               q="model.layers.{i}.self_attn.q_proj.weight",
               k="model.layers.{i}.self_attn.k_proj.weight",
               v="model.layers.{i}.self_attn.v_proj.weight"),
    Direct("decoder.layers.{i}.self_attention.linear_proj.weight",
           "model.layers.{i}.self_attn.o_proj.weight", ("H", "Q")),
    Direct("decoder.layers.{i}.mlp.linear_fc1.layer_norm_weight",
           "model.layers.{i}.post_attention_layernorm.weight", ("H",)),
    GatedMLP("decoder.layers.{i}.mlp.linear_fc1.weight",
             gate="model.layers.{i}.mlp.gate_proj.weight",
             up="model.layers.{i}.mlp.up_proj.weight"),
    Direct("decoder.layers.{i}.mlp.linear_fc2.weight",
           "model.layers.{i}.mlp.down_proj.weight", ("H", "F")),
)

LAST: tuple[Mapping, ...] = (
    Direct("decoder.final_layernorm.weight", "model.norm.weight", ("H",)),
    # Untied: OpenCoder has a separate output matrix (``tie_word_embeddings: false``).
    Direct("output_layer.weight", "lm_head.weight", ("V", "H")),
)

# Non-parameter buffers some older HF Llama checkpoints carry; recomputed from the config, so safe to skip.
IGNORED_HF_TENSORS = r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq"


def mappings(num_layers: int) -> Iterator[tuple[Mapping, int | None]]:
    """Every (mapping, layer) of a model in forward order; ``layer`` is None outside the decoder layers."""
    for m in FIRST:
        yield m, None
    for i in range(num_layers):
        for m in PER_LAYER:
            yield m, i
    for m in LAST:
        yield m, None


def hf_tensor_shapes(d: Dims, num_layers: int) -> dict[str, tuple[int, ...]]:
    """Every HF tensor name of the model, in forward order, with its shape."""
    shapes: dict[str, tuple[int, ...]] = {}
    for m, layer in mappings(num_layers):
        shapes.update(m.hf_shapes(d, layer))
    return shapes
