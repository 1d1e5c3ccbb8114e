"""Verdicts: the "tests exercise the code" rule and the classification of a sandbox run.

Verdicts (``verdict_detail`` says why, in a few words):

- ``passed``: every step exited 0 and the run shows that the tests ran to their end and asserted something.
- ``failed``: the tests ran and did not pass (an assertion or other exception in the tests, a non-zero exit status,
  a crash, a memory or output limit hit), or the program ended before its tests finished.
- ``timeout``: a step hit its wall-clock limit (or RLIMIT_CPU).
- ``error``: the program could not be built or loaded: a syntax or compile error, an exception in the *code* part
  (before any test ran), an unsupported language or missing toolchain, a malformed record, a sandbox failure.
- ``no_tests``: the tests do not exercise the code. Python: the tests (AST) never mention a name the code defines
  (a function, class or variable bound at module level, and not redefined by the tests), or no ``assert`` (nor
  ``unittest`` assertion) ran. Other languages: see ``languages`` (a defined name is mentioned, an assertion construct
  is present, and for JavaScript and shell a completion marker after the tests).
"""

from __future__ import annotations

import ast
import re
import signal
from dataclasses import dataclass

from oc_synth.sandbox.jail.protocol import PHASE_DONE, PHASE_TESTS
from oc_synth.sandbox.languages import KEYWORDS, Language, Program, language

VERDICTS = ("passed", "failed", "timeout", "error", "no_tests")
_IDENT = re.compile(r"[A-Za-z_$][\w$]*")


@dataclass(frozen=True)
class Verdict:
    verdict: str
    detail: str

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"


# -- static rule (before running) -----------------------------------------------------------------------------------

def _module_bindings(body: list[ast.stmt]) -> set[str]:
    """Names bound at module level: defs, classes, assignments (also inside top-level if/try/with/for blocks)."""
    names: set[str] = set()

    def targets(node: ast.AST) -> None:
        for n in ast.walk(node):
            if isinstance(n, ast.Name):
                names.add(n.id)

    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(stmt.name)
        elif isinstance(stmt, ast.Assign):
            for t in stmt.targets:
                targets(t)
        elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
            targets(stmt.target)
        elif isinstance(stmt, (ast.For, ast.AsyncFor)):
            targets(stmt.target)
        for field in ("body", "orelse", "finalbody"):
            if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names |= _module_bindings(getattr(stmt, field, []) or [])
        for handler in getattr(stmt, "handlers", []) or []:
            names |= _module_bindings(handler.body)
    return names


def _parse(src: str, part: str) -> ast.Module | Verdict:
    try:
        return ast.parse(src)
    except SyntaxError as e:
        return Verdict("error", f"syntax error in {part}: {e.msg} (line {e.lineno})")
    except (ValueError, RecursionError, MemoryError) as e:  # NUL bytes (older 3.11), absurd nesting
        return Verdict("error", f"cannot parse the {part}: {type(e).__name__}: {e}"[:200])


