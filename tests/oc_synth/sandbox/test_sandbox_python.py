"""Python programs in the real sandbox: each verdict, the assert counting, what a program sees."""

import pytest

from oc_synth.sandbox import build_program

F = "def f(x):\n    return x + 1\n"
CASES = {
    # name: (code, tests, verdict, words in the detail)
    "pass": (F, "assert f(1) == 2\nassert f(2) == 3\n", "passed", "2 asserts ran"),
    "wrong": (F, "assert f(1) == 3\n", "failed", "AssertionError"),
    "assert_in_helper": (F, "def check(c):\n    assert c(1) == 2\ncheck(f)\n", "passed", "1 asserts ran"),
    "calls_but_never_asserts": (F, "f(1)\nprint(f(2))\n", "no_tests", "no assert ran"),
    "asserts_in_uncalled_function": (F, "def test_f():\n    assert f(1) == 2\n", "passed", "1 asserts ran"),  # run
    "uncalled_function_that_fails": (F, "def test_f():\n    assert f(1) == 3\n", "failed", "AssertionError"),
    "uncalled_with_fixture_argument": (F, "def test_f(tmp_path):\n    assert f(1) == 2\n", "no_tests", "no assert ran"),
    "never_references_code": (F, "assert 2 == 2\n", "no_tests", "reference nothing"),
    "exception_in_tests": (F, "assert f('a') == 2\n", "failed", "TypeError"),
    "exception_in_code": ("import no_such_module\n" + F, "assert f(1) == 2\n", "error", "ModuleNotFoundError"),
    "syntax_error": ("def f(x)\n    return x\n", "assert f(1) == 2\n", "error", "syntax error in code"),
    "exit0_in_code": ("import sys\n" + F + "sys.exit(0)\n", "assert f(1) == 2\n", "failed", "before the tests ran"),
    "os_exit0_in_tests": ("import os\n" + F, "os._exit(0)\nassert f(1) == 2\n", "failed",
                          "before its tests finished"),
    "sys_exit1_in_tests": ("import sys\n" + F, "assert f(1) == 2\nsys.exit(1)\n", "failed", ""),
    "unittest_pass": (F, "import unittest\nclass T(unittest.TestCase):\n    def test_f(self):\n"
                         "        self.assertEqual(f(1), 2)\nunittest.main()\n", "passed", "1 asserts ran"),
    "unittest_fail": (F, "import unittest\nclass T(unittest.TestCase):\n    def test_f(self):\n"
                         "        self.assertEqual(f(1), 3)\nunittest.main()\n", "failed", ""),
    "main_guard_runs": (F + "if __name__ == '__main__':\n    RAN = True\n", "assert RAN and f(1) == 2\n", "passed",
                        ""),
    "threads_joined": ("import threading\nOUT = []\ndef f():\n    OUT.append(1)\n",
                       "t = threading.Thread(target=f)\nt.start()\nt.join()\nassert OUT == [1]\n", "passed", ""),
    "multiprocessing": ("import multiprocessing as mp\ndef sq(x):\n    return x * x\n",
                        "with mp.Pool(2) as p:\n    assert p.map(sq, [1, 2, 3]) == [1, 4, 9]\n", "passed", ""),
}


@pytest.fixture(scope="module")
def results(sandbox):
    programs = [build_program("python", code, tests) for code, tests, _, _ in CASES.values()]
    return dict(zip(CASES, sandbox.run_many(programs), strict=True))


@pytest.mark.parametrize("name", list(CASES))
def test_verdict(results, name):
    _, _, verdict, detail = CASES[name]
    r = results[name]
    assert (r.verdict, detail in r.detail) == (verdict, True), (r.detail, r.stderr_tail)
    assert r.passed == (verdict == "passed")


def test_failure_keeps_the_traceback_tail(results):
    r = results["wrong"]
    assert 'File "/tmp/tests.py", line 1' in r.stderr_tail and r.stderr_tail.rstrip().endswith("AssertionError")
    assert results["pass"].runtime_s > 0


def test_output_and_fields(sandbox):
    r = sandbox.run(build_program("python", F, "print('hello', f(1))\nassert f(1) == 2\n"))
    assert r.stdout_tail == "hello 2\n"
    assert set(r.record_fields()) == {"verdict", "passed", "verdict_detail", "verdict_reason", "stderr_tail",
                                      "runtime_s"}


def test_same_input_same_verdicts(sandbox, results):
    programs = [build_program("python", code, tests) for code, tests, _, _ in CASES.values()]
    again = sandbox.run_many(programs)
    assert [(r.verdict, r.detail) for r in again] == [(r.verdict, r.detail) for r in results.values()]
