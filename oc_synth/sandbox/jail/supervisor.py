"""Run one program (its build and run steps) in the jail and report what happened. Stdlib only.

Process tree per program (namespaces mode)::

    zygote (root, in the view)                 unshare(NEWPID|NEWIPC), fork, setns back
      └─ init (root, pid 1 of a new PID ns)    per step: fork, wait with the step's timeout, kill -1, reap
           └─ step (slot uid, pid 2)           setsid, rlimits, drop_to(uid), seccomp, close fds, exec / run Python

When init exits the kernel kills whatever is left in the namespace, so nothing a program starts (daemons, fork
bombs) outlives it, and a program cannot see or signal any process outside its namespace.

A request may carry follow-up programs (``then``: the sample's sanity mutant), run by the same init after the first
program's steps all exited 0, each from a clean slate: every process of the one before killed and reaped, a fresh
/tmp (a new tmpfs) and a fresh IPC namespace, its own sources and nonce. Their run steps get the time limit
``min(cap, factor * the first program's run time + slack)`` (the host's rule for mutants), computed here because
only here is that run time known. This saves a round trip, a PID namespace and an init per mutant.
The step's stdout, stderr and report (fd 3) are memfds owned by the zygote; their size is capped by RLIMIT_FSIZE.
Its stdin is a memfd holding the step's ``stdin`` text (the end-of-tests nonce for the harness), else empty.
"""

import json
import math
import os
import select
import shutil
import signal
import tempfile
import time

import isolation

WORK_DIR = "/tmp"
SETUP_FAILED_EXIT = 125  # the step died before the program started; the reason is on stderr


class Streams:
    """stdin, stdout, stderr, report and result memfds, created once per zygote and rewound for every step."""

    def __init__(self):
        self.inp = os.memfd_create("stdin", 0)
        self.out = os.memfd_create("stdout", 0)
        self.err = os.memfd_create("stderr", 0)
        self.report = os.memfd_create("report", 0)
        self.result = os.memfd_create("result", 0)

    def rewind(self, *fds):
        for fd in fds:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)

    @staticmethod
    def tail(fd: int, n: int) -> str:
        size = os.fstat(fd).st_size
        start = max(0, size - n)
        data = os.pread(fd, size - start, start)
        return data.decode("utf-8", "replace")

    @staticmethod
    def whole(fd: int, cap: int = 1 << 20) -> str:
        return os.pread(fd, cap, 0).decode("utf-8", "replace")


def _write_sources(workdir: str, files: dict, uid: int | None, gid: int | None) -> None:
    for name, text in files.items():
        path = os.path.join(workdir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        if uid is not None:
            os.chown(path, uid, gid)


def _start_step(step: dict, ctx: dict, streams: Streams, workdir: str) -> None:
    """In the forked step process: isolate, then exec or run Python. Never returns."""
    try:
        os.setsid()
        os.dup2(streams.inp, 0)
        os.dup2(streams.out, 1)
        os.dup2(streams.err, 2)
        os.dup2(streams.report, 3)
        os.chdir(workdir)
        isolation.apply_rlimits(step["limits"])
        if ctx["drop"]:
            isolation.drop_to(ctx["uid"], ctx["gid"])
        if ctx["seccomp"] is not None:
            isolation.prctl(isolation.PR_SET_NO_NEW_PRIVS, 1)  # already set by drop_to; rlimits mode needs it
            ctx["seccomp"].load()
        os.closerange(4, 1 << 16)
        env = dict(os.environ)
        if not ctx["pid_namespace"]:  # rlimits mode: the per-program temp dir stands in for the private /tmp
            env.update(HOME=workdir, TMPDIR=workdir)
        env.update(step.get("env") or {})
        if step.get("python"):
            import pyexec

            pyexec.run_program(step["python"], workdir, env)  # never returns
        os.execve(step["argv"][0], step["argv"], env)
    except BaseException as e:  # noqa: BLE001 - anything here is the sandbox's failure, not the program's
        try:
            os.write(2, f"[sandbox] step setup failed: {type(e).__name__}: {e}\n".encode())
            os.write(3, b"setup_failed\n")
        finally:
            os._exit(SETUP_FAILED_EXIT)


def _wait_with_timeout(pid: int, timeout_s: float) -> tuple[int, bool, object]:
    """Wait for ``pid``; SIGKILL it at the deadline. Returns (wait status, timed_out, rusage)."""
    pidfd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout_s)
    finally:
        os.close(pidfd)
    timed_out = not ready
    if timed_out:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _, status, rusage = os.wait4(pid, 0)
    return status, timed_out, rusage


