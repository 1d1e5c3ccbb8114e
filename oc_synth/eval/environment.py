"""What the sandbox's interpreter can import, asked of the sandbox itself (so it sees exactly what samples will)."""

from __future__ import annotations

import ast
from collections.abc import Iterable

from oc_common.errors import OcError
from oc_common.log import get_logger
from oc_synth.eval.problems import Problem
from oc_synth.sandbox import Sandbox, SandboxConfig, build_program

log = get_logger(__name__)


def imported_modules(sources: Iterable[str]) -> list[str]:
    """The top-level modules Python ``sources`` import (absolute imports anywhere; unparsable sources skipped)."""
    names: set[str] = set()
    for source in sources:
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return sorted(names)


def missing_modules(modules: Iterable[str], sandbox: SandboxConfig) -> list[str]:
    """Those of ``modules`` the sandbox's interpreter cannot import."""
    modules = sorted(set(modules))
    if not modules:
        return []
    programs = [build_program("python", f"import {m}\n_oc_imported = True\n", "assert _oc_imported\n", id=m)
                for m in modules]
    probe = sandbox.model_copy(update={"workers": min(sandbox.workers, len(programs)), "strictness": "basic"})
    with Sandbox(probe) as sb:
        results = [r for r in sb.imap(programs) if not r.passed]
    # Only an import error means a missing module; anything else is the sandbox's own trouble, which the samples'
    # verdicts will show in full.
    missing = [r.id for r in results if "ModuleNotFoundError" in r.detail or "ImportError" in r.detail]
    for r in results:
        if r.id not in missing:
            log.warning("sandbox check of `import %s` gave %s (%s)", r.id, r.verdict, r.detail)
    return missing


def require_test_modules(problems: list[Problem], sandbox: SandboxConfig) -> None:
    """Fail before generating if the tests need a module the sandbox cannot import.

    EvalPlus's HumanEval+ / MBPP+ tests import numpy; without it every sample would fail and the score would read 0
    with nothing wrong with the model.
    """
    missing = missing_modules(imported_modules(p.tests for p in problems if p.language == "python"), sandbox)
    if missing:
        raise OcError(
            f"the tests import {', '.join(missing)}, which the sandbox's interpreter ({sandbox.python}) cannot "
            "import. For numpy (EvalPlus tests): apt-get install python3-numpy, then pass --sandbox-ro-path "
            "/usr/lib/python3/dist-packages so the sandbox sees it (see docs/eval.md)")
