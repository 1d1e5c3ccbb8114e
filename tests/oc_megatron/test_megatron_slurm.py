"""slurm/pretrain.sbatch in dry-run mode: the commands it would run, for both launchers (never both at once)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "slurm" / "pretrain.sbatch"


def dry_run(*args: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    proc = subprocess.run(["bash", str(SCRIPT), "--dry-run", *args], capture_output=True, text=True, timeout=30,
                          env={**clean, **env})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_srun_launcher_one_task_per_gpu():
    out = dry_run("examples/pretrain_tiny.yaml", "parallel.tensor=2", NODES="4", GPUS_PER_NODE="8")
    step = next(line for line in out.splitlines() if line.startswith("srun "))
    assert "--nodes=4" in step and "--ntasks-per-node=8" in step
    assert "torchrun" not in step
    assert step.rstrip().endswith("-m oc_megatron.cli train examples/pretrain_tiny.yaml parallel.tensor=2")
    assert "CUDA_DEVICE_MAX_CONNECTIONS=1" in out and "scontrol requeue" in out


def test_torchrun_launcher_one_task_per_node_with_container():
    out = dry_run("cfg.yaml", LAUNCHER="torchrun", NODES="2", CONTAINER_IMAGE="nvcr.io#nvidia/pytorch:25.09-py3",
                  CONTAINER_MOUNTS="/data:/data")
    step = next(line for line in out.splitlines() if line.startswith("srun "))
    assert "--ntasks-per-node=1" in step and "torchrun --nnodes=2 --nproc-per-node=8" in step
    assert "--container-image=nvcr.io#nvidia/pytorch:25.09-py3" in step and "--container-mounts=/data:/data" in step
    assert "SIGUSR1" in step  # torchrun forwards the preemption signal to its workers


def test_usage_error_without_config():
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "usage" in proc.stderr
