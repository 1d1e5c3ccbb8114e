"""Without root the sandbox degrades loudly to rlimits + timeout + temp dir; verdicts stay right."""

import logging
import os
import sys
from pathlib import Path

import pytest

from oc_common.errors import SandboxError
from oc_synth.sandbox import Sandbox, SandboxConfig, build_program
from oc_synth.sandbox.runner import RLIMITS_WARNING, choose_isolation

F = "def f(x):\n    return x + 1\n"


def test_isolation_follows_privilege():
    assert choose_isolation("auto", 0) == "namespaces"
    assert choose_isolation("auto", 1000) == "rlimits"
    assert choose_isolation("rlimits", 0) == "rlimits"
    with pytest.raises(SandboxError, match="needs root"):
        choose_isolation("namespaces", 1000)


def test_missing_interpreter_is_a_clear_error():
    with pytest.raises(SandboxError, match="no such interpreter"):
        Sandbox(SandboxConfig(python="/nonexistent/python3"))


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_rlimits_mode_warns_and_keeps_verdicts_right():
    # Any interpreter will do here: nothing is mounted or switched (this process's own one works for non-root CI).
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    collect = _Collect()
    runner_log = logging.getLogger("oc.oc_synth.sandbox.runner")  # "oc" may not propagate to caplog's root
    runner_log.addHandler(collect)
    try:
        sb = Sandbox(SandboxConfig(workers=2, timeout_s=2, isolation="rlimits", python=python))
    finally:
        runner_log.removeHandler(collect)
    with sb:
        assert collect.messages == [RLIMITS_WARNING]
        here = str(Path(__file__).resolve())
        programs = [build_program("python", F, "assert f(1) == 2"),
                    build_program("python", F, "assert f(1) == 3"),
                    build_program("python", F, "f(1)"),
                    build_program("python", "def f():\n    while True:\n        pass\n", "assert f()"),
                    # what is NOT contained in this mode: the host's files are visible
                    build_program("python", f"import os\ndef f():\n    return os.path.exists({here!r})\n",
                                  "assert f() is True")]
        verdicts = [r.verdict for r in sb.run_many(programs)]
    assert verdicts == ["passed", "failed", "no_tests", "timeout", "passed"]


def test_a_run_on_workers_says_how_many_records_ran_degraded():
    """verify on Ray: each worker's own warning stays in its log, so the driver counts the isolation modes."""
    from oc_common.stats import Stats
    from oc_synth.sandbox.stage import warn_degraded

    collect = _Collect()
    stage_log = logging.getLogger("oc.oc_synth.sandbox.stage")
    stage_log.addHandler(collect)
    try:
        full = Stats()
        full.add_to("isolation", "namespaces+seccomp", 5)
        warn_degraded(full)
        assert collect.messages == []
        mixed = Stats()
        mixed.add_to("isolation", "namespaces+seccomp", 5)
        mixed.add_to("isolation", "rlimits", 3)
        warn_degraded(mixed)
    finally:
        stage_log.removeHandler(collect)
    assert len(collect.messages) == 1
    assert "3 of 8 records ran without the full sandbox (rlimits: 3" in collect.messages[0]
    assert "root on every worker node" in collect.messages[0]
