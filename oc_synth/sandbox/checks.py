"""Verdicts: what ``passed`` means, the static rules checked before a run, and the classification of a run.

``VERDICTS`` is the one list of verdicts in the project (``oc_synth.synth.verification`` uses it). Each verdict
comes with a ``reason`` (a short, stable code, counted per verdict in the stats table) and a ``detail`` (a few
words for a person). docs/sandbox.md says what each verdict guarantees in each language.

- ``passed``: the tests ran, ran to their end (the harness's nonce marker, ``harness``), no check in them failed
  (not even one they caught), and at ``strictness`` standard or strict a check in them could have failed: a sanity
  mutant of the code (``mutants``) does not pass them.
- ``failed``: the tests ran and did not pass: an assertion or other exception (caught or not), a non-zero exit
  status, a crash, a memory or output limit, or the program ended before its tests did.
- ``timeout``: a step hit its wall-clock limit (or RLIMIT_CPU).
- ``error``: the program could not be built or loaded: a syntax or compile error, an exception in the *code* part
  (before any test ran), an unsupported language or missing toolchain, a malformed record, a sandbox failure.
- ``no_tests``: the tests do not exercise the code: they mention nothing it defines, hold no assertion, no assert
  (or test) ran, or there is nothing to run them (``main`` in the code part, no ``main`` and no test function).
- ``weak_tests``: the tests ran and passed but could not have failed: a sanity mutant passes them too, or a static
  check found checks that cannot fail (an always-true tuple assert, ``assert`` or ``[`` redefined, a handler that
  swallows failing checks).
"""

from __future__ import annotations

import ast
import re
import signal
from dataclasses import dataclass
from typing import Literal

from oc_synth.sandbox.jail.protocol import ASSERT_FAILED, EXIT_EARLY, PHASE_DONE, PHASE_TESTS, TEST_FAILED
from oc_synth.sandbox.languages import KEYWORDS, Language, Program, blank, language

VERDICTS = ("passed", "failed", "timeout", "error", "no_tests", "weak_tests")
Strictness = Literal["basic", "standard", "strict"]
STRICTNESS = ("basic", "standard", "strict")
_IDENT = re.compile(r"[A-Za-z_$][\w$]*")


@dataclass(frozen=True)
class Verdict:
    verdict: str
    detail: str
    reason: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"


# -- static rules (before running) ----------------------------------------------------------------------------------

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
        return Verdict("error", f"syntax error in {part}: {e.msg} (line {e.lineno})", "syntax_error")
    except (ValueError, RecursionError, MemoryError) as e:  # NUL bytes (older 3.11), absurd nesting
        return Verdict("error", f"cannot parse the {part}: {type(e).__name__}: {e}"[:200], "syntax_error")


