"""The host side of the sandbox: a pool of worker slots, each a set of warm zygotes (one per language), one uid.

``Sandbox.run(program)`` checks the static rules, takes a free slot, sends the program to that slot's zygote for the
program's language (started on first use: a system interpreter that enters the jail, see ``jail/``) with a nonce
drawn for this run, and turns the reply into a ``RunResult`` with a verdict. A program that passed is then run again
as sanity mutants (``mutants``; strictness standard and strict): if one passes too, the verdict is ``weak_tests``.
The first mutant travels in the same request as the program (the jail runs it, from a clean slate, only when every
step of the program exited 0), which saves a round trip and a namespace per passing sample; it is judged exactly as
a mutant sent on its own. Further mutants (a fallback stub, strict mode's per-definition ones) go one request each.
``imap`` / ``run_many`` keep every slot busy from a thread pool (the threads only wait on pipes; the programs run in
the zygotes' processes).
"""

from __future__ import annotations

import math
import os
import secrets
import select
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from queue import Queue
from typing import TypeVar

from oc_common.errors import SandboxError
from oc_common.log import get_logger
from oc_synth.sandbox import checks, mutants
from oc_synth.sandbox.cgroups import SlotCgroup, cgroup_name, create_slot_cgroup, remove_stale_cgroups
from oc_synth.sandbox.config import SandboxConfig, default_uid_base
from oc_synth.sandbox.jail.protocol import read_frame, write_frame
from oc_synth.sandbox.languages import Language, Program, Step, language, python_binds, top_level_symlinks, view_binds

log = get_logger(__name__)
T = TypeVar("T")
R = TypeVar("R")

JAIL_DIR = Path(__file__).resolve().parent / "jail"
SETUP_TIMEOUT_S = 60.0
REPLY_SLACK_S = 15.0  # on top of the steps' own limits, before the host gives up on a zygote
# A mutant's run step may take this many times the original's (plus a second) before it counts as killed: a mutant
# that loops forever costs little, and the original's limit still caps it.
MUTANT_TIME_FACTOR = 3.0
MUTANT_TIME_SLACK_S = 1.0

# The whole environment of a sandboxed program: nothing of the host's (its secrets live there).
BASE_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "USER": "sandbox", "LOGNAME": "sandbox", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": "1"}
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
DEV_LINKS = {"/dev/shm": "/tmp", "/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0",
             "/dev/stdout": "/proc/self/fd/1", "/dev/stderr": "/proc/self/fd/2"}


@dataclass
class RunResult:
    verdict: str
    detail: str
    runtime_s: float
    stderr_tail: str = ""
    stdout_tail: str = ""
    language: str = ""
    id: str | None = None
    steps: list[dict] = field(default_factory=list)
    reason: str = ""  # a short stable code per verdict (``checks``), counted in the stats table

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"

    def record_fields(self) -> dict:
        """The fields ``oc-synth verify`` adds to a record."""
        return {"verdict": self.verdict, "passed": self.passed, "verdict_detail": self.detail,
                "verdict_reason": self.reason, "stderr_tail": self.stderr_tail, "runtime_s": self.runtime_s}


def choose_isolation(requested: str, euid: int) -> str:
    if requested == "auto":
        return "namespaces" if euid == 0 else "rlimits"
    if requested == "namespaces" and euid != 0:
        raise SandboxError("isolation=namespaces needs root (namespaces, mounts, per-slot uids); run as root or "
                           "accept isolation=rlimits (no isolation, NOT safe for untrusted code)")
    return requested


RLIMITS_WARNING = ("sandbox: isolation=rlimits (not root, or asked for): programs run WITHOUT isolation (no network, "
                   "mount or PID namespaces, no separate uid: host files and network are reachable); only rlimits, "
                   "a timeout and a temp dir apply. Do not run untrusted code like this.")
