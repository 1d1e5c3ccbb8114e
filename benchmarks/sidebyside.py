"""Whole commands timed from outside, for the benchmarks that compare our CLI with a peer's command (convert with
``cp -r`` + fsync, preprocess with Megatron-LM's ``tools/preprocess_data.py``).

``measure.py`` has the child time its own work; here the command's start-up and imports count, as a user waits for
them: wall seconds around the process, and from ``wait4`` its CPU seconds (user + system, the process and the
children it waited for) and peak RSS (the largest of them). The result is a run as ``measure.alternate`` and
``measure.summarize`` take it.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence


class CommandFailed(RuntimeError):
    pass


def run_command(cmd: Sequence[str], env: dict[str, str] | None = None, capture: bool = False) -> dict:
    """Run ``cmd`` to completion: ``{"wall_s", "cpu_s", "peak_rss_mib"}`` (and ``"stdout"`` with ``capture``); a
    non-zero exit raises ``CommandFailed`` with the end of its output."""
    start = time.perf_counter()
    proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
    if proc.stdout:
        proc.stdout.close()
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise CommandFailed(f"{' '.join(map(str, cmd))} exited with {proc.returncode}:\n{text[-4000:]}")
    run = {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mib": usage.ru_maxrss / 1024}
    if capture:
        run["stdout"] = text
    return run
