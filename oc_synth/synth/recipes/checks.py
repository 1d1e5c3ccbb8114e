"""Checks on a parsed sample, before anything is executed. A recipe lists them by name with their parameters:

    checks:
      - {check: min_asserts, field: tests, count: 10}
      - {check: tests_call_code}

Each check returns None (pass) or a short reason; the sample is then dropped with ``check:<name>`` and the reason
is kept in ``drop_details``. They are cheap static filters: execution is the sandbox's job.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from typing import Any

Check = Callable[..., "str | None"]
CHECKS: dict[str, Check] = {}


def check(name: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKS[name] = fn
        return fn

    return register


def _text(record: dict[str, Any], field: str) -> str:
    v = record.get(field)
    return v if isinstance(v, str) else "" if v is None else str(v)


@check("required")
def required(record: dict[str, Any], *, fields: list[str]) -> str | None:
    """Every field present and not blank."""
    missing = [f for f in fields if not _text(record, f).strip()]
    return f"empty field(s): {', '.join(missing)}" if missing else None


@check("min_chars")
def min_chars(record: dict[str, Any], *, field: str, chars: int) -> str | None:
    n = len(_text(record, field).strip())
    return f"{field} has {n} characters, need at least {chars}" if n < chars else None


@check("max_chars")
def max_chars(record: dict[str, Any], *, field: str, chars: int) -> str | None:
    n = len(_text(record, field))
    return f"{field} has {n} characters, at most {chars} allowed" if n > chars else None


@check("regex")
def regex(record: dict[str, Any], *, field: str, pattern: str, must: str = "match") -> str | None:
    """``must: match`` (the field has to contain the pattern) or ``must: not_match`` (placeholders, refusals)."""
    found = re.search(pattern, _text(record, field), re.MULTILINE) is not None
    if must == "match" and not found:
        return f"{field} does not match {pattern!r}"
    if must == "not_match" and found:
        return f"{field} matches {pattern!r}"
    if must not in ("match", "not_match"):
        raise ValueError(f"regex check: must is match or not_match, got {must!r}")
    return None


@check("mentions_any")
def mentions_any(record: dict[str, Any], *, field: str, value_of: str) -> str | None:
    """``field`` names at least one of the items listed in another field (a list, or text separated by commas or
    spaces) by its last dotted part as a word: e.g. the code calls one of the APIs a Package-Instruct seed uses
    (``nsmallest`` for ``heapq.nsmallest``)."""
    value = record.get(value_of)
    items = value if isinstance(value, list) else re.split(r"[,\s]+", _text(record, value_of))
    names = [str(item).strip().rsplit(".", 1)[-1] for item in items if str(item).strip()]
    if not names:
        return None
    text = _text(record, field)
    if any(re.search(rf"(?<![\w$]){re.escape(name)}(?![\w$])", text) for name in names):
        return None
    return f"{field} uses none of {', '.join(names)} ({value_of})"


@check("contains")
def contains(record: dict[str, Any], *, field: str, value_of: str) -> str | None:
    """``field`` contains the value of another field (e.g. the code uses the package the seed is about)."""
    needle = _text(record, value_of).strip()
    if needle and needle not in _text(record, field):
        return f"{field} does not mention {value_of} {needle!r}"
    return None


# assert x, assert(x), assert.equal(...), assert_eq!(...), assertEquals(...), console.assert(...), static_assert(...)
# (not "const assert = require('assert')")
_ASSERT = re.compile(r"\b(?:static_)?assert(?:\.\w+|_\w+|[A-Z]\w*)?!?\s*(?:\(|\s)(?!\s*=[^=])")


# shell checks: [ ... ], [[ ... ]], test ...
_SHELL_CHECK = re.compile(r"(?<![\w$])(?:\[\[?\s|test\s)")


def count_asserts(tests: str, language: str = "python") -> int:
    """Assertions in test code: Python ``assert`` statements (by syntax tree when the code parses), shell tests
    (``[ ... ]``, ``[[ ... ]]``, ``test``), else a regex that knows the assert spellings of C/C++, Java, JavaScript,
    Rust, Go test helpers and unittest."""
    if language.lower() in ("shell", "bash", "sh"):
        return len(_SHELL_CHECK.findall(tests))
    if language.lower() in ("python", "py", "python3"):
        try:
            tree = ast.parse(tests)
        except SyntaxError:
            pass
        else:
            n = sum(isinstance(node, ast.Assert) for node in ast.walk(tree))
            calls = sum(isinstance(node, ast.Call) and _call_name(node.func).startswith("assert")
                        for node in ast.walk(tree))  # self.assertEqual(...)
            return n + calls
    return len(_ASSERT.findall(tests))


def _call_name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


@check("min_asserts")
def min_asserts(record: dict[str, Any], *, field: str = "tests", count: int = 1,
                language_field: str = "language") -> str | None:
    n = count_asserts(_text(record, field), _text(record, language_field) or "python")
    return f"{field} has {n} assert(s), need at least {count}" if n < count else None


_DEFINITIONS = [
    re.compile(r"\b(?:def|fn|func|function|sub|proc)\s+(?:\([^)]*\)\s*)?([A-Za-z_]\w*)"),  # py/rust/go/js/perl
    re.compile(r"\b(?:class|struct|interface|enum|trait|module|object)\s+([A-Za-z_]\w*)"),
    re.compile(r"\b(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*=\s*(?:async\s*)?(?:function\b|\([^)]*\)\s*=>|\w+\s*=>)"),
    # C, C++, Java, C#: "<type> name(args) {" at the start of a line (methods indented once)
    re.compile(r"^[ \t]*(?:[\w:<>,\[\]\*&]+[ \t]+)+\*?([A-Za-z_]\w*)[ \t]*\([^;{}]*\)[ \t\w]*\{", re.MULTILINE),
    re.compile(r"^[ \t]*([A-Za-z_][\w-]*)[ \t]*\(\s*\)[ \t]*\{", re.MULTILINE),  # shell: "name() {"
]
_NOT_NAMES = frozenset({"if", "for", "while", "switch", "return", "main", "catch", "else", "do", "new", "sizeof"})


def defined_names(code: str, language: str = "python") -> set[str]:
    """Functions and classes a program defines (Python by syntax tree, others by regex)."""
    if language.lower() in ("python", "py", "python3"):
        try:
            tree = ast.parse(code)
        except SyntaxError:
            pass
        else:
            return {n.name for n in ast.walk(tree)
                    if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))} - _NOT_NAMES
    names: set[str] = set()
    for pattern in _DEFINITIONS:
        names.update(pattern.findall(code))
    return names - _NOT_NAMES


@check("tests_call_code")
def tests_call_code(record: dict[str, Any], *, code: str = "code", tests: str = "tests",
                    language_field: str = "language") -> str | None:
    """The tests must use something the code defines: asserts about literals prove nothing about the code."""
    lang = _text(record, language_field) or "python"
    names = defined_names(_text(record, code), lang)
    if not names:
        return f"{code} defines no function or class"
    test_text = _text(record, tests)
    own = defined_names(test_text, lang)  # a test file that redefines the function tests its own copy
    # a call: name( name. name:: name< name{ -- or, in shell, the name as a command word
    call = r"(?![\w-])" if lang.lower() in ("shell", "bash", "sh") else r"\s*(?:\(|\.|::|<|\{)"
    used = {n for n in names - own if re.search(rf"(?<![\w$-]){re.escape(n)}{call}", test_text)}
    return None if used else f"{tests} never call any of {', '.join(sorted(names))}"


def run_checks(record: dict[str, Any], checks: list[dict[str, Any]]) -> tuple[str, str] | None:
    """The first failing check as (name, detail), or None."""
    for spec in checks:
        params = {k: v for k, v in spec.items() if k != "check"}
        detail = CHECKS[spec["check"]](record, **params)
        if detail is not None:
            return spec["check"], detail
    return None
