"""Which tensor / pipeline parallel sizes a model admits, with errors that list the valid choices."""

from __future__ import annotations

import math

from oc_megatron.convert.errors import ConversionError


def valid_tensor_parallel_sizes(model) -> list[int]:  # noqa: ANN001 - ModelConfig
    """TP must split attention heads, KV heads (query groups), the FFN and the vocabulary (never padded) evenly."""
    g = math.gcd(model.num_attention_heads, model.num_query_groups, model.ffn_hidden_size, model.vocab_size)
    return [d for d in range(1, g + 1) if g % d == 0]


def check_parallel_layout(model, tp: int, pp: int) -> None:  # noqa: ANN001 - ModelConfig
    if tp < 1 or pp < 1:
        raise ConversionError(f"--tp {tp} --pp {pp}: sizes must be >= 1")
    problems = [f"{name} {value}" for name, value in (
        ("num_attention_heads", model.num_attention_heads), ("num_query_groups (KV heads)", model.num_query_groups),
        ("ffn_hidden_size", model.ffn_hidden_size), ("vocab_size", model.vocab_size)) if value % tp]
    if problems:
        raise ConversionError(f"--tp {tp} does not divide {', '.join(problems)}; valid TP sizes for this model: "
                              f"{', '.join(map(str, valid_tensor_parallel_sizes(model)))}")
    if model.num_layers % pp:
        valid = [d for d in range(1, model.num_layers + 1) if model.num_layers % d == 0]
        raise ConversionError(f"--pp {pp} does not divide num_layers {model.num_layers}; valid PP sizes: "
                              f"{', '.join(map(str, valid))}")
