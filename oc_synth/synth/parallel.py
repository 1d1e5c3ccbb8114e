"""Data parallelism for offline generation: one worker process per GPU group, each with its own engine.

``run_data_parallel(spec, world_size, tensor_parallel_size)`` starts ``world_size`` workers (``python -m
oc_synth.synth.parallel SPEC.json RANK``). Worker r sees GPUs ``[r*tp, (r+1)*tp)`` of the visible ones through
CUDA_VISIBLE_DEVICES, takes the seeds whose id hashes to r and appends to its own log files; the parent then
finalizes over all ranks. A worker that dies costs only its unfinished seeds: a rerun resumes them. Without GPUs
(CPU engines) the workers share the machine.

On a Slurm cluster the same split runs as an array job instead (``--rank $SLURM_ARRAY_TASK_ID --world-size N``,
see slurm/synth.sbatch), followed by one unranked run that finalizes.

With ``--executor ray`` (``run_data_parallel_ray``) the ranks are Ray tasks on a cluster instead of local processes:
each asks Ray for ``--tp`` GPUs (Ray sets its CUDA_VISIBLE_DEVICES: one vLLM engine per GPU worker) or, on a cluster
without GPUs and with ``--backend openai`` (the rank only calls a server), one CPU; OUT must be on a file system every
node sees. A rank whose node is lost is run again by Ray
(``max_retries``) and resumes from its own log, like a rerun.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any

from oc_common.errors import OcError
from oc_common.log import get_logger

log = get_logger(__name__)


def visible_gpus() -> list[str]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip()]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001
        return []


def gpu_groups(world_size: int, tensor_parallel_size: int) -> list[str | None]:
    gpus = visible_gpus()
    if not gpus:
        return [None] * world_size
    need = world_size * tensor_parallel_size
    if len(gpus) < need:
        raise OcError(f"--dp {world_size} x --tp {tensor_parallel_size} needs {need} GPUs; "
                        f"{len(gpus)} visible")
    return [",".join(gpus[r * tensor_parallel_size : (r + 1) * tensor_parallel_size]) for r in range(world_size)]


def run_data_parallel(spec: dict[str, Any], world_size: int, tensor_parallel_size: int = 1) -> list[int]:
    """Run every rank to completion; returns their exit codes (0 = done)."""
    groups = gpu_groups(world_size, tensor_parallel_size)
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="oc-synth-dp-", delete=False) as f:
        json.dump(spec, f)
        spec_path = f.name
    try:
        procs = []
        for rank, group in enumerate(groups):
            env = dict(os.environ)
            if group is not None:
                env["CUDA_VISIBLE_DEVICES"] = group
            procs.append(subprocess.Popen([sys.executable, "-m", "oc_synth.synth.parallel", spec_path, str(rank),
                                           str(world_size)], env=env))
        codes = [p.wait() for p in procs]
    finally:
        os.unlink(spec_path)
    for rank, code in enumerate(codes):
        if code != 0:
            log.error("data-parallel rank %d exited with status %d; its unfinished seeds resume on the next run",
                      rank, code)
    return codes


RAY_RANK_RETRIES = 3


def run_data_parallel_ray(spec: dict[str, Any], world_size: int, tensor_parallel_size: int = 1) -> list[int]:
    """Every rank as a Ray task (see the module docstring); returns their exit codes (0 = done)."""
    import ray

    from oc_synth.pipeline.executors import init_local_ray

    init_local_ray()
    # an openai rank only talks to a server (its node's, or one for all): it holds no GPU the server may need
    gpus = ray.cluster_resources().get("GPU", 0) if spec.get("backend") != "openai" else 0
    per_rank = {"num_gpus": tensor_parallel_size, "num_cpus": 1} if gpus else {"num_cpus": 1}
    if gpus and gpus < tensor_parallel_size:
        raise OcError(f"--tp {tensor_parallel_size} needs {tensor_parallel_size} GPUs per rank; the Ray cluster has "
                      f"{gpus:g}")
    rank_task = ray.remote(_ray_rank).options(max_retries=RAY_RANK_RETRIES, retry_exceptions=False, **per_rank)
    log.info("generate on Ray: %d ranks, %s each", world_size,
             f"{tensor_parallel_size} GPU(s)" if gpus else "1 CPU")
    refs = [rank_task.remote({**spec, "overwrite": False}, rank, world_size) for rank in range(world_size)]
    try:
        codes = ray.get(refs)
    except ray.exceptions.RayTaskError as e:
        raise (e.cause if isinstance(e.cause, BaseException) else e) from None
    for rank, code in enumerate(codes):
        if code != 0:
            log.error("data-parallel rank %d stopped early; its unfinished seeds resume on the next run", rank)
    return codes


def _ray_rank(spec: dict[str, Any], rank: int, world_size: int) -> int:
    """One rank in a Ray worker: the same run as a local rank process (``_worker``)."""
    from oc_common.log import setup_logging
    from oc_synth.synth.run import run_generate

    setup_logging()
    os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")  # a forked vLLM worker cannot use CUDA
    spec = dict(spec, rank=rank, world_size=world_size, quiet=True, overwrite=False)
    if spec.get("backend") == "vllm" and spec.get("backend_options", {}).get("tensor_parallel_size", 1) > 1:
        # vLLM would start Ray workers of its own for the other GPUs, which this task already holds: keep its
        # tensor-parallel workers as processes of this task.
        spec["backend_options"] = {"distributed_executor_backend": "mp", **spec["backend_options"]}
    return 1 if run_generate(spec).aborted else 0


def _worker(spec_path: str, rank: int, world_size: int) -> int:
    from oc_common.log import setup_logging
    from oc_synth.synth.run import run_generate

    setup_logging()
    with open(spec_path) as f:
        spec = json.load(f)
    spec.update(rank=rank, world_size=world_size, quiet=True, overwrite=False)
    result = run_generate(spec)
    return 1 if result.aborted else 0


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