NO_SECCOMP_WARNING = ("sandbox: DEGRADED ISOLATION: no seccomp filter ({why}): programs may create user namespaces, "
                      "use kernel keyrings, ptrace, bpf, perf_event_open and other kernel attack surface. Install "
                      "libseccomp's binding for {python} (Debian: apt-get install python3-seccomp; scripts/install.sh "
                      "--dev does it as root) or set seccomp=required to refuse to run without it.")


def _etc_files(uid: int, gid: int) -> dict[str, str]:
    return {
        "/etc/passwd": f"root:x:0:0:root:/root:/bin/sh\nsandbox:x:{uid}:{gid}:sandbox:/tmp:/bin/sh\n"
                       "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        "/etc/group": f"root:x:0:\nsandbox:x:{gid}:\nnogroup:x:65534:\n",
        "/etc/hosts": "127.0.0.1 localhost\n::1 localhost\n",
        "/etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
    }


def _tasks_of_uid(uid: int) -> int:
    """Processes + threads owned by ``uid`` now (RLIMIT_NPROC counts them all)."""
    n = 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.stat(f"/proc/{d}").st_uid == uid:
                    n += len(os.listdir(f"/proc/{d}/task"))
            except OSError:
                pass
    return n


class _Zygote:
    """One jail process: a system interpreter inside one slot's view for one language."""

    def __init__(self, python: str, spec: dict, cgroup: SlotCgroup | None):
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([python, "-I", "-S", str(JAIL_DIR)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._stderr, env=BASE_ENV, close_fds=True,
                                     cwd="/", start_new_session=True)  # a Ctrl-C is the host's to handle
        if cgroup is not None:
            cgroup.add(self.proc.pid)
        reply = self.request(spec, SETUP_TIMEOUT_S)
        if not reply or not reply.get("ready"):
            why = (reply or {}).get("error") or f"it exited: {self.stderr_text()}"
            self.close()
            raise SandboxError(f"the sandbox could not start ({why}); it needs root, Linux namespaces and a "
                               "system interpreter, or isolation=rlimits")
        self.seccomp: bool = bool(reply.get("seccomp"))
        self.seccomp_error: str | None = reply.get("seccomp_error")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-2000:].decode("utf-8", "replace").strip()

    def request(self, message: dict, timeout_s: float) -> dict | None:
        """Send one message and wait for the reply; None (and the zygote stopped) if it died or hung."""
        try:
            write_frame(self.proc.stdin.fileno(), message)
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
            reply = read_frame(self.proc.stdout.fileno()) if ready else None
        except (OSError, ValueError):
            reply = None
        if reply is None:
            self.stop()
        return reply

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # end of input: the zygote leaves its loop
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass

    def close(self) -> None:
        self.stop()
        self._stderr.close()