def python_static_verdict(code: str, tests: str) -> Verdict | None:
    code_tree, tests_tree = _parse(code, "code"), _parse(tests, "tests")
    for parsed in (code_tree, tests_tree):
        if isinstance(parsed, Verdict):
            return parsed
    defined = _module_bindings(code_tree.body) - _module_bindings(tests_tree.body)
    used = {n.id for n in ast.walk(tests_tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    if not defined & used:
        return Verdict("no_tests", "tests reference nothing the code defines")
    return None


def _blank(src: str, lang: Language) -> str:
    return re.sub(lang.comment_and_string, " ", src, flags=re.S)


def regex_static_verdict(lang: Language, code: str, tests: str) -> Verdict | None:
    code_b, tests_b = _blank(code, lang), _blank(tests, lang)
    defined: set[str] = set()
    for pattern in lang.definitions:
        defined.update(m.group(1) for m in re.finditer(pattern, code_b, flags=re.M))
    defined -= KEYWORDS
    if not defined & set(_IDENT.findall(tests_b)):
        return Verdict("no_tests", "tests reference nothing the code defines")
    if not re.search(lang.assertion, tests_b, flags=re.M):
        return Verdict("no_tests", "tests contain no assertion")
    return None


def static_verdict(program: Program) -> Verdict | None:
    """A verdict known without running the program (else None)."""
    if not program.tests.strip():
        return Verdict("no_tests", "empty tests")
    for part, text in (("code", program.code), ("tests", program.tests)):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            return Verdict("error", f"the {part} is not valid Unicode ({e.reason} at character {e.start})")
    lang = language(program.language)
    if lang.name == "python":
        return python_static_verdict(program.code, program.tests)
    return regex_static_verdict(lang, program.code, program.tests)


# -- classification of a run ----------------------------------------------------------------------------------------

def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


_HEADLINE = re.compile(r"error|assert|panic|exception|failed", re.I)


def _headline(text: str) -> str:
    """The line of a toolchain's stderr that says what went wrong (compilers and runtimes put notes after it)."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    hits = [ln for ln in lines if _HEADLINE.search(ln)]
    return (hits[0] if hits else lines[-1] if lines else "")[:200]


def _limit_verdict(step: dict, oom_killed: bool) -> Verdict | None:
    """Timeouts and resource-limit deaths, common to every language."""
    what = "compile step" if step["name"] == "build" else "program"
    if step["timed_out"]:
        return Verdict("timeout", f"{what} exceeded its wall-clock limit")
    sig = step["signal"]
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and step["cpu_s"] >= step["cpu_limit_s"]):
        return Verdict("timeout", f"{what} exceeded its CPU-time limit")
    if "setup_failed" in step["report"]:
        return Verdict("error", f"sandbox could not start the {what}: {_last_line(step['stderr_tail'])}")
    if sig == signal.SIGKILL and oom_killed:
        return Verdict("failed", "killed by the memory limit")
    if sig == signal.SIGXFSZ:
        return Verdict("failed", "file-size/output limit exceeded")
    return None


def _classify_python(step: dict) -> Verdict:
    report, code, sig = step["report"], step["exit_code"], step["signal"]
    reached_tests = PHASE_TESTS in report
    done = [ln for ln in report if ln.startswith(PHASE_DONE + " ")]
    if "error_in_code" in report:
        return Verdict("error", f"exception in code: {_last_line(step['stderr_tail'])}")
    if "exit_in_code" in report:
        return Verdict("failed", f"the code part exited (status {code}) before the tests ran")
    if sig is not None:
        where = "during the tests" if reached_tests else "while loading the code"
        return Verdict("failed" if reached_tests else "error", f"killed by {_signal_name(sig)} {where}")
    if done and code == 0:
        n = int(done[-1].split()[1])
        return Verdict("passed", f"{n} asserts ran") if n else Verdict("no_tests", "no assert ran")
    if "failed_in_tests" in report:
        return Verdict("failed", _last_line(step["stderr_tail"]) or f"exit status {code}")
    if code == 0:
        return Verdict("failed", "the program exited before its tests finished")
    return Verdict("failed", f"exit status {code}")


def classify(program: Program, steps: list[dict], oom_killed: bool = False) -> Verdict:
    """The verdict of a finished run. ``steps`` are the jail's step reports (it stops at the first failing one), each
    with the ``cpu_limit_s`` it ran under."""
    lang = language(program.language)
    if not steps:
        return Verdict("error", "sandbox ran no step")
    for step in steps:
        limited = _limit_verdict(step, oom_killed)
        if limited is not None:
            return limited
        if step["name"] == "build" and step["exit_code"] != 0:
            return Verdict("error", f"compile error: {_headline(step['stderr_tail'] or step['stdout_tail'])}")
    run = steps[-1]
    if run["name"] != "run":
        return Verdict("error", "sandbox stopped before the run step")
    if lang.name == "python":
        return _classify_python(run)
    if run["signal"] is not None:
        return Verdict("failed", f"killed by {_signal_name(run['signal'])}")
    if run["exit_code"] != 0:
        return Verdict("failed", f"exit status {run['exit_code']}: {_headline(run['stderr_tail'])}".rstrip(": "))
    if lang.marker and PHASE_DONE not in run["report"]:
        return Verdict("failed", "the program exited before its tests finished")
    return Verdict("passed", "exit status 0")
