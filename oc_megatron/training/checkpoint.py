"""Megatron-Core distributed checkpoints (``torch_dist``): save, auto-resume, reshard on load, weights-only init.

Layout (Megatron-LM compatible names)::

    CKPT_DIR/iter_0000400/                     one checkpoint (metadata.json, common.pt, *.distcp)
    CKPT_DIR/latest_checkpointed_iteration.txt the last *complete* checkpoint

A checkpoint is written to ``iter_N.tmp`` and renamed when every rank has finished, and only then does the
``latest`` file move; a run killed mid-save leaves the previous checkpoint as the latest (the stale ``.tmp`` is
removed by the next save). Contents:

* ``model`` (``model0``, ``model1``, ... with virtual pipeline): each chunk's sharded state dict. Tensors are keyed
  by their global names and offsets, so any TP / PP / VPP / DP layout loads any other (resharding on load).
* ``optimizer``: Megatron-Core's sharded optimizer state (the distributed optimizer in a reshardable format).
* ``scheduler``: the LR scheduler's state (its step counter is what resume uses).
* ``train_state``: iteration, consumed samples (the data position), the LR of the next step, the parallel layout,
  the model config, and where the run started from (``init``: the checkpoint an annealing or SFT run
  was initialised from, what it kept, the schedule's peak LR).
* ``rng_state``: Python/NumPy/torch(/CUDA) and Megatron tracker states of every rank; restored only when the layout
  is unchanged (a resharded run cannot have "the same" per-rank streams).
* ``checksums.json``: a SHA-256 per file, written before the checkpoint is published and verified before it is
  resumed, initialised from or converted (``oc_megatron.training.checksums``).
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oc_common.fileio import atomic_write_text
from oc_common.log import get_logger
from oc_megatron.training import checksums

log = get_logger(__name__)

LATEST_FILE = "latest_checkpointed_iteration.txt"


def iteration_dir(ckpt_dir: str | Path, iteration: int) -> Path:
    return Path(ckpt_dir) / f"iter_{iteration:07d}"


def latest_checkpoint(ckpt_dir: str | Path) -> Path | None:
    """The last complete checkpoint under ``ckpt_dir`` (None if there is none)."""
    marker = Path(ckpt_dir) / LATEST_FILE
    if not marker.is_file():
        return None
    text = marker.read_text().strip()
    if not text.isdigit():
        raise ValueError(f"{marker}: expected an iteration number, got {text!r}")
    path = iteration_dir(ckpt_dir, int(text))
    if not (path / "metadata.json").is_file():
        raise ValueError(f"{marker} names iteration {text} but {path} is not a complete checkpoint")
    return path


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory itself (``iter_N``) or a run's checkpoint dir (its latest). Raises if none."""
    path = Path(path)
    if (path / "metadata.json").is_file():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise FileNotFoundError(f"{path}: no checkpoint (neither iter_N/metadata.json nor {LATEST_FILE})")
    return latest


@dataclass
class TrainState:
    iteration: int = 0
    consumed_samples: int = 0
    layout: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    lr: float | None = None  # the LR the next step would use (what annealing's init_from.keep_lr starts from)
    init: dict[str, Any] | None = None  # init_from: {"path", "iteration", "kept", "peak_lr"}
    tokenizer: str | None = None  # absolute path of the training tokenizer (convert to-hf copies it)
    schedule: dict[str, Any] | None = None  # the LR schedule the run follows (training.schedule.schedule_record)


def current_layout() -> dict[str, int]:
    from megatron.core import parallel_state as ps

    return {
        "tensor": ps.get_tensor_model_parallel_world_size(),
        "pipeline": ps.get_pipeline_model_parallel_world_size(),
        "virtual_pipeline": ps.get_virtual_pipeline_model_parallel_world_size() or 1,
        "data": ps.get_data_parallel_world_size(),
    }


def _rng_sharded_object(load: bool):
    from megatron.core import parallel_state as ps
    from megatron.core import tensor_parallel
    from megatron.core.dist_checkpointing.mapping import ShardedObject

    state = None
    if not load:
        state = {
            "random": random.getstate(),
            "np": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
            "tracker": tensor_parallel.get_cuda_rng_tracker().get_states(),
        }
    shape = (ps.get_pipeline_model_parallel_world_size(), ps.get_tensor_model_parallel_world_size(),
             ps.get_data_parallel_world_size())
    offset = (ps.get_pipeline_model_parallel_rank(), ps.get_tensor_model_parallel_rank(),
              ps.get_data_parallel_rank())
    return ShardedObject("rng_state", state, shape, offset, replica_id=0)


