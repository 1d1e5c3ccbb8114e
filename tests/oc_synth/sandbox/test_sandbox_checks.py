"""The static rules (tests exercise the code; checks that cannot fail) and the run classification, without running
anything."""

import signal

import pytest

from oc_synth.sandbox import Program
from oc_synth.sandbox.checks import (
    VERDICTS,
    classify,
    python_static_verdict,
    regex_static_verdict,
    static_verdict,
    swallowing_handler,
    weak_static_verdict,
)
from oc_synth.sandbox.languages import LANGUAGES, build_program
from oc_synth.synth import verification


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
    ("def f(x):\n    return x\n", "assert (f(1) == 2, 'msg')", "weak_tests"),  # a non-empty tuple is always true
    ("def f(x):\n    return x\n", "assert (f(1) == 1), 'msg'", None),
])
def test_python_static_rule(code, tests, expected):
    v = python_static_verdict(code, tests)
    assert (v.verdict if v else None) == expected


def test_one_list_of_verdicts():
    assert verification.VERDICTS is VERDICTS and "weak_tests" in VERDICTS
    assert python_static_verdict("def f(): pass", "assert (f(), 'm')", "basic") is None  # basic: no weak checks


@pytest.mark.parametrize("lang, tests, found", [
    ("cpp", "int main() { try { if (f() != 1) throw 1; } catch (...) { puts(\"x\"); } }", "catch (...)"),
    ("cpp", "int main() { try { if (f() != 1) throw 1; } catch (...) { return 1; } }", None),  # the handler fails
    ("cpp", "int main() { try { g(); } catch (const std::exception& e) { } }", None),  # no check inside
    ("java", "try { assert f() == 1; } catch (AssertionError e) { System.out.println(e); }",
     "catch (AssertionError e)"),
    ("java", "try { f(-1); assert false; } catch (IllegalArgumentException e) { }", None),  # an expected exception
    ("java", "try { assert f() == 1; } catch (AssertionError e) { throw e; }", None),
    ("javascript", "try { assert.equal(f(), 1) } catch (e) { console.log(e) }", "catch (e)"),
    ("javascript", "try { assert.equal(f(), 1) } catch (e) { process.exitCode = 1 }", None),
])
def test_swallowing_handlers(lang, tests, found):
    assert swallowing_handler(lang, tests) == found


@pytest.mark.parametrize("lang, code, tests, reason", [
    ("c", "int f(void) { return 1; }", "#undef assert\n#define assert(x)\nint main(void) { assert(f()); }",
     "assert_redefined"),
    ("shell", "f() { echo 1; }", '[() { :; }\n[ "$(f)" = 2 ]', "assert_redefined"),
    ("shell", "f() { echo 1; }", 'exit() { :; }\n[ "$(f)" = 2 ] || exit 1', "assert_redefined"),
    ("javascript", "function f() { return 1 }", "const assert = (c) => {};\nassert(f() === 2)", "assert_redefined"),
    ("javascript", "function f() { return 1 }", "const assert = require('assert');\nassert(f() === 1)", None),
    ("rust", "fn f() -> i32 { 1 }", "fn main() { let _ = std::panic::catch_unwind(|| assert_eq!(f(), 2)); }",
     "swallowed_failures"),
    ("rust", "fn f() -> i32 { 1 }", "fn main() { assert!(std::panic::catch_unwind(|| g()).is_err()); }", None),
])
def test_weak_static_rules(lang, code, tests, reason):
    v = weak_static_verdict(_program(lang, code, tests))
    assert (v.reason if v else None) == reason


def _program(lang, code="", tests="", **meta):
    return Program(lang, code, tests, files={}, steps=(), meta=meta)  # classification needs no toolchain


