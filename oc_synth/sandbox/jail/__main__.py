"""The zygote: one warm interpreter per worker slot and language view, serving programs one at a time.

Protocol on fd 0 (requests) / fd 1 (replies), frames from ``protocol``:
  1. host -> setup: {"isolation": "namespaces"|"rlimits", "seccomp": bool, "binds", "devices", "symlinks", "files",
     "tmp", "proc", "uid", "gid", "hostname", "preload"}; reply {"ready": true, "python": ..., "seccomp": bool,
     "seccomp_error": why or None} or {"ready": false, "error": ...}.
  2. host -> request {"files": {name: text}, "steps": [...], "tail_bytes": n}; reply supervisor.run_request's dict.
End of input ends the zygote.
"""

import ast  # noqa: F401 - pyexec's imports, warm in every fork (a program importing them pays nothing)
import os
import socket
import sys
import threading  # noqa: F401 - warm in every fork; pyexec hooks threading.excepthook
import traceback  # noqa: F401

import isolation
import protocol
import pyexec  # noqa: F401 - imported before the view hides this directory
import supervisor
import syscalls


def _setup(spec: dict) -> dict:
    ctx = {"uid": spec["uid"], "gid": spec["gid"], "pid_namespace": False, "drop": False, "pidns_fd": None,
           "spec": spec, "zygote_pid": os.getpid(), "seccomp": None, "seccomp_error": "not requested"}
    if spec.get("seccomp", True):  # built before the view hides the binding and libseccomp
        ctx["seccomp"], ctx["seccomp_error"] = syscalls.try_build_filter()
    try:  # be the first victim of any out-of-memory kill, not the host's work (raising it needs no privilege)
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    if spec["isolation"] == "namespaces":
        ctx["pidns_fd"] = os.open("/proc/self/ns/pid", os.O_RDONLY)
        isolation.enter_view(spec)
        isolation.unshare(isolation.CLONE_NEWUTS)
        socket.sethostname(spec.get("hostname", "sandbox"))
        ctx.update(pid_namespace=True, drop=True)
    jail_dir = sys.path[0]
    sys.path[:] = [p for p in sys.path if p != jail_dir] or [""]
    sys.path.insert(0, "")  # replaced by the work dir in every program, like a script's own directory
    import site  # -S skipped it: exit()/quit()/help and whatever site-packages the view holds

    site.main()
    for name in spec.get("preload", ()):
        try:
            __import__(name)
        except ImportError:
            pass
    return ctx


def main() -> None:
    spec = protocol.read_frame(0)
    if spec is None:
        return
    try:
        ctx = _setup(spec)
    except Exception as e:  # noqa: BLE001 - reported to the host, which fails loudly
        protocol.write_frame(1, {"ready": False, "error": f"{type(e).__name__}: {e}"})
        return
    streams = supervisor.Streams()
    protocol.write_frame(1, {"ready": True, "python": sys.version.split()[0], "pid": os.getpid(),
                             "seccomp": ctx["seccomp"] is not None, "seccomp_error": ctx["seccomp_error"]})
    while True:
        req = protocol.read_frame(0)
        if req is None:
            return
        try:
            reply = supervisor.run_request(req, ctx, streams)
        except Exception as e:  # noqa: BLE001
            reply = {"error": f"{type(e).__name__}: {e}"}
        protocol.write_frame(1, reply)


if __name__ == "__main__":
    main()
