"""Which tensor / pipeline parallel sizes a model admits, with errors that list the valid choices."""

from __future__ import annotations

from oc_common.errors import ConversionError


def check_parallel_layout(model, tp: int, pp: int) -> None:  # noqa: ANN001 - ModelConfig
    if tp < 1 or pp < 1:
        raise ConversionError(f"--tp {tp} --pp {pp}: sizes must be >= 1")
    conflicts = model.tensor_parallel_conflicts(tp)
    if conflicts:
        raise ConversionError(f"--tp {tp} does not divide {', '.join(conflicts)}; valid TP sizes for this model: "
                              f"{', '.join(map(str, model.valid_tensor_parallel_sizes()))}")
    if model.num_layers % pp:
        valid = [d for d in range(1, model.num_layers + 1) if model.num_layers % d == 0]
        raise ConversionError(f"--pp {pp} does not divide num_layers {model.num_layers}; valid PP sizes: "
                              f"{', '.join(map(str, valid))}")
