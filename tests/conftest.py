"""Shared test setup. GPU tests carry @pytest.mark.gpu and run only with OC_TEST_GPU=1 (see below)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # 2-core CI: more threads make small models far slower
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A session runs either the CPU tests or the GPU tests. The CPU tests hide every GPU, here, before anything can
# initialise CUDA (this process and every worker or subprocess it starts inherit it): on a GPU machine they would
# otherwise pick up bf16, Transformer Engine and fused kernels, run gloo collectives on CUDA tensors and check fp32
# tolerances. OC_TEST_GPU=1 (scripts/gpu_check.sh) keeps the GPUs and runs only the @pytest.mark.gpu tests.
GPU_SESSION = os.environ.get("OC_TEST_GPU") == "1"
if not GPU_SESSION:
    os.environ["CUDA_VISIBLE_DEVICES"] = ""

import pytest  # noqa: E402


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        return False


def pytest_collection_modifyitems(config, items):
    if GPU_SESSION:
        skip_cpu = pytest.mark.skip(reason="OC_TEST_GPU=1 runs the GPU tests only (the CPU tests run without it)")
        for item in items:
            if "gpu" not in item.keywords:
                item.add_marker(skip_cpu)
        return
    if _cuda_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA: OC_TEST_GPU=1 on a GPU machine (scripts/gpu_check.sh)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
