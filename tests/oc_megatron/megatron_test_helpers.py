"""Multi-process test helpers: real process groups (gloo on CPU) via torch.multiprocessing spawn.

``run_distributed_test(fn, world_size, *args)`` starts ``world_size`` processes that each set RANK/WORLD_SIZE/
MASTER_* (as torchrun would) and call ``fn(rank, world_size, *args)``. ``fn`` must be importable (defined at module
level). A failure in any rank fails the test with that rank's traceback.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, Callable

import torch.multiprocessing as mp

from oc_megatron.training.distributed import free_port


def _entry(rank: int, fn: Callable, world_size: int, port: int, backend: str, args: tuple) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1",
                       "OC_DIST_BACKEND": backend})
    try:
        fn(rank, world_size, *args)
    finally:
        from oc_megatron.training.distributed import destroy

        destroy()


def run_distributed_test(fn: Callable, world_size: int, *args: Any, backend: str = "gloo") -> None:
    mp.spawn(_entry, args=(fn, world_size, free_port(), backend, args), nprocs=world_size, join=True)


def read_losses(run_dir: str | Path, split: str = "train") -> dict[int, float]:
    """step -> loss from a run's metrics.jsonl (the last record of a step wins: resumed runs append)."""
    out: dict[int, float] = {}
    path = Path(run_dir) / "metrics.jsonl"
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec["split"] == split:
            out[rec["step"]] = rec["loss"]
    return out


# ---- workers (module level so that spawn can import them) ---------------------------------------------------------
def train_layouts(rank: int, world_size: int, base_config: dict, layouts: list[tuple[str, list[str]]]) -> None:
    """Run ``run_training`` once per layout in the same process group (parallel state is rebuilt each time)."""
    from oc_common.config import apply_overrides, validate_config
    from oc_megatron.config import TrainConfig
    from oc_megatron.training.loop import run_training

    for name, overrides in layouts:
        data = apply_overrides(copy.deepcopy(base_config), overrides)
        cfg = validate_config(data, TrainConfig, f"layout {name}")
        run_training(cfg)


def tiny_train_config(tiny_data: dict[str, Path], output_dir: Path, **sections) -> dict:
    """A TrainConfig dict for the tiny model: 12 steps of 16 x 128 tokens, WSD with warmup 3 and decay 4."""
    cfg = {
        "output_dir": str(output_dir),
        "model": {"preset": "tiny"},
        "data": {"tokenizer": str(tiny_data["tokenizer"]), "blend": [{"path": str(tiny_data["prefix"])}],
                 "split": "98,2,0", "cache_dir": str(tiny_data["root"] / "cache")},
        "train": {"iters": 12, "micro_batch_size": 4, "global_batch_size": 16, "seed": 1234},
        "optimizer": {"lr": 3e-3, "min_lr": 3e-4},
        "schedule": {"style": "wsd", "warmup_steps": 3, "decay_steps": 4},
        "checkpoint": {"interval": 4},
        "logging": {"interval": 1, "tensorboard": False},
    }
    for name, values in sections.items():
        cfg[name] = {**cfg.get(name, {}), **values}
    return copy.deepcopy(cfg)
