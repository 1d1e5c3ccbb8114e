"""Shared test setup. GPU tests carry @pytest.mark.gpu and run only with OC_TEST_GPU=1 (see below).

Two session-wide guards live here:

- ``no_processes_left_behind``: the suite fails when tests leave child processes running. Pytest makes itself a
  child subreaper (Linux), so a grandchild orphaned by a killed launcher (a torchrun worker, a spawn pool, a
  sandbox) is re-parented to pytest and seen too. Each leftover is named with the test after which it first
  appeared, then killed.
- ``mount_tmpfs``: tests that need a real full disk or a read-only file system mount a small tmpfs (root only; the
  test is skipped elsewhere) and it is unmounted afterwards, whatever happens.
"""

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

import contextlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import psutil  # noqa: E402
import pytest  # noqa: E402

PR_SET_CHILD_SUBREAPER = 36
GRACE_S = 10.0  # a process killed at the end of a test may take a moment to go


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


# ---- no processes left behind -------------------------------------------------------------------------------------
def _become_subreaper() -> None:
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _interpreter_helper(p: psutil.Process) -> bool:
    """The per-interpreter helpers of multiprocessing (one resource tracker / forkserver for pytest itself): they
    live as long as pytest by design and are not left behind by a test."""
    try:
        return p.ppid() == os.getpid() and any(
            "multiprocessing.resource_tracker" in a or "multiprocessing.forkserver" in a for a in p.cmdline())
    except psutil.Error:
        return True


def _alive_descendants() -> list[psutil.Process]:
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and not _interpreter_helper(p):
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def _describe(p: psutil.Process) -> str:
    try:
        return f"pid {p.pid}: {' '.join(p.cmdline())[:160] or p.name()}"
    except psutil.Error:
        return f"pid {p.pid}"


_first_seen_after: dict[int, str] = {}


@pytest.fixture(autouse=True)
def _note_new_processes(request):
    """Remembers, for each child process still alive after a test, the first test after which it was seen."""
    yield
    for p in _alive_descendants():
        _first_seen_after.setdefault(p.pid, request.node.nodeid)


def _stop_ray() -> None:
    """Ray is shared by the tests of a session on purpose (started once, ~20 s); stop it before counting."""
    ray = sys.modules.get("ray")
    if ray is not None:
        with contextlib.suppress(Exception):
            if ray.is_initialized():
                ray.shutdown()


@pytest.fixture(scope="session", autouse=True)
def no_processes_left_behind():
    _become_subreaper()
    yield
    _stop_ray()
    deadline = time.monotonic() + GRACE_S
    left = _alive_descendants()
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = _alive_descendants()
    if not left:
        return
    lines = [f"{_describe(p)} (first seen after {_first_seen_after.get(p.pid, 'the last test')})" for p in left]
    for p in left:
        with contextlib.suppress(psutil.Error):
            p.kill()
    pytest.fail(f"tests left {len(left)} child processes running (killed now):\n  " + "\n  ".join(lines),
                pytrace=False)


# ---- real full disks and read-only file systems --------------------------------------------------------------------
@pytest.fixture
def mount_tmpfs():
    """``mount_tmpfs(path, size="64k", read_only=False)`` mounts a tmpfs at ``path``; ``remount(path, size=...)``
    changes its size (``.remount``). Everything mounted is unmounted when the test ends. Needs root."""
    mounted: list[Path] = []

    def mount(path: Path, size: str = "64k", read_only: bool = False) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        opts = f"size={size},mode=0755" + (",ro" if read_only else "")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
        mounted.append(path)
        return path

    def remount(path: Path, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True, capture_output=True)

    mount.remount = remount
    try:
        yield mount
    finally:
        for path in reversed(mounted):
            r = subprocess.run(["umount", str(path)], capture_output=True)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture(scope="session")
def vllm_env() -> tuple[str, str]:
    """(interpreter, what it runs) of the vLLM environment (tests/vllm_server.py: OC_VLLM_PYTHON, else .venv-vllm/,
    else this interpreter); the test is skipped, saying how to make one, where there is none. vLLM never goes into
    the project's environment: tests run what needs it there (``run_in_vllm_env``) or serve from there."""
    from vllm_server import VLLMUnavailable, vllm_python

    try:
        return vllm_python()
    except VLLMUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture
def fake_openai():
    """A loopback OpenAI-compatible server whose answers and failures the test scripts (tests/fake_openai.py); answers
    take 0.1 s, so that concurrent requests overlap."""
    from fake_openai import FakeOpenAI

    with FakeOpenAI(latency=0.1) as server:
        yield server