def python_static_verdict(code: str, tests: str, strictness: Strictness = "standard") -> Verdict | None:
    code_tree, tests_tree = _parse(code, "code"), _parse(tests, "tests")
    for parsed in (code_tree, tests_tree):
        if isinstance(parsed, Verdict):
            return parsed
    defined = _module_bindings(code_tree.body) - _module_bindings(tests_tree.body)
    used = {n.id for n in ast.walk(tests_tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    if not defined & used:
        return Verdict("no_tests", "tests reference nothing the code defines", "no_reference")
    if strictness != "basic":
        for node in ast.walk(tests_tree):
            if isinstance(node, ast.Assert) and isinstance(node.test, ast.Tuple) and node.test.elts:
                return Verdict("weak_tests", f"vacuous assert at tests line {node.lineno}: a non-empty tuple is "
                                             "always true (assert (x, 'msg') instead of assert x, 'msg')",
                               "vacuous_assert")
    return None


def regex_static_verdict(lang: Language, code: str, tests: str) -> Verdict | None:
    code_b, tests_b = blank(code, lang), blank(tests, lang)
    defined: set[str] = set()
    for pattern in lang.definitions:
        defined.update(m.group(1) for m in re.finditer(pattern, code_b, flags=re.M))
    defined -= KEYWORDS
    if not defined & set(_IDENT.findall(tests_b)):
        return Verdict("no_tests", "tests reference nothing the code defines", "no_reference")
    if not re.search(lang.assertion, tests_b, flags=re.M):
        return Verdict("no_tests", "tests contain no assertion", "no_assertion")
    return None


_C_MAIN = re.compile(r"\bmain\s*\([^;{}()]*\)\s*\{")
_RUST_MAIN = re.compile(r"\bfn\s+main\s*\(")


def entry_verdict(program: Program) -> Verdict | None:
    """Is there something that runs the tests? (``main`` in the code part runs the code's demo, not the tests.)"""
    lang = language(program.language)
    code_b = blank(program.code, lang)
    if lang.name in ("c", "cpp") and _C_MAIN.search(code_b):
        return Verdict("no_tests", "main() is in the code part: the tests' checks would never run (put main in the "
                                   "tests)", "main_in_code")
    if lang.name == "rust" and not program.meta.get("has_entry"):
        if _RUST_MAIN.search(code_b):
            return Verdict("no_tests", "fn main is in the code part and the tests have neither fn main nor #[test] "
                                       "functions", "main_in_code")
        return Verdict("no_tests", "the tests have neither fn main nor #[test] functions", "no_test_entry")
    if lang.name == "java" and not program.meta.get("has_entry"):
        return Verdict("no_tests", "the tests have no main method and no test method", "no_test_entry")
    return None


# Definitions that make a check unable to fail: (languages, pattern on blanked code + tests, what it does).
_REDEFINITIONS = (
    (("c", "cpp"), r"#\s*(?:define|undef)\s+assert\b", "redefines assert()"),
    (("javascript",), r"\b(?:function\s+assert\b|(?:const|let|var)\s+assert\s*=\s*(?!require\b)[^;\n]*(?:=>|function))",
     "defines its own assert"),
    (("rust",), r"\bmacro_rules!\s*(?:assert|assert_eq|assert_ne|debug_assert\w*)\b", "redefines an assert macro"),
    (("shell",), r"(?m)^\s*(?:function\s+)?(?:\[|test|exit|false|return|set|printf|trap)\s*(?:\(\s*\)|\{)"
                 r"|^\s*function\s+(?:\[|test|exit|false|return|set|printf|trap)\b"
                 r"|\benable\s+-n\b|\balias\s+(?:\[|test|exit|false)=",
     "redefines a builtin the checks rely on ([, test, exit, ...)"),
)

# Broad handlers per language (what catches a failing check) and what in a handler body still fails the run.
_CATCH = {
    "cpp": (r"\.\.\.|\b(?:std::)?(?:exception|runtime_error|logic_error)\b", r"\bthrow\b"),
    "java": (r"\b(?:AssertionError|Error|Throwable)\b", r"\bassert\b"),
    "javascript": (r".*", r"\bthrow\b|\bassert\b"),
}
_HANDLER_FAILS = r"\bthrow\b|\bexit\s*\(|\babort\s*\(|\breturn\b|\bassert\b|\bfail\s*\(|\bprocess\.exit|\bexitCode\b" \
                 r"|\+\+|--|[^=!<>]=[^=]|\bSystem\.exit\b|\bhalt\s*\("


_CATCH_CLAUSE = re.compile(r"\s*catch\s*(?:\(([^)]*)\))?\s*\{")


def _balanced(text: str, open_at: int) -> str:
    """The text between the brace at ``open_at`` and its match."""
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1:i]
    return text[open_at + 1:]


def swallowing_handler(lang_name: str, blanked_tests: str) -> str | None:
    """A ``catch`` that catches a failing check around one and does nothing that fails: its source, or None."""
    if lang_name not in _CATCH:
        return None
    catches, checks = _CATCH[lang_name]
    for m in re.finditer(r"\btry\s*\{", blanked_tests):
        body = _balanced(blanked_tests, m.end() - 1)
        after = m.end() - 1 + len(body) + 2
        if not re.search(checks, body):
            continue
        while (h := _CATCH_CLAUSE.match(blanked_tests, after)) is not None:
            handler = _balanced(blanked_tests, h.end() - 1)
            if re.search(catches, h.group(1) or "") and not re.search(_HANDLER_FAILS, handler):
                return f"catch ({(h.group(1) or '').strip()})"
            after = h.end() + len(handler) + 1
    return None


def weak_static_verdict(program: Program) -> Verdict | None:
    """Checks that cannot fail, found without running (strictness standard and strict)."""
    lang = language(program.language)
    both = blank(program.code, lang) + "\n" + blank(program.tests, lang)
    for langs, pattern, what in _REDEFINITIONS:
        if lang.name in langs and re.search(pattern, both):
            return Verdict("weak_tests", f"the sample {what}: its checks cannot fail", "assert_redefined")
    tests_b = blank(program.tests, lang)
    handler = swallowing_handler(lang.name, tests_b)
    if handler:
        return Verdict("weak_tests", f"{handler} around a check swallows its failure (the handler neither rethrows "
                                     "nor fails)", "swallowed_failures")
    if lang.name == "rust" and re.search(r"(?:let\s+_\s*=\s*|^\s*|;\s*)(?:std::)?(?:panic::)?catch_unwind\s*\(",
                                         tests_b, flags=re.M):
        return Verdict("weak_tests", "catch_unwind's result is thrown away: failing asserts inside it cannot fail the "
                                     "tests", "swallowed_failures")
    return None


def static_verdict(program: Program, strictness: Strictness = "standard") -> Verdict | None:
    """A verdict known without running the program (else None)."""
    if not program.tests.strip():
        return Verdict("no_tests", "empty tests", "empty_tests")
    for part, text in (("code", program.code), ("tests", program.tests)):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            return Verdict("error", f"the {part} is not valid Unicode ({e.reason} at character {e.start})",
                           "not_unicode")
    lang = language(program.language)
    if lang.name == "python":
        return python_static_verdict(program.code, program.tests, strictness)
    found = regex_static_verdict(lang, program.code, program.tests) or entry_verdict(program)
    if found is None and strictness != "basic":
        found = weak_static_verdict(program)
    return found


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
        return Verdict("timeout", f"{what} exceeded its wall-clock limit", "wall_clock")
    sig = step["signal"]
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and step["cpu_s"] >= step["cpu_limit_s"]):
        return Verdict("timeout", f"{what} exceeded its CPU-time limit", "cpu_time")
    if "setup_failed" in step["report"]:
        return Verdict("error", f"sandbox could not start the {what}: {_last_line(step['stderr_tail'])}",
                       "sandbox_failure")
    if sig == signal.SIGKILL and oom_killed:
        return Verdict("failed", "killed by the memory limit", "memory_limit")
    if sig == signal.SIGXFSZ:
        return Verdict("failed", "file-size/output limit exceeded", "output_limit")
    return None


