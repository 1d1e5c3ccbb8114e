"""Process group and Megatron-Core parallel state: one entry for torchrun, srun and a plain single process.

* torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``.
* srun with one task per GPU sets ``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``; ``MASTER_ADDR`` /
  ``MASTER_PORT`` come from the sbatch script (``slurm/pretrain.sbatch`` exports them).
* Neither: a world of one on localhost with a free port (``oc-megatron train`` on a laptop).

The backend is NCCL with CUDA, gloo without (Megatron-Core's collectives all run on gloo in torch >= 2.4);
``OC_DIST_BACKEND`` overrides it.
"""

from __future__ import annotations

import datetime
import os
import random
import socket
from dataclasses import dataclass

import numpy as np
import torch

from oc_common.log import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    backend: str
    launcher: str  # torchrun | srun | single


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def detect_launcher() -> tuple[str, int, int, int]:
    """(launcher, rank, world_size, local_rank) from the environment."""
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return "torchrun", int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0))
    if "SLURM_PROCID" in env and "SLURM_NTASKS" in env and "MASTER_ADDR" in env:
        # srun with one task per GPU (never combined with torchrun: then RANK is set and wins above).
        return "srun", int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0))
    return "single", 0, 1, 0


def init_distributed(timeout_minutes: float = 30.0) -> DistEnv:
    """Initialise ``torch.distributed`` once (no-op if already initialised) and return who we are."""
    from oc_megatron.models.cpu_compat import apply_cpu_shims

    apply_cpu_shims()
    cuda = torch.cuda.is_available()
    # OC_DIST_BACKEND overrides the choice (e.g. gloo on a GPU box for debugging collectives).
    backend = os.environ.get("OC_DIST_BACKEND") or ("nccl" if cuda else "gloo")
    if torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        return DistEnv(rank, world, int(os.environ.get("LOCAL_RANK", 0)), torch.distributed.get_backend(), "external")
    launcher, rank, world, local_rank = detect_launcher()
    if launcher == "single":
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(free_port()))
    else:
        os.environ.setdefault("MASTER_PORT", "29500")
    if cuda:
        # srun may give each task only its own GPU (CUDA_VISIBLE_DEVICES of one device): then it is device 0.
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    torch.distributed.init_process_group(
        backend=backend, rank=rank, world_size=world, timeout=datetime.timedelta(minutes=timeout_minutes),
        init_method=f"tcp://{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}",
    )
    return DistEnv(rank, world, local_rank, backend, launcher)


def init_model_parallel(tensor_parallel: int = 1, pipeline_parallel: int = 1, virtual_pipeline: int | None = None,
                        context_parallel: int = 1) -> None:
    """Megatron-Core's TP/PP/DP/CP groups. Data parallel size = world / (TP x PP x CP)."""
    from megatron.core import parallel_state as ps

    if ps.model_parallel_is_initialized():
        ps.destroy_model_parallel()
    ps.initialize_model_parallel(
        tensor_model_parallel_size=tensor_parallel,
        pipeline_model_parallel_size=pipeline_parallel,
        virtual_pipeline_model_parallel_size=virtual_pipeline,
        context_parallel_size=context_parallel,
    )


def seed_everything(seed: int) -> None:
    """Python, NumPy, torch and Megatron's model-parallel RNG tracker (per-TP-rank streams for dropout)."""
    from megatron.core import tensor_parallel

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    tensor_parallel.model_parallel_cuda_manual_seed(seed)


def destroy() -> None:
    """Tear down parallel state and the process group (tests reuse a process for several layouts)."""
    import sys

    ps = sys.modules.get("megatron.core.parallel_state")  # never import Megatron just to tear down nothing
    if ps is not None and ps.model_parallel_is_initialized():
        ps.destroy_model_parallel()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
