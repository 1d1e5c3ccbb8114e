"""Every slurm/*.sbatch: valid bash, the conventions of a long Slurm job, and its dry run for 2 nodes x 8 GPUs (the
srun / torchrun / ray lines it would run). Nothing here needs Slurm: the scripts stand in for it in dry-run mode."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SLURM = REPO / "slurm"
SCRIPTS = sorted(SLURM.glob("*.sbatch"))
# Jobs that can outlive a time limit: they must be requeued on a signal and resume.
LONG_JOBS = {"pretrain", "anneal", "sft", "synth", "curate_ray"}


def run_script(name: str, *args: str, cwd: Path = REPO, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    return subprocess.run(["bash", str(SLURM / f"{name}.sbatch"), *args], capture_output=True, text=True,
                          timeout=30, cwd=cwd, env={**clean, **env}, check=False)


def dry_run(name: str, *args: str, cwd: Path = REPO, **env: str) -> list[str]:
    proc = run_script(name, *args, cwd=cwd, **env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def the_line(lines: list[str], prefix: str) -> str:
    found = [line for line in lines if line.lstrip("+ ").startswith(prefix)]
    assert len(found) == 1, f"expected one line starting with {prefix!r} in:\n" + "\n".join(lines)
    return found[0]


def test_every_script_is_covered():
    assert {p.stem for p in SCRIPTS} == {"pretrain", "anneal", "sft", "convert", "synth", "curate_ray"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_script_is_valid_bash_with_usage_and_per_job_logs(script):
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    text = script.read_text()
    header = text.split("set -euo pipefail")[0]
    assert re.search(r"^# +(usage|Usage|.*sbatch .*slurm/" + script.name + ")", header, re.MULTILINE), "no usage header"
    assert "dry-run" in header.lower() or "DRY_RUN" in header, "the header must say how to dry-run"
    output = re.search(r"^#SBATCH --output=(\S+)", text, re.MULTILINE)
    assert output and ("%j" in output.group(1) or "%A" in output.group(1)), "logs must be per job id"
    assert "CONTAINER" in header, "optional pyxis/enroot container"
    if script.stem in LONG_JOBS:
        assert re.search(r"^#SBATCH --signal=B:USR1@\d+", text, re.MULTILINE) and "#SBATCH --requeue" in text
        # anneal / sft run pretrain.sbatch, which forwards the signal and requeues (their dry runs show it)
        assert "scontrol requeue" in text or 'exec bash "$OC_REPO/slurm/pretrain.sbatch"' in text


# ---- training: pretrain, anneal, SFT ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name, config", [("pretrain", "examples/pretrain_tiny.yaml"),
                                          ("anneal", "examples/anneal_opencoder_1p5b.yaml"),
                                          ("sft", "examples/sft_stage1.yaml")])
def test_training_scripts_srun_one_task_per_gpu(name, config):
    lines = dry_run(name, "--dry-run", config, "parallel.tensor=2", NODES="2", GPUS_PER_NODE="8")
    step = the_line(lines, "srun ")
    assert "--nodes=2" in step and "--ntasks-per-node=8" in step and "--gpus-per-node=8" in step
    assert "torchrun" not in step
    assert step.rstrip().endswith(f"-m oc_megatron.cli train {config} -s parallel.tensor=2")
    assert "2 node(s) x 8 GPU(s)" in the_line(lines, "# job ")
    assert "MASTER_ADDR=" in the_line(lines, "export ") and "CUDA_DEVICE_MAX_CONNECTIONS=1" in "\n".join(lines)
    assert "scontrol requeue" in the_line(lines, "# on exit code 124")
    if name != "pretrain":
        assert the_line(lines, f"# oc-{name}:")  # the wrapper says which job it is


@pytest.mark.parametrize("name", ["pretrain", "anneal", "sft"])
def test_training_scripts_torchrun_one_task_per_node_with_container(name):
    config = {"pretrain": "examples/pretrain_tiny.yaml", "anneal": "examples/anneal_tiny.yaml",
              "sft": "examples/sft_stage2.yaml"}[name]
    lines = dry_run(name, "--dry-run", config, LAUNCHER="torchrun", NODES="2", GPUS_PER_NODE="8",
                    CONTAINER_IMAGE="nvcr.io#nvidia/pytorch:25.09-py3", CONTAINER_MOUNTS="/lustre:/lustre")
    step = the_line(lines, "srun ")
    assert "--nodes=2" in step and "--ntasks-per-node=1" in step
    assert "torchrun --nnodes=2 --nproc-per-node=8" in step and "--rdzv-endpoint=node001:" in step
    assert "--container-image=nvcr.io#nvidia/pytorch:25.09-py3" in step and "--container-mounts=/lustre:/lustre" in step
    assert "SIGUSR1" in step  # torchrun forwards the preemption signal to its workers
    assert step.rstrip().endswith(f"-m oc_megatron.cli train {config}")


@pytest.mark.parametrize("name", ["pretrain", "anneal", "sft"])
def test_training_scripts_refuse_a_missing_config(name):
    proc = run_script(name)
    assert proc.returncode == 2 and "usage" in proc.stderr
    if name != "pretrain":
        proc = run_script(name, "--dry-run", "no/such.yaml")
        assert proc.returncode == 2 and "no/such.yaml not found" in proc.stderr


# ---- conversion, synthesis, curation ---------------------------------------------------------------------------------
def test_convert_one_process_per_job():
    lines = dry_run("convert", "--dry-run", "from-hf", "/models/OpenCoder-8B-Base", "/ckpt/oc-8b", "--tp", "2",
                    CONTAINER_IMAGE="nvcr.io#nvidia/pytorch:25.09-py3")
    step = the_line(lines, "srun")
    assert "--ntasks=1" in step and "--container-image=nvcr.io#nvidia/pytorch:25.09-py3" in step
    assert step.rstrip().endswith("-m oc_megatron.cli convert from-hf /models/OpenCoder-8B-Base /ckpt/oc-8b --tp 2")
    assert run_script("convert", "--dry-run", "sideways", "a", "b").returncode == 2


def test_synth_array_task_is_one_data_parallel_rank(tmp_path):
    env = {"DRY_RUN": "1", "SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2", "TP": "8",
           "RECIPE": "annealing-snippets", "SEEDS": "/data/seeds", "OUT": "/data/snippets",
           "MODEL": "/models/Qwen2.5-72B-Instruct", "CONTAINER": "vllm/vllm-openai:latest", "MOUNTS": "/data:/data"}
    lines = dry_run("synth", cwd=tmp_path, **env)  # two nodes: array tasks 0 and 1, 8 GPUs each (TP 8)
    step = the_line(lines, "srun ")
    assert "--container-image=vllm/vllm-openai:latest" in step and "--container-mounts=/data:/data" in step
    assert "oc-synth generate annealing-snippets --seeds /data/seeds --out /data/snippets" in step
    assert "--backend vllm --tp 8 --rank 1 --world-size 2" in step
    assert "scontrol requeue" in the_line(lines, "# on USR1")
    serve = dry_run("synth", cwd=tmp_path, **env, MODE="serve")
    assert "--tensor-parallel-size 8 --host 127.0.0.1 --port 8001" in the_line(serve, "python -m vllm.entrypoints")
    assert "--backend openai --base-url http://127.0.0.1:8001/v1" in the_line(serve, "srun --overlap")
    final = dry_run("synth", cwd=tmp_path, **env, FINALIZE="1")
    assert the_line(final, "srun ").rstrip().endswith("--finalize-only")


def test_curate_ray_head_and_workers_then_the_pipeline(tmp_path):
    """4 nodes: a head on the first, a worker node on each of the other three (CPUs, GPUs, object store and spill
    directory declared), a wait until all 4 joined, the job on the head with RAY_ADDRESS, and the teardown."""
    lines = dry_run("curate_ray", cwd=tmp_path, DRY_RUN="1", SLURM_JOB_NUM_NODES="4", SLURM_JOB_NODELIST="gpu[07-10]",
                    SLURM_CPUS_PER_TASK="64", SLURM_GPUS_ON_NODE="8", SLURM_JOB_ID="123",
                    CURATE_CMD="curate filter /data/transform /data/filtered",
                    CONTAINER="nvcr.io/nvidia/nemo-curator:25.09", MOUNTS="/data:/data")
    head = the_line(lines, "srun --nodes=1 --ntasks=1 -w gpu07 ")
    assert "ray start --block --head" in head and "--port=6379" in head and head.endswith("&")
    assert "--container-image=nvcr.io/nvidia/nemo-curator:25.09" in head
    starts = [line for line in lines if "ray start --block" in line]
    assert len(starts) == 4 and starts[0] == head
    for node, line in zip(["gpu08", "gpu09", "gpu10"], starts[1:], strict=True):
        assert line.startswith(f"+ srun --nodes=1 --ntasks=1 -w {node} ") and "--address=gpu07:6379" in line
        assert line.endswith("&") and "--head" not in line
    for line in starts:
        assert "--num-cpus=64" in line and "--num-gpus=8" in line and f"--object-store-memory={32 * 2**30}" in line
        assert "--object-spilling-directory=/tmp/ray-spill-123" in line
    on_head = "srun --overlap --nodes=1 --ntasks=1 -w gpu07 --container-image=nvcr.io/nvidia/nemo-curator:25.09 " \
              "--container-mounts=/data:/data "
    wait = the_line(lines, on_head + "python -m oc_synth.pipeline.ray_cluster wait gpu07:6379 4 300")
    job = the_line(lines, on_head + "env ")
    assert lines.index(starts[-1]) < lines.index(wait) < lines.index(job)
    assert "RAY_ADDRESS=gpu07:6379" in job
    assert job.endswith("oc-synth curate filter /data/transform /data/filtered --executor ray")
    assert "scontrol requeue" in the_line(lines, "# on USR1")
    assert "4 ray start steps" in the_line(lines, "# teardown")
    # without GPUs in the allocation, none declared
    cpu_only = dry_run("curate_ray", cwd=tmp_path, DRY_RUN="1", SLURM_JOB_NODELIST="n[1-2]",
                       CURATE_CMD="curate sample a b")
    assert all("--num-gpus=0" in line for line in cpu_only if "ray start --block" in line)