def _lines(report: list[str], kind: str) -> list[str]:
    return [ln[len(kind) + 1:] if ln.startswith(kind + " ") else "" for ln in report
            if ln == kind or ln.startswith(kind + " ")]


def _done(report: list[str], nonce: str | None) -> list[str] | None:
    """The fields after the nonce of a genuine end-of-tests marker, or None if there is none."""
    for rest in _lines(report, PHASE_DONE):
        fields = rest.split()
        if nonce is None or (fields and fields[0] == nonce):
            return fields[1:] if nonce is not None else fields
    return None


def _recorded_failure(report: list[str], exit_code: int | None) -> Verdict | None:
    """An assertion or test failure the harness saw (reported before the tests could catch it)."""
    failed = _lines(report, ASSERT_FAILED)
    errors = _lines(report, TEST_FAILED)
    if not failed and not errors:
        return None
    where = (failed or errors)[0]
    if exit_code == 0:
        what = f"an assertion failed ({where})" if failed else f"a test failed ({where})"
        return Verdict("failed", f"{what} yet the program exited 0 (the failure was caught, in a thread, or in a "
                                 "test the harness ran)", "caught_failure")
    return None


def _classify_python(step: dict, nonce: str | None) -> Verdict:
    report, code, sig = step["report"], step["exit_code"], step["signal"]
    reached_tests = PHASE_TESTS in report
    if "error_in_code" in report:
        return Verdict("error", f"exception in code: {_last_line(step['stderr_tail'])}", "exception_in_code")
    if "exit_in_code" in report:
        return Verdict("failed", f"the code part exited (status {code}) before the tests ran", "exit_in_code")
    if sig is not None:
        where = "during the tests" if reached_tests else "while loading the code"
        return Verdict("failed" if reached_tests else "error", f"killed by {_signal_name(sig)} {where}",
                       "signal" if reached_tests else "crash_in_code")
    recorded = _recorded_failure(report, code)
    if recorded is not None:
        return recorded
    early = _lines(report, EXIT_EARLY)
    if early:
        return Verdict("failed", f"SystemExit(0) at {early[0]} ended the program before its tests did",
                       "exited_early")
    done = _done(report, nonce)
    if done is not None and code == 0:
        n = int(done[-1]) if done and done[-1].isdigit() else 0
        if n:
            return Verdict("passed", f"{n} asserts ran", "asserts_ran")
        return Verdict("no_tests", "no assert ran", "no_assert_ran")
    if "failed_in_tests" in report:
        return Verdict("failed", _last_line(step["stderr_tail"]) or f"exit status {code}",
                       "assertion_failed" if "AssertionError" in step["stderr_tail"] else "exception")
    if code == 0:
        return Verdict("failed", "the program exited before its tests finished", "exited_early")
    return Verdict("failed", f"exit status {code}", "exit_status")


