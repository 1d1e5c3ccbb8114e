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

So the rules here never depend on the parallel layout: four kinds of mapping, after Megatron-Bridge's
``AutoMapping`` / ``QKVMapping`` / ``GatedMLPMapping``:

* :class:`Direct`: one tensor, same layout on both sides;
* :class:`VocabRows`: the embedding / output matrix; Megatron's has the padded vocabulary's rows (see
  ``models/opencoder.py``): HF -> Megatron appends padding rows (copies of the last real row, as Megatron-LM's
  checkpoint converter does), Megatron -> HF keeps the real rows, so the round trip is exact;
* :class:`GroupedQKV`: per query group ``g`` the fused rows are ``[q heads of g | k head g | v head g]``
  (``heads / groups`` query heads then one key and one value head, each ``head_dim`` rows); MHA is the case
  ``groups == heads``; the same rule places Qwen2's q/k/v biases in ``linear_qkv.bias``;
* :class:`GatedMLP`: ``linear_fc1 = cat([gate_proj, up_proj])``.

Which entries a model has is :meth:`Table.of`: OpenCoder's (untied, bias-free Llama), plus Qwen2's q/k/v biases
(``qkv_bias``), minus the output matrix when the embeddings are tied (Megatron-Core then saves only
``embedding.word_embeddings.weight``; HF files may or may not carry a copy as ``lm_head.weight``).

Both sides use rotate-half RoPE (Megatron-Core's ``rotary_interleaved=False``, HF's ``rotate_half``), so q and k need
no permutation. With this table TP-1 logits are bitwise equal to transformers' (docs/platform.md).

Shapes are written with the dimension names of :class:`Dims` so that inputs can be checked and output shards planned
before any tensor is read.

