"""Megatron-Core torch_dist checkpoints for conversion: per-layer loads and a streaming save, in one CPU process.

A torch_dist checkpoint stores *global* tensors cut into the pieces each rank saved, so one process can read any
region of any tensor whatever TP / PP wrote it (Megatron-Core re-shards on load). Conversion uses that in both
directions without ever holding the model:

* reading (to-hf): :class:`CheckpointReader` loads one layer at a time, a partial sharded state dict with just that
  layer's slice of the stacked ``decoder.layers.*`` tensors (Megatron-Core stores layer ``i`` of every layer
  parameter at offset ``i`` of one global tensor with a leading layer axis);
* writing (from-hf): :func:`save_streaming` takes the sharded state dict of a GPTModel built on the ``meta`` device
  (so keys, layer stacking, the SwiGLU factory and the ``_extra_state`` objects are exactly what training saves and
  loads, with no memory behind them) and saves it with a planner that produces each tensor piece when the writer
  asks for it (:class:`_ProducingPlanner`). Peak memory is one tensor, not the model.

The checkpoint layout (``iter_NNNNNNN/``, ``latest_checkpointed_iteration.txt``, ``train_state`` in the common
state) is the trainer's (``oc_megatron.training.checkpoint``); this module reuses its helpers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from oc_common.errors import ConversionError
from oc_common.log import get_logger
from oc_megatron.convert import llama_mapping as lm

log = get_logger(__name__)

LAYER_PLACEHOLDER = "{i}."


def disk_key(template: str) -> str:
    """The checkpoint key of a mapping's Megatron tensor: per-layer names live in one stacked tensor."""
    return template.replace(LAYER_PLACEHOLDER, "")


def _first_failure(e: BaseException) -> BaseException:
    """The original exception inside PyTorch's CheckpointException (a BaseException wrapping each rank's failure),
    so that e.g. a ConversionError raised while producing a tensor reaches the CLI as itself."""
    failures = getattr(e, "failures", None) or {}
    for exc, _trace in failures.values():
        return exc
    return e


# --------------------------------------------------------------------------------------------------------------------
# Process group: dist_checkpointing needs torch.distributed, even for a world of one.


@contextlib.contextmanager
def single_process_group(model_parallel: bool = False) -> Iterator[None]:
    """A gloo world of one (and Megatron-Core's TP=PP=1 groups with ``model_parallel``), torn down afterwards.

    Reuses an existing world of one (tests); refuses to run inside a multi-rank job, where every rank would write
    the same output.
    """
    from megatron.core import parallel_state as ps

    from oc_megatron.models.cpu_compat import apply_cpu_shims
    from oc_megatron.training.distributed import free_port

    apply_cpu_shims()
    created = False
    if torch.distributed.is_initialized():
        if torch.distributed.get_world_size() != 1:
            raise ConversionError("checkpoint conversion runs in one process; launch it without torchrun/srun tasks")
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


# --------------------------------------------------------------------------------------------------------------------
# Finding a checkpoint and its model config


def find_checkpoint(ckpt_dir: str | Path, iteration: int | None) -> Path:
    """The iteration directory to convert: ``--iteration N`` or the latest complete one (or ``ckpt_dir`` itself)."""
    from oc_megatron.training.checkpoint import iteration_dir, resolve_checkpoint

    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        raise ConversionError(f"{ckpt_dir}: checkpoint directory not found")
    if iteration is None:
        try:
            return resolve_checkpoint(ckpt_dir)
        except (FileNotFoundError, ValueError) as e:
            raise ConversionError(str(e)) from None
    path = iteration_dir(ckpt_dir, iteration)
    if not (path / "metadata.json").is_file():
        done = sorted(int(p.name[5:]) for p in ckpt_dir.glob("iter_[0-9]*")
                      if p.name[5:].isdigit() and (p / "metadata.json").is_file())
        raise ConversionError(f"{ckpt_dir}: no complete checkpoint for iteration {iteration} "
                              f"(available: {', '.join(map(str, done)) or 'none'})")
    return path


def read_common_state(path: Path) -> dict[str, Any]:
    from megatron.core import dist_checkpointing

    try:
        return dist_checkpointing.load_common_state_dict(str(path))
    except Exception as e:  # noqa: BLE001 - a missing/corrupt common.pt surfaces as various errors
        raise ConversionError(f"{path}: not a readable torch_dist checkpoint ({e})") from None


def checkpoint_model_config(common: dict[str, Any]):
    """The ModelConfig saved in the checkpoint's ``train_state`` (None if the checkpoint has none)."""
    from oc_megatron.models.opencoder import ModelConfig

    model = (common.get("train_state") or {}).get("model")
    return ModelConfig.model_validate(model) if model else None


