"""Run a module as ``python -m`` would, and SIGKILL it at its N-th file-system write point.

    python killpoints.py N COUNT_FILE MODULE [ARGS...]

The write points are the calls through which every write of ours reaches the disk or becomes visible: ``os.write``,
``os.fsync``, ``os.replace``, ``os.rename``, ``os.unlink``, ``os.mkdir``, ``os.rmdir``, ``os.truncate`` and
``os.ftruncate``. N = 0 kills nothing and writes the number of points the run went through to COUNT_FILE (the range
to draw kill points from); odd N kills just before the N-th call, even N just after it, so both "not yet written"
and "written, not yet recorded" are hit. The kill is a real SIGKILL of this process: no finally, no atexit, no
flush. Child processes (worker pools, the sandbox) are the caller's to kill, as a job scheduler would.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys

POINTS = ("write", "fsync", "replace", "rename", "unlink", "mkdir", "rmdir", "truncate", "ftruncate")


def main() -> None:
    kill_at, count_file, module = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    sys.argv = [module, *sys.argv[4:]]
    calls = 0
    me = os.getpid()

    def hooked(fn):
        def call(*args, **kwargs):
            nonlocal calls
            if os.getpid() != me:  # a forked child: not ours to count or kill
                return fn(*args, **kwargs)
            calls += 1
            n = calls  # this call's number: another thread may count its own calls meanwhile
            if n == kill_at and kill_at % 2:
                os.kill(me, signal.SIGKILL)
            try:
                return fn(*args, **kwargs)
            finally:  # after the call, even one that failed (an unlink of a file already gone)
                if n == kill_at:
                    os.kill(me, signal.SIGKILL)

        return call

    real_write = os.write
    for name in POINTS:
        setattr(os, name, hooked(getattr(os, name)))
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        if kill_at == 0:
            fd = os.open(count_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            real_write(fd, str(calls).encode())
            os.close(fd)


if __name__ == "__main__":
    main()
