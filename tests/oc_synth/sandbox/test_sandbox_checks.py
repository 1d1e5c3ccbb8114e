"""The "tests exercise the code" rule and the run classification, without running anything."""

import signal

import pytest

from oc_synth.sandbox import Program
from oc_synth.sandbox.checks import classify, python_static_verdict, regex_static_verdict, static_verdict
from oc_synth.sandbox.languages import LANGUAGES


@pytest.mark.parametrize("code, tests, expected", [
    ("def f(x):\n    return x\n", "assert f(1) == 1", None),
    ("class Solution:\n    def go(self): return 1\n", "assert Solution().go() == 1", None),
    ("import sys\nif sys:\n    def f(): return 1\n", "assert f() == 1", None),  # defined inside a top-level if
    ("LIMIT = 3\n", "assert LIMIT == 3", None),
    ("def f(x):\n    return x\n", "assert 1 == 1", "no_tests"),  # never mentions f
    ("def f(x):\n    return x\n", "def f(x):\n    return 1\nassert f(1) == 1", "no_tests"),  # tests their own f
    ("from math import sqrt\n", "assert sqrt(4) == 2", "no_tests"),  # an import is not code the sample defines
    ("def f(:\n", "assert f()", "error"),
    ("def f(): return 1\n", "assert f(", "error"),
    ("def f(): return 1\n\0", "assert f()", "error"),
    ("x = " + "(" * 5000 + ")" * 5000, "assert x", "error"),
])
def test_python_static_rule(code, tests, expected):
    v = python_static_verdict(code, tests)
    assert (v.verdict if v else None) == expected


def _program(lang, code="", tests=""):
    return Program(lang, code, tests, files={}, steps=())  # classification needs no toolchain


def test_empty_tests_are_no_tests_in_every_language():
    for name in LANGUAGES:
        v = static_verdict(_program(name, "def f(): pass", "  \n"))
        assert v.verdict == "no_tests" and v.detail == "empty tests"


@pytest.mark.parametrize("lang, code, tests, expected", [
    ("c", "int add(int a, int b) { return a + b; }", "int main(){ assert(add(1,2)==3); }", None),
    ("c", "int add(int a, int b) { return a + b; }", "int main(){ assert(1==1); }", "no_tests"),
    ("c", "int add(int a, int b) { return a + b; }", "int main(){ return add(1,2) == 3 ? 0 : 0; }", "no_tests"),
    ("c", "int add(int a, int b) { return a + b; }", '// add(1,2)\nint main(){ assert(1); }', "no_tests"),
    ("cpp", "struct Stack { int n; };", "int main(){ Stack s{1}; if (s.n != 1) throw 1; }", None),
    ("javascript", "const twice = x => 2 * x;", "const assert = require('assert'); assert.equal(twice(2), 4);",
     None),
    ("javascript", "function twice(x) { return 2 * x }", "console.assert(twice(2) === 4)", "no_tests"),
    ("javascript", "function twice(x) { return 2 * x }", "assert('twice(2)')", "no_tests"),  # only in a string
    ("java", "class Solution { static int twice(int x) { return 2 * x; } }",
     "public class Main { public static void main(String[] a) { assert Solution.twice(2) == 4; } }", None),
    ("rust", "fn twice(x: i32) -> i32 { 2 * x }", "fn main() { assert_eq!(twice(2), 4); }", None),
    ("rust", "fn twice(x: i32) -> i32 { 2 * x }", "fn main() { println!(\"{}\", twice(2)); }", "no_tests"),
    ("shell", "twice() { echo $(( 2 * $1 )); }", '[ "$(twice 2)" = 4 ]', None),
    ("shell", "twice() { echo $(( 2 * $1 )); }", "echo hello", "no_tests"),
])
def test_regex_static_rule(lang, code, tests, expected):
    v = regex_static_verdict(LANGUAGES[lang], code, tests)
    assert (v.verdict if v else None) == expected


def test_text_that_is_not_unicode_is_an_error_not_a_crash():
    v = static_verdict(_program("python", "def f():\n    return '\ud800'\n", "assert f()"))
    assert v.verdict == "error" and "not valid Unicode" in v.detail


def _step(name="run", exit_code=0, sig=None, timed_out=False, report=(), stderr="", cpu_s=0.1):
    return {"name": name, "exit_code": exit_code, "signal": sig, "timed_out": timed_out, "runtime_s": 0.1,
            "cpu_s": cpu_s, "cpu_limit_s": 5, "stdout_tail": "", "stderr_tail": stderr, "report": list(report)}


PY = _program("python")
JS = _program("javascript")


@pytest.mark.parametrize("steps, oom, verdict, detail_part", [
    ([_step(report=["code", "tests", "done 3"])], False, "passed", "3 asserts"),
    ([_step(report=["code", "tests", "done 0"])], False, "no_tests", "no assert ran"),
    ([_step(exit_code=0, report=["code", "exit_in_code"])], False, "failed", "before the tests ran"),
    ([_step(exit_code=1, report=["code", "error_in_code"], stderr="Traceback\nNameError: x")], False, "error",
     "NameError"),
    ([_step(exit_code=1, report=["code", "tests", "failed_in_tests"], stderr="AssertionError")], False, "failed",
     "AssertionError"),
    ([_step(exit_code=0, report=["code", "tests"])], False, "failed", "before its tests finished"),
    ([_step(exit_code=None, timed_out=True, sig=signal.SIGKILL)], False, "timeout", "wall-clock"),
    ([_step(exit_code=None, sig=signal.SIGXCPU)], False, "timeout", "CPU"),
    ([_step(exit_code=None, sig=signal.SIGKILL, cpu_s=5.2)], False, "timeout", "CPU"),
    ([_step(exit_code=None, sig=signal.SIGKILL, report=["code", "tests"])], True, "failed", "memory limit"),
    ([_step(exit_code=None, sig=signal.SIGSEGV, report=["code"])], False, "error", "SIGSEGV while loading"),
    ([_step(exit_code=125, report=["setup_failed"], stderr="[sandbox] step setup failed: X")], False, "error",
     "sandbox could not start"),
    ([], False, "error", "no step"),
])
def test_classify_python(steps, oom, verdict, detail_part):
    v = classify(PY, steps, oom_killed=oom)
    assert v.verdict == verdict and detail_part in v.detail


def test_classify_compiled_and_marker_languages():
    c = _program("c")
    assert classify(c, [_step("build", exit_code=1, stderr="main.c:1: error: expected ';'\nnote: x")]).detail \
        == "compile error: main.c:1: error: expected ';'"
    assert classify(c, [_step("build", exit_code=None, timed_out=True)]).verdict == "timeout"
    assert classify(c, [_step("build"), _step(exit_code=None, sig=signal.SIGABRT)]).detail == "killed by SIGABRT"
    assert classify(c, [_step("build"), _step()]).verdict == "passed"
    assert classify(JS, [_step()]).detail == "the program exited before its tests finished"  # no marker
    assert classify(JS, [_step(report=["done"])]).verdict == "passed"
