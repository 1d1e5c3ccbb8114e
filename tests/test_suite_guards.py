"""The guards of tests/conftest.py, tried on a small suite of their own: a test that leaves a child process running,
or orphans a grandchild, fails the session, names the test, and the processes are killed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil

CONFTEST = Path(__file__).resolve().parent / "conftest.py"


def _sleepers(marker: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        if marker in " ".join(p.info["cmdline"] or []) and p.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(p)
    return found


def test_a_test_that_leaves_processes_behind_fails_the_suite(tmp_path):
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    marker = "117.25"  # a sleep only this test starts
    (tmp_path / "test_leaky.py").write_text(textwrap.dedent(f"""
        import subprocess

        def test_clean():
            subprocess.run(["true"], check=True)

        def test_leaves_a_child():
            subprocess.Popen(["sleep", "{marker}"])

        def test_orphans_a_grandchild():
            subprocess.run(["sh", "-c", "sleep {marker} &"], check=True)  # sh exits; its child lives on
    """))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                       capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode != 0, r.stdout[-3000:]
    assert "3 passed, 1 error" in r.stdout and "tests left 2 child processes running" in r.stdout, r.stdout[-3000:]
    assert "test_leaky.py::test_leaves_a_child" in r.stdout
    assert "test_leaky.py::test_orphans_a_grandchild" in r.stdout  # caught although re-parented
    assert not _sleepers(marker)  # and killed