class _Slot:
    """A worker slot: one uid, one memory cgroup, a zygote per language (started on first use)."""

    def __init__(self, index: int, uid: int, sandbox: Sandbox):
        self.index, self.uid, self.sandbox = index, uid, sandbox
        self.zygotes: dict[str, _Zygote] = {}
        self.cgroup: SlotCgroup | None = None
        self._cgroup_tried = False

    def _spec(self, lang: Language) -> dict:
        cfg = self.sandbox.config
        binds = list(dict.fromkeys([*python_binds(cfg.python), *view_binds(lang, cfg.python), *cfg.extra_ro_paths]))
        return {"isolation": self.sandbox.isolation, "seccomp": cfg.seccomp != "off", "uid": self.uid,
                "gid": self.uid, "binds": binds,
                "devices": list(DEVICES), "symlinks": {**top_level_symlinks(), **DEV_LINKS},
                "files": _etc_files(self.uid, self.uid), "proc": lang.needs_proc, "hostname": "sandbox",
                "tmp": {"size_mb": cfg.tmpfs_mb, "inodes": cfg.tmpfs_inodes},
                "preload": cfg.preload if lang.name == "python" else []}

    def zygote(self, lang: Language) -> _Zygote:
        z = self.zygotes.get(lang.name)
        if z is not None and z.alive():
            return z
        if z is not None:
            z.close()
        if self.sandbox.isolation == "namespaces" and not self._cgroup_tried:
            self._cgroup_tried = True
            self.cgroup, why = create_slot_cgroup(cgroup_name(self.index),
                                                  self.sandbox.config.slot_memory_mb << 20)
            if self.cgroup is None:
                self.sandbox.warn_once("cgroup", f"sandbox: no memory cgroup ({why}): a program that forks and "
                                                 "allocates is bounded only by processes x memory_mb")
        z = self.zygotes[lang.name] = _Zygote(self.sandbox.config.python, self._spec(lang), self.cgroup)
        self.sandbox.zygote_started(z)
        return z

    def execute(self, program: Program, lang: Language, nonce: str, run_timeout_s: float | None = None,
                then: tuple[Program, str] | None = None) -> tuple[dict, bool]:
        """Run ``program`` in this slot; returns (the jail's reply, whether the slot's cgroup OOM-killed). ``then``:
        a mutant and its nonce, run in the same request if the program's steps all exit 0 (``reply["then"]``)."""
        cfg = self.sandbox.config
        steps = [self.sandbox.step_request(s, lang, nonce, run_timeout_s) for s in program.steps]
        request = {"files": program.files, "steps": steps, "tail_bytes": 4 * cfg.stderr_tail_chars}
        wait_s = sum(s["timeout_s"] for s in steps) + REPLY_SLACK_S
        if then is not None:
            mutant, mutant_nonce = then
            mutant_steps = [self.sandbox.step_request(s, lang, mutant_nonce, cfg.timeout_s) for s in mutant.steps]
            request["then"] = [{"files": mutant.files, "steps": mutant_steps,
                                "run_timeout": {"factor": MUTANT_TIME_FACTOR, "slack": MUTANT_TIME_SLACK_S,
                                                "cap": cfg.timeout_s}}]
            wait_s += sum(s["timeout_s"] for s in mutant_steps)
        zygote = self.zygote(lang)
        before = self.cgroup.oom_kills() if self.cgroup else 0
        reply = zygote.request(request, wait_s)
        if reply is None:  # the next program starts a fresh zygote
            reply = {"error": f"the sandbox worker died ({zygote.stderr_text()[-300:] or 'no message'})"}
        for s, sent in zip(reply.get("steps", []), steps, strict=False):
            s["cpu_limit_s"] = sent["limits"]["cpu_s"]
        oom = bool(self.cgroup) and self.cgroup.oom_kills() > before
        return reply, oom

    def close(self) -> None:
        for z in self.zygotes.values():
            z.close()
        self.zygotes.clear()
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None