def _restore_rng(state: dict[str, Any]) -> None:
    from megatron.core import tensor_parallel

    random.setstate(state["random"])
    np.random.set_state(state["np"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
    tensor_parallel.get_cuda_rng_tracker().set_states(state["tracker"])


def _model_key(i: int, n: int) -> str:
    return "model" if n == 1 else f"model{i}"


def _sharded_state_dict(chunks, optimizer, scheduler, train_state: TrainState | None, optimizer_format: str,
                        is_loading: bool, with_rng: bool) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for i, chunk in enumerate(chunks):
        state[_model_key(i, len(chunks))] = chunk.sharded_state_dict()
    if optimizer is not None:
        state["optimizer"] = optimizer.sharded_state_dict(
            state, is_loading=is_loading, metadata={"distrib_optim_sharding_type": optimizer_format})
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    if train_state is not None:
        state["train_state"] = train_state.__dict__.copy()
    if with_rng:
        state["rng_state"] = _rng_sharded_object(load=is_loading)
    return state


def _barrier() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.barrier()


class CheckpointSaver:
    """Saves checkpoints (synchronously, or in the background with ``async_save`` on GPU)."""

    def __init__(self, ckpt_dir: str | Path, optimizer_format: str, async_save: bool = False, keep_last: int = 0):
        self.dir = Path(ckpt_dir)
        self.optimizer_format = optimizer_format
        self.async_save = async_save
        self.keep_last = keep_last
        self._queue = None
        if async_save:
            from megatron.core.dist_checkpointing.strategies.async_utils import AsyncCallsQueue

            self._queue = AsyncCallsQueue()

    def save(self, chunks, optimizer, scheduler, train_state: TrainState, ddp_models=None) -> Path:
        """Save (collective). ``ddp_models``: the DDP-wrapped chunks of a training run, whose parameters are
        all-gathered first when the optimizer step left that to the next forward (``sync_params_before_save``)."""
        from megatron.core import dist_checkpointing
        from megatron.core.dist_checkpointing.serialization import get_default_save_sharded_strategy

        self.finalize(blocking=True)  # one save in flight at a time
        sync_params_before_save(ddp_models or [])
        final = iteration_dir(self.dir, train_state.iteration)
        tmp = final.with_name(final.name + ".tmp")
        rank0 = not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0
        if rank0:
            shutil.rmtree(tmp, ignore_errors=True)  # a stale partial save of a killed run
            tmp.mkdir(parents=True)
        _barrier()
        state = _sharded_state_dict(chunks, optimizer, scheduler, train_state, self.optimizer_format,
                                    is_loading=False, with_rng=True)
        strategy = get_default_save_sharded_strategy("torch_dist")
        request = dist_checkpointing.save(state, str(tmp), sharded_strategy=strategy,
                                          async_sharded_save=self.async_save)

        def publish() -> None:
            _barrier()
            checksums.write_checksums(tmp)  # collective: each rank hashes the shards it wrote
            if rank0:
                if final.exists():
                    shutil.rmtree(final)
                tmp.rename(final)
                atomic_write_text(self.dir / LATEST_FILE, f"{train_state.iteration}\n")
                self._prune(train_state.iteration)
                log.info("saved checkpoint %s", final)
            _barrier()

        if request is None:
            publish()
        else:
            request.add_finalize_fn(publish)
            self._queue.schedule_async_request(request)
        return final

    def finalize(self, blocking: bool = False) -> None:
        """Publish finished background saves (collective: call on all ranks)."""
        if self._queue is not None:
            self._queue.maybe_finalize_async_calls(blocking=blocking)

    def close(self) -> None:
        if self._queue is not None:
            self._queue.maybe_finalize_async_calls(blocking=True)
            self._queue.close()

    def _prune(self, newest: int) -> None:
        if self.keep_last <= 0:
            return
        done = sorted(p for p in self.dir.glob("iter_[0-9]*") if p.is_dir() and not p.name.endswith(".tmp"))
        for old in done[: -self.keep_last]:
            if old.name != iteration_dir(self.dir, newest).name:
                shutil.rmtree(old, ignore_errors=True)


def sync_params_before_save(ddp_models) -> None:
    """All-gather the parameters the last optimizer step updated, if that gather is still pending.

    With the distributed optimizer and ``overlap_param_gather``, ``optimizer.step()`` updates only this DP rank's
    shard and leaves the all-gather of the others to the pre-forward hooks of the next step; a checkpoint written
    in between would hold parameter shards one step old. Megatron-LM forces the gather before every save
    (``force_param_sync``); so do we. Without overlap the step has already gathered: nothing to do.
    """
    for model in ddp_models:
        ddp_config = getattr(model, "ddp_config", None)
        if ddp_config is not None and ddp_config.use_distributed_optimizer and ddp_config.overlap_param_gather:
            model.start_param_sync(force_sync=True)


def read_train_state(path: str | Path) -> TrainState:
    """The ``train_state`` of a checkpoint without loading any tensor (rank-local read of common.pt)."""
    from megatron.core import dist_checkpointing

    common = dist_checkpointing.load_common_state_dict(str(resolve_checkpoint(path)))
    ts = common.get("train_state")
    if ts is None:
        raise ValueError(f"{path}: not an oc-megatron training checkpoint (no train_state)")
    return TrainState(**ts)


def has_optimizer_state(path: str | Path) -> bool:
    """Whether a checkpoint holds optimizer state (a training checkpoint does; `convert from-hf` output does not)."""
    from megatron.core import dist_checkpointing

    metadata = dist_checkpointing.load_tensors_metadata(str(resolve_checkpoint(path)))
    return any(key.startswith("optimizer.") for key in metadata)


# Optimizer hyperparameters live in the param groups, which Megatron-Core's optimizer state dict restores from the
# checkpoint. The config owns them (a resumed or annealing run may change the LR, weight decay, betas): keep this
# run's values and take only the state (Adam moments, step counts) from the checkpoint.
_PARAM_GROUP_HYPERPARAMETERS = ("lr", "max_lr", "min_lr", "weight_decay", "betas", "eps")


def _param_groups(optimizer) -> list[dict[str, Any]]:
    return [g for opt in getattr(optimizer, "chained_optimizers", [optimizer])
            for g in getattr(opt, "param_groups", [])]


def load_checkpoint(path: str | Path, chunks, optimizer=None, scheduler=None, optimizer_format: str =
                    "fully_reshardable", restore_rng: bool = True) -> TrainState:
    """Load a checkpoint into this layout (any saved layout); optimizer / scheduler / RNG when given and present.

    ``chunks`` are the unwrapped GPTModel chunks. Weights-only loading (``init_from`` without the optimizer, HF
    conversion): pass no optimizer and no scheduler. The optimizer's hyperparameters stay this run's (see above);
    RNG states are restored only with ``restore_rng`` and an unchanged layout. A checkpoint written with the other
    layer spec loads too: ``_extra_state`` entries it lacks keep the model's fresh values, ones the model lacks are
    ignored (see ``models/specs.py``); any other tensor missing from the checkpoint is an error.
    """
    from megatron.core import dist_checkpointing
    from megatron.core.dist_checkpointing.validation import StrictHandling

    from oc_common.errors import CheckpointError

    path = resolve_checkpoint(path)
    saved = read_train_state(path)
    same_layout = saved.layout == current_layout()
    full = optimizer is not None
    if full and optimizer_format == "fully_reshardable":
        prepare_optimizer_state_for_load(optimizer)
    state = _sharded_state_dict(chunks, optimizer, scheduler, None, optimizer_format, is_loading=True,
                                with_rng=full and restore_rng and same_layout)
    loaded, _, not_in_checkpoint = dist_checkpointing.load(state, str(path), strict=StrictHandling.RETURN_UNEXPECTED)
    missing = sorted(k for k in not_in_checkpoint if not _is_extra_state(k))
    if missing:
        raise CheckpointError(f"{path}: the checkpoint lacks {len(missing)} tensors this model has (e.g. "
                              f"{', '.join(missing[:3])}): a different architecture?")
    kept_fresh = 0
    for i, chunk in enumerate(chunks):
        model_state = loaded[_model_key(i, len(chunks))]
        for key, value in chunk.state_dict().items():
            if _is_extra_state(key) and key not in model_state:
                model_state[key] = value  # not in the checkpoint: the module keeps its own
                kept_fresh += 1
        chunk.load_state_dict(model_state, strict=True)
    if kept_fresh:
        log.info("%s: %d extra-state entries (FP8 / TE metadata) are not in the checkpoint (written with another "
                 "layer spec): they start fresh", path, kept_fresh)
    if optimizer is not None:
        hyperparameters = [{k: g[k] for k in _PARAM_GROUP_HYPERPARAMETERS if k in g} for g in _param_groups(optimizer)]
        optimizer.load_state_dict(loaded["optimizer"])
        for group, values in zip(_param_groups(optimizer), hyperparameters, strict=True):
            group.update(values)
    if scheduler is not None:
        scheduler.load_state_dict(loaded["scheduler"])
    if "rng_state" in loaded:
        _restore_rng(loaded["rng_state"])
    elif full and restore_rng:
        log.info("checkpoint layout %s differs from this run's %s: resharded; RNG states start fresh",
                 saved.layout, current_layout())
    log.info("loaded %s (iteration %d, %s)", path, saved.iteration,
             ("model + optimizer + scheduler" if scheduler is not None else "model + optimizer") if full
             else "model weights only")
    return saved


def _is_extra_state(key: str) -> bool:
    """A module's ``get_extra_state`` entry (TE's FP8 metadata), by state-dict or checkpoint key."""
    return key.split("/")[0].endswith("_extra_state")


def adam_step(optimizer) -> int:
    """Adam's step count as the optimizer holds it now (0 for a fresh optimizer): how many updates its moments saw.
    torch's Adam counts per parameter; TE's and Apex's FusedAdam per param group (where Megatron-Core also leaves
    the checkpoint's count for torch's Adam, not advanced by it: so the per-parameter count comes first)."""
    group_step = None
    for opt in getattr(optimizer, "chained_optimizers", [optimizer]):
        inner = getattr(opt, "optimizer", None)
        for group in getattr(inner, "param_groups", []):
            for p in group["params"]:
                step = inner.state.get(p, {}).get("step")
                if step is not None:
                    return int(step)
            if group_step is None and group.get("step") is not None:
                group_step = int(group["step"])
    return group_step or 0


def prepare_optimizer_state_for_load(optimizer) -> None:
    """Give a fresh optimizer the per-parameter state its class keeps, before building a load state dict.

    The ``fully_reshardable`` format loads into existing state tensors, and Megatron-Core's distributed optimizer
    reads the state's layout (``state_dict()``) before it allocates anything. Which keys a parameter's state has is
    the optimizer class's business: torch's Adam keeps ``exp_avg``, ``exp_avg_sq`` and a ``step`` per parameter;
    TE's and Apex's FusedAdam keep ``step`` in the param groups, and TE's ``state_dict()`` refuses any per-parameter
    key it does not know (``KeyError: 'step'``). So the layout is read off the class itself: one step of a
    throwaway copy of the optimizer (same class, same settings) on a one-element parameter of the same device and
    dtype, whose resulting state names the keys; each real parameter then gets those keys as zeros of its own shape
    (parameter-shaped keys) or as a scalar zero (``step``). Parameters that already have state are left alone.
    """
    for opt in getattr(optimizer, "chained_optimizers", [optimizer]):
        inner = getattr(opt, "optimizer", None)
        if inner is None:
            continue
        params = [p for group in inner.param_groups for p in group["params"] if not inner.state.get(p)]
        if not params:
            continue
        layout = optimizer_state_layout(inner, params[0])
        for p in params:
            inner.state[p] = {key: (torch.zeros_like(p.data, dtype=dtype) if per_element
                                    else torch.zeros((), dtype=dtype, device=device))
                              for key, (per_element, dtype, device) in layout.items()}


def optimizer_state_layout(optimizer, like: torch.Tensor) -> dict[str, tuple[bool, torch.dtype, torch.device]]:
    """``{state key: (shaped like the parameter, dtype, device)}`` of one parameter after a step of ``optimizer``'s
    class with its settings: measured on a throwaway copy (shared configuration, a one-element parameter shaped
    like none of the real ones, its own state), so the real optimizer is untouched."""
    from collections import defaultdict

    probe_param = torch.nn.Parameter(torch.zeros(1, dtype=like.dtype, device=like.device))
    probe_param.grad = torch.zeros_like(probe_param)
    # Every attribute shared (betas, master-weight settings, fused-kernel handles...), without __getstate__, which
    # keeps only torch's own fields.
    probe = object.__new__(type(optimizer))
    probe.__dict__.update(optimizer.__dict__)
    probe.state = defaultdict(dict)
    probe.param_groups = [{**optimizer.param_groups[0], "params": [probe_param]}]
    probe.param_groups[0].pop("step", None)  # a group-level step count (FusedAdam) starts fresh too
    probe.step()
    return {key: (value.dim() > 0, value.dtype, value.device)
            for key, value in probe.state[probe_param].items() if isinstance(value, torch.Tensor)}