def _kill_leftovers(ctx: dict, step_pid: int) -> None:
    """Namespaces mode: init kills every other process of its namespace and reaps them all. Rlimits mode: only the
    step's process group can be reached (a process that left it with setsid survives: not contained)."""
    if not ctx["pid_namespace"]:
        try:
            os.killpg(step_pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return
    while True:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _run_steps(steps: list, ctx: dict, streams: Streams, workdir: str, tail_bytes: int) -> list:
    results = []
    for step in steps:
        streams.rewind(streams.inp, streams.out, streams.err, streams.report)
        os.write(streams.inp, (step.get("stdin") or "").encode())
        os.lseek(streams.inp, 0, os.SEEK_SET)
        t0 = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _start_step(step, ctx, streams, workdir)
        status, timed_out, rusage = _wait_with_timeout(pid, step["timeout_s"])
        runtime = time.monotonic() - t0
        _kill_leftovers(ctx, pid)
        res = {
            "name": step["name"],
            "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            "timed_out": timed_out,
            "runtime_s": round(runtime, 4),
            "cpu_s": round(rusage.ru_utime + rusage.ru_stime, 4),
            "max_rss_kb": rusage.ru_maxrss,
            "stdout_tail": Streams.tail(streams.out, tail_bytes),
            "stderr_tail": Streams.tail(streams.err, tail_bytes),
            "report": Streams.whole(streams.report, 1 << 16).splitlines()[-64:],
        }
        results.append(res)
        if timed_out or res["exit_code"] != 0:
            break
    return results


def _follow_up_limits(phase: dict, run_s: float) -> list:
    """The phase's steps with the run steps' time limit set from the first program's run time."""
    rule = phase["run_timeout"]
    timeout = min(rule["cap"], rule["factor"] * run_s + rule["slack"])
    steps = []
    for step in phase["steps"]:
        if step["name"] != "build":
            step = dict(step, timeout_s=timeout, limits=dict(step["limits"], cpu_s=math.ceil(timeout) + 1))
        steps.append(step)
    return steps


def _fresh_slate(ctx: dict, workdir: str) -> None:
    """Between two programs of one request: a new, empty /tmp and a new IPC namespace (nothing of the first program
    left to read), as a new request would have."""
    if ctx["pid_namespace"]:
        isolation.mount_work_tmpfs(ctx["spec"], workdir, replace=True)
        isolation.unshare(isolation.CLONE_NEWIPC)
    else:
        for name in os.listdir(workdir):
            path = os.path.join(workdir, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)


def _run_program(req: dict, ctx: dict, streams: Streams, workdir: str) -> dict:
    tail = req.get("tail_bytes", 4096)
    steps = _run_steps(req["steps"], ctx, streams, workdir, tail)
    reply = {"steps": steps}
    run_s = next((s["runtime_s"] for s in reversed(steps) if s["name"] == "run"), 0.0)
    passed_steps = len(steps) == len(req["steps"]) and all(s["exit_code"] == 0 and not s["timed_out"] for s in steps)
    if req.get("then") and passed_steps:
        reply["then"] = []
        for phase in req["then"]:
            _fresh_slate(ctx, workdir)
            _write_sources(workdir, phase["files"], ctx["uid"] if ctx["drop"] else None, ctx["gid"])
            phase_steps = _follow_up_limits(phase, run_s)
            results = _run_steps(phase_steps, ctx, streams, workdir, tail)
            for result, step in zip(results, phase_steps, strict=False):
                result["cpu_limit_s"] = step["limits"]["cpu_s"]
            reply["then"].append({"steps": results, "run_timeout_s": phase_steps[-1]["timeout_s"]})
    return reply


def _serve_as_init(req: dict, ctx: dict, streams: Streams, workdir: str) -> None:
    code = 0
    try:
        os.write(streams.result, json.dumps(_run_program(req, ctx, streams, workdir)).encode())
    except BaseException as e:  # noqa: BLE001
        try:
            os.write(streams.result, json.dumps({"error": f"{type(e).__name__}: {e}"}).encode())
        finally:
            code = 1
    finally:
        os._exit(code)


def run_request(req: dict, ctx: dict, streams: Streams) -> dict:
    """Run every step of ``req`` in a fresh PID namespace; returns {"steps": [...]} or {"error": ...}."""
    if ctx["pid_namespace"]:  # a fresh tmpfs: nothing of the previous program (files, trees, full inodes) remains
        workdir = WORK_DIR
        isolation.mount_work_tmpfs(ctx["spec"], workdir, replace=True)
    else:
        workdir = tempfile.mkdtemp(prefix="oc-sandbox-")
    try:
        _write_sources(workdir, req["files"], ctx["uid"] if ctx["drop"] else None, ctx["gid"])
        streams.rewind(streams.result)
        if ctx["pid_namespace"]:
            isolation.unshare(isolation.CLONE_NEWPID | isolation.CLONE_NEWIPC)
        try:
            init = os.fork()
        finally:
            # In the zygote (never in init, which is inside the new namespace): point its *next* fork at the
            # next new namespace again; otherwise unshare(NEWPID) would fail from then on.
            if ctx["pid_namespace"] and os.getpid() == ctx["zygote_pid"]:
                isolation.setns(ctx["pidns_fd"], isolation.CLONE_NEWPID)
        if init == 0:
            _serve_as_init(req, ctx, streams, workdir)  # never returns
        _, status = os.waitpid(init, 0)
        raw = Streams.whole(streams.result, 1 << 24)
        if not raw:
            return {"error": f"sandbox init died (wait status {status})"}
        return json.loads(raw)
    finally:
        if not ctx["pid_namespace"]:
            shutil.rmtree(workdir, ignore_errors=True)