class Sandbox:
    """A pool of ``config.workers`` sandbox slots. Use as a context manager (or call ``close``)."""

    def __init__(self, config: SandboxConfig | None = None, **overrides):
        self.config = config.model_copy(update=overrides) if config else SandboxConfig(**overrides)
        self.isolation = choose_isolation(self.config.isolation, os.geteuid())
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        self._seccomp: set[bool] = set()  # what the zygotes started so far had
        if self.isolation == "rlimits":
            self.warn_once("rlimits", RLIMITS_WARNING)
        if not (os.path.isfile(self.config.python) and os.access(self.config.python, os.X_OK)):
            raise SandboxError(f"{self.config.python}: no such interpreter; install Debian's python3 "
                               "(apt-get install python3) or set python= to a system interpreter")
        base = self.config.uid_base if self.config.uid_base is not None else default_uid_base()
        uids = [base + i for i in range(self.config.workers)] if self.isolation == "namespaces" else \
            [os.geteuid()] * self.config.workers
        self._slots = [_Slot(i, uid, self) for i, uid in enumerate(uids)]
        self._free: Queue[_Slot] = Queue()
        for slot in self._slots:
            self._free.put(slot)
        self._nproc_base = 0 if self.isolation == "namespaces" else _tasks_of_uid(os.geteuid())
        if self.isolation == "namespaces":
            remove_stale_cgroups()

    # -- public API ---------------------------------------------------------------------------------------------
    @property
    def isolation_mode(self) -> str:
        """What contains the programs: ``namespaces+seccomp`` (the full sandbox), ``namespaces`` (no syscall filter:
        degraded), ``rlimits+seccomp`` / ``rlimits`` (no isolation); ``+seccomp?`` before any zygote started."""
        with self._lock:
            seen = set(self._seccomp)
        if self.config.seccomp == "off" or seen == {False} or len(seen) > 1:
            return self.isolation
        return f"{self.isolation}+seccomp" + ("" if seen else "?")

    def zygote_started(self, zygote: _Zygote) -> None:
        with self._lock:
            self._seccomp.add(zygote.seccomp)
        if self.config.seccomp != "off" and not zygote.seccomp:
            why = zygote.seccomp_error or "unavailable"
            if self.config.seccomp == "required":
                raise SandboxError(f"seccomp=required but the sandbox has no seccomp filter: {why} (Debian: "
                                   "apt-get install python3-seccomp)")
            self.warn_once("seccomp", NO_SECCOMP_WARNING.format(why=why, python=self.config.python))

    def run(self, program: Program) -> RunResult:
        """Run one program to a verdict (thread-safe: waits for a free slot)."""
        strictness = self.config.strictness
        static = checks.static_verdict(program, strictness)
        if static is not None:
            return RunResult(static.verdict, static.detail, 0.0, language=program.language, id=program.id,
                             reason=static.reason)
        first = self._first_mutant(program) if strictness != "basic" else None
        result, first_outcome = self._run_once(program, then=first[0] if first else None)
        if result.passed and strictness != "basic":
            ready = {(None, first[2]): (first[0], first[1], first_outcome)} if first and first_outcome else {}
            sanity = self._sanity_check(program, result, strictness, ready)
            result.verdict, result.detail, result.reason = sanity.verdict, sanity.detail, sanity.reason
        return result

    @staticmethod
    def _first_mutant(program: Program) -> tuple[Program, list[str], str] | None:
        """The mutant ``_sanity_check`` tries first (every function broken, the first stub kind), if there is one."""
        mode = mutants.modes(program)[0]
        made = mutants.mutate(program, mode, None)
        return (made[0], made[1], mode) if made is not None else None

    def _run_once(self, program: Program, run_timeout_s: float | None = None,
                  then: Program | None = None) -> tuple[RunResult, RunResult | None]:
        """Run ``program``; with ``then`` (a mutant), also that mutant's result when the jail ran it in the same
        request (None when it did not: the program's steps did not all exit 0, or the slot OOM-killed something and
        the mutant must be judged on a run of its own)."""
        lang = language(program.language)
        nonce = secrets.token_hex(16)
        then_nonce = secrets.token_hex(16)
        slot = self._free.get()
        try:
            t0 = time.perf_counter()
            reply, oom = slot.execute(program, lang, nonce, run_timeout_s,
                                      then=(then, then_nonce) if then is not None else None)
            wall = time.perf_counter() - t0
        finally:
            self._free.put(slot)
        if "error" in reply:
            return RunResult("error", f"sandbox failure: {reply['error']}", round(wall, 4),
                             language=program.language, id=program.id, reason="sandbox_failure"), None
        result = self._result(program, reply["steps"], oom, nonce)
        follow = reply.get("then")
        if then is None or not follow or oom:
            return result, None
        return result, self._result(then, follow[0]["steps"], False, then_nonce)

    def _result(self, program: Program, steps: list[dict], oom: bool, nonce: str) -> RunResult:
        verdict = checks.classify(program, steps, oom_killed=oom, nonce=nonce)
        last = steps[-1] if steps else {}
        n = self.config.stderr_tail_chars
        return RunResult(verdict.verdict, verdict.detail, round(sum(s["runtime_s"] for s in steps), 4),
                         stderr_tail=last.get("stderr_tail", "")[-n:] if n else "",
                         stdout_tail=last.get("stdout_tail", "")[-n:] if n else "",
                         language=program.language, id=program.id, steps=steps, reason=verdict.reason)

    def _sanity_check(self, program: Program, result: RunResult, strictness: str,
                      ready: dict | None = None) -> checks.Verdict:
        """``result`` (passed) stays passed only if every mutant fails the tests; the first that passes them makes
        the sample ``weak_tests``. Mutant runs count in ``result.runtime_s``. ``ready``: (None, stub kind) ->
        (mutant, broken names, outcome) of the every-function mutant already run in the program's own request."""
        ready = ready or {}
        groups: list[set[str] | None] = [None]
        if strictness == "strict":
            names = mutants.definitions(program)
            if len(names) > 1:
                groups += [{n} for n in names[: self.config.strict_max_mutants]]
        run_s = next((s["runtime_s"] for s in reversed(result.steps) if s["name"] == "run"), 0.0)
        limit = min(self.config.timeout_s, MUTANT_TIME_FACTOR * run_s + MUTANT_TIME_SLACK_S)
        killed = 0
        for only in groups:
            outcome = None
            for mode in mutants.modes(program):
                if only is None and (None, mode) in ready:
                    mutant, broken, outcome = ready[None, mode]
                else:
                    made = mutants.mutate(program, mode, only)
                    if made is None:
                        break
                    mutant, broken = made
                    outcome = self._run_once(mutant, limit)[0]
                result.runtime_s = round(result.runtime_s + outcome.runtime_s, 4)
                if outcome.reason != "compile_error":
                    break
            if outcome is None:
                if only is None:
                    return checks.Verdict("passed", f"{result.detail}; no function in the code to mutate",
                                          result.reason)
                continue
            if outcome.passed:
                shown = ", ".join(broken[:4]) + (", ..." if len(broken) > 4 else "")
                return checks.Verdict("weak_tests", f"sanity mutant passed: the tests still pass with {shown} broken "
                                                    f"({mutants.STUBS[mode]})", "sanity_mutant_passed")
            if outcome.reason == "compile_error":
                return checks.Verdict("passed", f"{result.detail}; the sanity mutant did not compile",
                                      result.reason)
            killed += 1
        return checks.Verdict("passed", f"{result.detail}; {killed} sanity mutant{'s' * (killed > 1)} failed",
                              result.reason)

    def imap(self, programs: Iterable[Program]) -> Iterator[RunResult]:
        """Results in input order, programs running ``workers`` at a time; streams (a bounded window in flight)."""
        return self.ordered_map(self.run, programs)

    def ordered_map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """``map(fn, items)`` over ``workers`` threads, in order, with at most a few items per slot in flight (for
        callers that wrap ``run``, e.g. to turn records into programs and results back into records)."""
        window = 4 * len(self._slots)
        with ThreadPoolExecutor(max_workers=len(self._slots), thread_name_prefix="sandbox") as pool:
            pending: deque = deque()
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def run_many(self, programs: Iterable[Program]) -> list[RunResult]:
        return list(self.imap(programs))

    def close(self) -> None:
        for slot in self._slots:
            slot.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- helpers for slots ----------------------------------------------------------------------------------------
    def step_request(self, step: Step, lang: Language, nonce: str = "", run_timeout_s: float | None = None) -> dict:
        cfg = self.config
        timeout = cfg.build_timeout_s if step.is_build else (run_timeout_s or cfg.timeout_s)
        memory_mb = max(cfg.build_memory_mb if step.is_build else cfg.memory_mb, lang.min_address_space_mb)
        limits = {"cpu_s": math.ceil(timeout) + 1, "address_space_bytes": memory_mb << 20,
                  "file_size_bytes": cfg.file_size_mb << 20, "processes": self._nproc_base + cfg.processes,
                  "open_files": cfg.open_files, "core_bytes": 0}
        return {"name": step.name, "argv": list(step.argv), "python": step.python, "env": step.env,
                "timeout_s": timeout, "limits": limits, "stdin": "" if step.is_build else nonce + "\n"}

    def warn_once(self, key: str, message: str) -> None:
        with self._lock:
            if key not in self._warned:
                self._warned.add(key)
                log.warning(message)  # without logging set up, Python's last-resort handler prints it
