"""Sandboxed execution of model-written code, and execution-verified filtering (``oc-synth verify``).

Python API (the generation pipeline and the eval harness use these; docs/sandbox.md has the design and threat model)::

    from oc_synth.sandbox import Sandbox, SandboxConfig, build_program, verify_records

    # records in, records with verdicts out (streaming, input order kept)
    for rec in verify_records(records, workers=2, timeout=10):
        rec["verdict"], rec["passed"], rec["verdict_detail"], rec["stderr_tail"], rec["runtime_s"]

    # programs in, RunResults out; one pool for many calls
    with Sandbox(SandboxConfig(workers=2, timeout_s=10)) as sb:
        program = build_program("python", code, tests)       # or "c", "cpp", "javascript", "java", "rust", "shell"
        result = sb.run(program)                              # thread-safe
        results = sb.run_many(programs)                       # list, parallel over the slots
        for result in sb.imap(programs): ...                  # streaming, in order

``RunResult``: ``verdict`` (passed | failed | timeout | error | no_tests), ``passed``, ``detail``, ``runtime_s``,
``stderr_tail``, ``stdout_tail``, ``steps`` (the raw per-step reports), ``record_fields()``. Verdict rules:
``checks``. Languages and how programs are built: ``languages``. The jail itself: ``jail/``.

Containment (as root): each worker slot is a warm system interpreter (a "zygote") that entered a private mount and
network namespace whose root is a read-only view of only the interpreter, its stdlib and the toolchain, plus a
private tmpfs /tmp. Every program runs in a fresh PID and IPC namespace, as the slot's own unprivileged uid, with
rlimits, a scrubbed environment and a wall-clock timeout; the slot sits in a memory cgroup. Not root: rlimits,
timeout and a temp dir only, with a loud warning (``isolation="rlimits"``).

The pipeline stage (``stage.VerifyStage``, ``stage.run_verify``) lives apart: it imports NeMo Curator.
"""

from oc_common.errors import SandboxError
from oc_synth.sandbox.checks import VERDICTS, Verdict
from oc_synth.sandbox.config import SandboxConfig
from oc_synth.sandbox.languages import Program, Step, UnsupportedLanguage, available_languages, build_program
from oc_synth.sandbox.runner import RunResult, Sandbox
from oc_synth.sandbox.verify import verify_records

__all__ = ["VERDICTS", "Program", "RunResult", "Sandbox", "SandboxConfig", "SandboxError", "Step",
           "UnsupportedLanguage", "Verdict", "available_languages", "build_program", "verify_records"]