def test_main_in_the_code_part_and_no_entry_are_no_tests():
    c = static_verdict(_program("c", "int add(int a, int b) { return a + b; }\nint main(void) { return 0; }",
                                "void t(void) { assert(add(1, 2) == 3); }"))
    assert (c.verdict, c.reason) == ("no_tests", "main_in_code")
    rust = static_verdict(_program("rust", "fn add(a: i32) -> i32 { a }", "fn helper() { assert_eq!(add(1), 1); }"))
    assert (rust.verdict, rust.reason) == ("no_tests", "no_test_entry")


def test_uncalled_test_functions_are_found_per_language():
    assert build_program("shell", "f() { :; }", "test_f() { f; }\ntest_g() { f; }\ntest_g\n").meta["uncalled"] == \
        ["test_f"]
    try:
        c = build_program("c", "int f(void) { return 1; }", "static void test_f(void) { assert(f()); }\n"
                                                            "// test_f();\nint main(void) { return 0; }")
    except Exception:  # noqa: BLE001 - no gcc here: the rule is the same for every language
        return
    assert c.meta["uncalled"] == ["test_f"] and "test_f();" in c.files["main.c"].split("// test_f")[1]


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
N = "f00d"  # the run's nonce


@pytest.mark.parametrize("steps, oom, verdict, detail_part", [
    ([_step(report=["code", "tests", f"done {N} 3"])], False, "passed", "3 asserts"),
    ([_step(report=["code", "tests", f"done {N} 0"])], False, "no_tests", "no assert ran"),
    ([_step(report=["code", "tests", "done 5 3"])], False, "failed", "before its tests finished"),  # forged marker
    ([_step(report=["code", "tests", "assert_failed tests.py:2", f"done {N} 3"])], False, "failed",
     "assertion failed (tests.py:2)"),
    ([_step(report=["code", "tests", "test_failed thread t", f"done {N} 3"])], False, "failed", "a test failed"),
    ([_step(report=["code", "tests", "exit_early tests.py:4"])], False, "failed", "SystemExit(0) at tests.py:4"),
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
    v = classify(PY, steps, oom_killed=oom, nonce=N)
    assert v.verdict == verdict and detail_part in v.detail and v.reason


def test_classify_compiled_and_marker_languages():
    c = _program("c")
    assert classify(c, [_step("build", exit_code=1, stderr="main.c:1: error: expected ';'\nnote: x")]).detail \
        == "compile error: main.c:1: error: expected ';'"
    assert classify(c, [_step("build", exit_code=None, timed_out=True)]).verdict == "timeout"
    assert classify(c, [_step("build"), _step(exit_code=None, sig=signal.SIGABRT)]).detail == "killed by SIGABRT"
    assert classify(c, [_step("build"), _step(report=[f"done {N} 0"])], nonce=N).verdict == "passed"
    assert classify(c, [_step("build"), _step(report=["done"])], nonce=N).reason == "exited_early"  # forged
    asserts_only = _program("c", expects_asserts=True)
    assert classify(asserts_only, [_step("build"), _step(report=[f"done {N} 0"])], nonce=N).reason == "no_assert_ran"
    aborted = classify(c, [_step("build"), _step(exit_code=None, sig=signal.SIGABRT,
                                                 report=["assert_failed main.c:3"])], nonce=N)
    assert (aborted.reason, aborted.detail) == ("assertion_failed", "assertion failed at main.c:3")
    assert classify(JS, [_step()], nonce=N).detail == "the program exited (status 0) before its tests finished"
    assert classify(JS, [_step(report=[f"done {N} 1"])], nonce=N).verdict == "passed"
    rust = _program("rust", libtest=True)
    out = "running 2 tests\ntest result: ok. 2 passed; 0 failed; 0 ignored"
    ok = classify(rust, [_step("build"), {**_step(report=[f"done {N}"]), "stdout_tail": out}], nonce=N)
    assert (ok.verdict, ok.detail) == ("passed", "1 #[test] functions passed (libtest)")
    none = classify(rust, [_step("build"), {**_step(report=[f"done {N}"]),
                                            "stdout_tail": out.replace("2 passed", "1 passed")}], nonce=N)
    assert none.reason == "no_test_ran"