Megatron -> HF is a placement of rows: every rule keeps the trailing dimensions and sends runs of consecutive rows of
the Megatron tensor to consecutive rows of one HF tensor (``hf_rows``). to-hf uses that to write any saved piece of a
tensor (a TP rank's rows or columns) straight to its place in the output files, whatever order the pieces come in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

__all__ = [
    "Dims",
    "RowRun",
    "rows_to_hf",
    "Direct",
    "VocabRows",
    "GroupedQKV",
    "GatedMLP",
    "Table",
    "IGNORED_HF_TENSORS",
]


@dataclass(frozen=True)
class Dims:
    """The dimensions tensor shapes are written in (all from the model config and the checkpoint's padding)."""

    vocab: int  # V: the vocabulary (= HF vocab_size, HF's embedding rows)
    hidden: int  # H
    heads: int
    groups: int  # key/value heads (num_query_groups = num_key_value_heads)
    head_dim: int
    ffn: int  # F
    vocab_rows: int | None = None  # Vp: Megatron's embedding rows (the padded vocabulary); default V

    def size(self, name: str) -> int:
        return {
            "V": self.vocab,
            "Vp": self.vocab_rows or self.vocab,
            "H": self.hidden,
            "Q": self.heads * self.head_dim,  # all query heads
            "KV": self.groups * self.head_dim,  # all key (or value) heads
            "QKV": (self.heads + 2 * self.groups) * self.head_dim,
            "F": self.ffn,
        }[name]

    def shape(self, spec: tuple[str, ...]) -> tuple[int, ...]:
        return tuple(self.size(d) for d in spec)

    @classmethod
    def of(cls, model, vocab_rows: int | None = None) -> Dims:  # noqa: ANN001 - models.opencoder.ModelConfig
        return cls(vocab=model.vocab_size, hidden=model.hidden_size, heads=model.num_attention_heads,
                   groups=model.num_query_groups, head_dim=model.head_dim, ffn=model.ffn_hidden_size,
                   vocab_rows=vocab_rows)


def _at(template: str, layer: int | None) -> str:
    return template if layer is None else template.format(i=layer)


@dataclass(frozen=True)
class RowRun:
    """Rows ``[megatron_row, megatron_row + count)`` of the Megatron tensor are rows ``[hf_row, hf_row + count)`` of
    HF tensor ``hf``."""

    megatron_row: int
    count: int
    hf: str
    hf_row: int


def rows_to_hf(runs: list[RowRun], t: torch.Tensor) -> dict[str, torch.Tensor]:
    """The HF tensors of Megatron tensor ``t`` (the whole tensor), assembled from its row runs."""
    parts: dict[str, list[tuple[int, torch.Tensor]]] = {}
    for r in runs:
        parts.setdefault(r.hf, []).append((r.hf_row, t[r.megatron_row:r.megatron_row + r.count]))
    return {name: torch.cat([p for _, p in sorted(pieces, key=lambda x: x[0])]).contiguous()
            for name, pieces in parts.items()}


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

    def hf_rows(self, d: Dims, layer: int | None = None) -> list[RowRun]:
        return [RowRun(0, d.size(self.shape[0]), _at(self.hf, layer), 0)]

    def to_hf(self, t: torch.Tensor, d: Dims, layer: int | None = None) -> dict[str, torch.Tensor]:
        return rows_to_hf(self.hf_rows(d, layer), t)

    def to_megatron(self, hf: dict[str, torch.Tensor], d: Dims, layer: int | None = None) -> torch.Tensor:
        return hf[_at(self.hf, layer)]


@dataclass(frozen=True)
class VocabRows:
    """The embedding or output matrix: HF's ``[V, H]`` is the first V of Megatron's ``[Vp, H]`` rows."""

    megatron: str
    hf: str

    def megatron_shape(self, d: Dims) -> tuple[int, ...]:
        return d.shape(("Vp", "H"))

    def hf_shapes(self, d: Dims, layer: int | None = None) -> dict[str, tuple[int, ...]]:
        return {_at(self.hf, layer): d.shape(("V", "H"))}

    def hf_rows(self, d: Dims, layer: int | None = None) -> list[RowRun]:
        return [RowRun(0, d.vocab, _at(self.hf, layer), 0)]  # the padding rows go nowhere

    def to_hf(self, t: torch.Tensor, d: Dims, layer: int | None = None) -> dict[str, torch.Tensor]:
        return rows_to_hf(self.hf_rows(d, layer), t)

    def to_megatron(self, hf: dict[str, torch.Tensor], d: Dims, layer: int | None = None) -> torch.Tensor:
        t = hf[_at(self.hf, layer)]
        padding = d.size("Vp") - d.vocab
        if padding <= 0:
            return t
        return torch.cat([t, t[-1:].expand(padding, -1)])


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
    trailing: tuple[str, ...] = ("H",)  # ("H",) for the weights, () for the biases

    def megatron_shape(self, d: Dims) -> tuple[int, ...]:
        return d.shape(("QKV", *self.trailing))

    def hf_shapes(self, d: Dims, layer: int | None = None) -> dict[str, tuple[int, ...]]:
        return {_at(self.q, layer): d.shape(("Q", *self.trailing)), _at(self.k, layer): d.shape(("KV", *self.trailing)),
                _at(self.v, layer): d.shape(("KV", *self.trailing))}

    def to_megatron(self, hf: dict[str, torch.Tensor], d: Dims, layer: int | None = None) -> torch.Tensor:
        q, k, v = (hf[_at(n, layer)] for n in (self.q, self.k, self.v))
        rest = d.shape(self.trailing)
        per_group = d.heads // d.groups * d.head_dim
        fused = torch.cat([q.reshape(d.groups, per_group, *rest),
                           k.reshape(d.groups, d.head_dim, *rest),
                           v.reshape(d.groups, d.head_dim, *rest)], dim=1)
        return fused.reshape(-1, *rest)

    def hf_rows(self, d: Dims, layer: int | None = None) -> list[RowRun]:
        per_group = d.heads // d.groups * d.head_dim
        block = per_group + 2 * d.head_dim
        q, k, v = (_at(n, layer) for n in (self.q, self.k, self.v))
        runs = []
        for g in range(d.groups):
            runs += [RowRun(g * block, per_group, q, g * per_group),
                     RowRun(g * block + per_group, d.head_dim, k, g * d.head_dim),
                     RowRun(g * block + per_group + d.head_dim, d.head_dim, v, g * d.head_dim)]
        return runs

    def to_hf(self, t: torch.Tensor, d: Dims, layer: int | None = None) -> dict[str, torch.Tensor]:
        return rows_to_hf(self.hf_rows(d, layer), t)


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

    def hf_rows(self, d: Dims, layer: int | None = None) -> list[RowRun]:
        return [RowRun(0, d.ffn, _at(self.gate, layer), 0), RowRun(d.ffn, d.ffn, _at(self.up, layer), 0)]

    def to_hf(self, t: torch.Tensor, d: Dims, layer: int | None = None) -> dict[str, torch.Tensor]:
        return rows_to_hf(self.hf_rows(d, layer), t)


Mapping = Direct | VocabRows | GroupedQKV | GatedMLP

# ------------------------------------------------------------------------------------------------------------------
# The table, in forward order (HF files written by to-hf hold the tensors in this order).

_EMBEDDING = VocabRows("embedding.word_embeddings.weight", "model.embed_tokens.weight")
_INPUT_NORM = Direct("decoder.layers.{i}.self_attention.linear_qkv.layer_norm_weight",
                     "model.layers.{i}.input_layernorm.weight", ("H",))
_QKV = GroupedQKV("decoder.layers.{i}.self_attention.linear_qkv.weight",
                  q="model.layers.{i}.self_attn.q_proj.weight",
                  k="model.layers.{i}.self_attn.k_proj.weight",
                  v="model.layers.{i}.self_attn.v_proj.weight")
_QKV_BIAS = GroupedQKV("decoder.layers.{i}.self_attention.linear_qkv.bias",  # Qwen2
                       q="model.layers.{i}.self_attn.q_proj.bias",
                       k="model.layers.{i}.self_attn.k_proj.bias",
                       v="model.layers.{i}.self_attn.v_proj.bias", trailing=())
_PROJ = Direct("decoder.layers.{i}.self_attention.linear_proj.weight", "model.layers.{i}.self_attn.o_proj.weight",
               ("H", "Q"))
_MLP_NORM = Direct("decoder.layers.{i}.mlp.linear_fc1.layer_norm_weight",
                   "model.layers.{i}.post_attention_layernorm.weight", ("H",))
_FC1 = GatedMLP("decoder.layers.{i}.mlp.linear_fc1.weight",
                gate="model.layers.{i}.mlp.gate_proj.weight", up="model.layers.{i}.mlp.up_proj.weight")
_FC2 = Direct("decoder.layers.{i}.mlp.linear_fc2.weight", "model.layers.{i}.mlp.down_proj.weight", ("H", "F"))
_FINAL_NORM = Direct("decoder.final_layernorm.weight", "model.norm.weight", ("H",))
_OUTPUT = VocabRows("output_layer.weight", "lm_head.weight")

# Non-parameter buffers some older HF Llama checkpoints carry; recomputed from the config, so safe to skip.
IGNORED_HF_TENSORS = r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq"
# A tied model's lm_head is the embedding: transformers ties it on load whatever the file holds.
TIED_OUTPUT_HF = _OUTPUT.hf


@dataclass(frozen=True)
class Table:
    """The mappings of one model: before the layers, per layer (``{i}``), after the layers."""

    first: tuple[Mapping, ...]
    per_layer: tuple[Mapping, ...]
    last: tuple[Mapping, ...]

    @classmethod
    def for_features(cls, tie_embeddings: bool = False, qkv_bias: bool = False) -> Table:
        per_layer = (_INPUT_NORM, _QKV, *((_QKV_BIAS,) if qkv_bias else ()), _PROJ, _MLP_NORM, _FC1, _FC2)
        return cls((_EMBEDDING,), per_layer, (_FINAL_NORM,) if tie_embeddings else (_FINAL_NORM, _OUTPUT))

    @classmethod
    def of(cls, model) -> Table:  # noqa: ANN001 - models.opencoder.ModelConfig
        return cls.for_features(model.tie_embeddings, model.qkv_bias)

    @property
    def entries(self) -> tuple[Mapping, ...]:
        return (*self.first, *self.per_layer, *self.last)

    def mappings(self, num_layers: int) -> Iterator[tuple[Mapping, int | None]]:
        """Every (mapping, layer) of a model in forward order; ``layer`` is None outside the decoder layers."""
        for m in self.first:
            yield m, None
        for i in range(num_layers):
            for m in self.per_layer:
                yield m, i
        for m in self.last:
            yield m, None

    def hf_tensor_shapes(self, d: Dims, num_layers: int) -> dict[str, tuple[int, ...]]:
        """Every HF tensor name of the model, in forward order, with its shape."""
        shapes: dict[str, tuple[int, ...]] = {}
        for m, layer in self.mappings(num_layers):
            shapes.update(m.hf_shapes(d, layer))
        return shapes


LLAMA = Table.for_features()  # OpenCoder's: untied, bias-free