# --------------------------------------------------------------------------------------------------------------------
# Reading, layer by layer


class CheckpointReader:
    """Loads the Megatron tensors of the mapping table from one checkpoint, a layer (or one global tensor) at a time.

    The embedding rows are the checkpoint's own (its padded vocabulary, ``vocab_rows``); the model config gives the
    real vocabulary, which to-hf keeps.
    """

    def __init__(self, path: Path, model) -> None:  # noqa: ANN001 - ModelConfig
        from megatron.core import dist_checkpointing

        self.path = path
        self.model = model
        self.table = lm.Table.of(model)
        try:
            self.metadata = dist_checkpointing.load_tensors_metadata(str(path))
        except Exception as e:  # noqa: BLE001
            raise ConversionError(f"{path}: cannot read the checkpoint's tensor metadata ({e})") from None
        embedding = disk_key(self.table.first[0].megatron)
        if embedding not in self.metadata:
            raise ConversionError(f"{path}: checkpoint does not match the model config: missing {embedding}")
        self.vocab_rows = self.metadata[embedding].global_shape[0]
        if self.vocab_rows < model.vocab_size:
            raise ConversionError(f"{path}: the checkpoint's embedding has {self.vocab_rows} rows, fewer than the "
                                  f"model config's vocab_size {model.vocab_size}")
        self.dims = lm.Dims.of(model, vocab_rows=self.vocab_rows)
        self._check_shapes()

    def _check_shapes(self) -> None:
        """Every table tensor must be in the checkpoint with the shape the model config implies."""
        L = self.model.num_layers
        problems = []
        for m in self.table.entries:
            key = disk_key(m.megatron)
            expected = m.megatron_shape(self.dims)
            if LAYER_PLACEHOLDER in m.megatron:
                expected = (L, *expected)
            if key not in self.metadata:
                per_layer = m.megatron.format(i=0)
                hint = " (per-layer keys: a non-homogeneous checkpoint layout, not supported)" \
                    if per_layer in self.metadata else ""
                problems.append(f"missing {key}{hint}")
            elif tuple(self.metadata[key].global_shape) != expected:
                problems.append(f"{key} has shape {list(self.metadata[key].global_shape)}, "
                                f"the model config implies {list(expected)}")
        if problems:
            raise ConversionError(f"{self.path}: checkpoint does not match the model config: " + "; ".join(problems))

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the weights were saved in."""
        return self.metadata[disk_key(self.table.first[0].megatron)].dtype

    def load(self, items: list[tuple[lm.Mapping, int | None]]) -> list[torch.Tensor]:
        """The global tensors of ``items`` (mapping, layer), read in one partial load."""
        from megatron.core import dist_checkpointing
        from megatron.core.dist_checkpointing.mapping import ShardedTensor
        from torch.distributed.checkpoint import CheckpointException

        L = self.model.num_layers
        request: dict[str, Any] = {}
        for m, layer in items:
            key = disk_key(m.megatron)
            meta = self.metadata[key]
            if layer is None:
                data = torch.empty(meta.global_shape, dtype=meta.dtype)
                request[key] = ShardedTensor.from_rank_offsets(key, data, replica_id=0)
            else:
                # Layer `layer` of the stacked tensor: a [1, ...] piece at offset `layer` of the leading axis. It is
                # requested as a plain (non-prepended) shard so that one process may ask for any single region.
                data = torch.empty((1, *meta.global_shape[1:]), dtype=meta.dtype)
                request[key] = ShardedTensor.from_rank_offsets(key, data, (0, layer, L), replica_id=0)
        try:
            loaded = dist_checkpointing.load(request, str(self.path), validate_access_integrity=False)
        except (Exception, CheckpointException) as e:  # noqa: BLE001 - DCP's CheckpointException is a BaseException
            what = ", ".join(disk_key(m.megatron) + (f"[{layer}]" if layer is not None else "") for m, layer in items)
            cause = _first_failure(e)
            raise ConversionError(f"{self.path}: cannot read {what} ({type(cause).__name__}: {cause})") from None
        return [loaded[disk_key(m.megatron)][0] if layer is not None else loaded[disk_key(m.megatron)]
                for m, layer in items]


# --------------------------------------------------------------------------------------------------------------------
# Writing, tensor piece by tensor piece

Producer = Callable[[lm.Mapping, "int | None"], torch.Tensor]


def _producing_strategy(resolve: Callable[[str, tuple[int, ...], tuple[int, ...], torch.dtype], torch.Tensor]):
    """A torch_dist save strategy whose tensor data comes from ``resolve(key, offset, sizes, dtype)`` at write time.

    Megatron-Core's own strategy resolves every tensor before writing (fine for a training rank whose tensors already
    exist). This one translates the sharded state dict the same way (so the files are an ordinary torch_dist
    checkpoint) and hands it to PyTorch's ``FileSystemWriter`` with one writer thread, which resolves one write item
    at a time.
    """
    import torch.distributed.checkpoint as dcp
    from megatron.core.dist_checkpointing.strategies.torch import (
        MCoreSavePlanner,
        TorchDistSaveShardedStrategy,
        _replace_state_dict_keys_with_sharded_keys,
        mcore_to_pyt_state_dict,
    )
    from torch.distributed.checkpoint import CheckpointException, FileSystemWriter
    from torch.distributed.checkpoint.planner import WriteItemType

    class _ProducingPlanner(MCoreSavePlanner):
        def resolve_data(self, write_item):  # noqa: ANN001 - DCP's WriteItem
            if write_item.type == WriteItemType.BYTE_IO:  # `_extra_state` objects: already serialised
                return super().resolve_data(write_item)
            chunk = write_item.tensor_data.chunk
            return resolve(write_item.index.fqn, tuple(chunk.offsets), tuple(chunk.sizes),
                           write_item.tensor_data.properties.dtype)

    class _ProducingSaveStrategy(TorchDistSaveShardedStrategy):
        def save(self, sharded_state_dict, checkpoint_dir) -> None:  # noqa: ANN001 - Megatron's signature
            state, _, _ = _replace_state_dict_keys_with_sharded_keys(sharded_state_dict, self.keep_only_main_replica)
            pyt_state = mcore_to_pyt_state_dict(state, False)
            writer = FileSystemWriter(str(checkpoint_dir), single_file_per_rank=True, thread_count=1,
                                      per_thread_copy_ahead=0)
            planner = _ProducingPlanner(flatten_state_dict=False, can_run_decentralized_global_plan=False)
            try:
                dcp.save(pyt_state, storage_writer=writer, planner=planner)
            except CheckpointException as e:
                raise _first_failure(e) from None

    return _ProducingSaveStrategy("torch_dist", 1)


def save_streaming(path: Path, model, dtype: torch.dtype, produce: Producer,  # noqa: ANN001 - ModelConfig
                   train_state: dict[str, Any], vocab_rows: int) -> None:
    """Write a torch_dist checkpoint of ``model`` into ``path`` (an empty ``iter_N`` directory).

    ``produce(mapping, layer)`` returns the global Megatron tensor of one table entry; it is called once per entry
    (the last result is kept while the writer takes its pieces, e.g. the two SwiGLU halves of ``linear_fc1``).
    ``vocab_rows``: the embedding rows (the padded vocabulary). Needs :func:`single_process_group` with
    ``model_parallel=True``.
    """
    from megatron.core import dist_checkpointing

    from oc_megatron.models.opencoder import build_model, transformer_config

    by_key: dict[str, lm.Mapping] = {disk_key(m.megatron): m for m in lm.Table.of(model).entries}
    last: dict[str, Any] = {"id": None, "tensor": None}

    def resolve(key: str, offset: tuple[int, ...], sizes: tuple[int, ...], want: torch.dtype) -> torch.Tensor:
        mapping = by_key.get(key)
        if mapping is None:
            raise RuntimeError(f"checkpoint tensor {key} has no entry in the mapping table")
        stacked = LAYER_PLACEHOLDER in mapping.megatron
        layer = offset[0] if stacked else None
        region = offset[1:] if stacked else offset
        region_sizes = sizes[1:] if stacked else sizes
        if (layer, key) != last["id"]:
            last["id"], last["tensor"] = (layer, key), None  # drop the previous tensor before producing the next
            last["tensor"] = produce(mapping, layer)
        full = last["tensor"]
        piece = full[tuple(slice(o, o + s) for o, s in zip(region, region_sizes, strict=True))]
        if tuple(piece.shape) != tuple(region_sizes):
            raise RuntimeError(f"{key}: piece {offset}+{sizes} outside the produced tensor {tuple(full.shape)}")
        return piece.reshape(sizes).to(want)

    # The model is built on the meta device at TP=PP=1: its sharded state dict names every tensor and object a
    # training run saves, at global offsets, with no memory behind it. CPU initialisation and the local spec keep
    # Megatron-Core from placing parameters on a GPU explicitly (which would bypass the meta device).
    tconfig = transformer_config(model, perform_initialization=False, use_cpu_initialization=True,
                                 fused_kernels=False, params_dtype=dtype, pipeline_dtype=dtype)
    with torch.device("meta"):
        chunks = build_model(model, tconfig, spec="local", initialize=False, vocab_rows=vocab_rows)
    state = {"model": chunks[0].sharded_state_dict(), "train_state": train_state}
    dist_checkpointing.save(state, str(path), sharded_strategy=_producing_strategy(resolve))
