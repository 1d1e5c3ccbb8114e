"""Which tensor / pipeline parallel layouts a model admits, with errors that list the valid choices."""

from __future__ import annotations

from oc_common.errors import ConversionError


def check_parallel_layout(model, tp: int, pp: int, first: int | None = None,  # noqa: ANN001 - ModelConfig
                          last: int | None = None) -> list[int]:
    """Raise ConversionError unless ``tp`` x ``pp`` (with an optional uneven first / last stage) can run ``model``;
    returns the layers of each pipeline stage. The vocabulary never limits TP: it is padded to fit."""
    from oc_megatron.models.opencoder import pipeline_stage_layers

    if tp < 1 or pp < 1:
        raise ConversionError(f"--tp {tp} --pp {pp}: sizes must be >= 1")
    conflicts = model.tensor_parallel_conflicts(tp)
    if conflicts:
        raise ConversionError(f"--tp {tp} does not divide {', '.join(conflicts)}; valid TP sizes for this model: "
                              f"{', '.join(map(str, model.valid_tensor_parallel_sizes()))}")
    try:
        return pipeline_stage_layers(model.num_layers, pp, None, first, last)
    except ValueError as e:
        hint = ("" if first is not None or last is not None
                else " (give an uneven split with --first-stage-layers / --last-stage-layers)")
        raise ConversionError(f"--pp {pp}: num_layers {model.num_layers}: {e}{hint}") from None