_LIBTEST_SUMMARY = re.compile(r"^test result: (\w+)\. (\d+) passed; (\d+) failed", re.M)


def _classify_native(program: Program, run: dict, nonce: str | None) -> Verdict:
    report = run["report"]
    failed = _lines(report, ASSERT_FAILED)
    if run["signal"] is not None:
        if failed:
            return Verdict("failed", f"assertion failed at {failed[0]}", "assertion_failed")
        return Verdict("failed", f"killed by {_signal_name(run['signal'])}", "signal")
    if run["exit_code"] != 0:
        # libtest prints a failing test's panic on stdout
        said = run["stderr_tail"] + ("\n" + run["stdout_tail"] if program.meta.get("libtest") else "")
        reason = "assertion_failed" if failed or re.search(r"assert|panicked", said) else "exit_status"
        return Verdict("failed", f"exit status {run['exit_code']}: {_headline(said)}".rstrip(": "), reason)
    recorded = _recorded_failure(report, 0)
    if recorded is not None:
        return recorded
    done = _done(report, nonce)
    if done is None:
        return Verdict("failed", "the program exited (status 0) before its tests finished", "exited_early")
    if program.meta.get("libtest"):
        summaries = _LIBTEST_SUMMARY.findall(run["stdout_tail"])
        ran = int(summaries[-1][1]) - 1 if summaries else 0  # less the marker test
        if ran <= 0:
            return Verdict("no_tests", "no #[test] function ran (all ignored or filtered)", "no_test_ran")
        return Verdict("passed", f"{ran} #[test] functions passed (libtest)", "tests_passed")
    asserts = int(done[0]) if done and done[0].isdigit() else None
    if program.meta.get("expects_asserts") and asserts == 0:
        return Verdict("no_tests", "no assert ran (the tests' checks are asserts)", "no_assert_ran")
    called = program.meta.get("uncalled")
    detail = f"{asserts} asserts ran" if asserts else "the tests ran to their end"
    if called:
        detail += f" (and {', '.join(called)}, which the tests never called)"
    return Verdict("passed", detail, "tests_passed")


def classify(program: Program, steps: list[dict], oom_killed: bool = False, nonce: str | None = None) -> Verdict:
    """The verdict of a finished run. ``steps`` are the jail's step reports (it stops at the first failing one), each
    with the ``cpu_limit_s`` it ran under; ``nonce`` is the one the harness got for this run (None: any marker)."""
    if not steps:
        return Verdict("error", "sandbox ran no step", "sandbox_failure")
    for step in steps:
        limited = _limit_verdict(step, oom_killed)
        if limited is not None:
            return limited
        if step["name"] == "build" and step["exit_code"] != 0:
            return Verdict("error", f"compile error: {_headline(step['stderr_tail'] or step['stdout_tail'])}",
                           "compile_error")
    run = steps[-1]
    if run["name"] != "run":
        return Verdict("error", "sandbox stopped before the run step", "sandbox_failure")
    if language(program.language).name == "python":
        return _classify_python(run, nonce)
    return _classify_native(program, run, nonce)

