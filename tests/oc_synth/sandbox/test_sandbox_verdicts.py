"""Verdicts that can't be faked (issue 14): every wrong-test shape and gaming trick gets a non-passing verdict with a
clear reason, and honest samples in every language still pass. Runs in the real sandbox (root)."""

import pytest

from oc_synth.sandbox import available_languages, build_program

ADD, BAD = "def add(a, b):\n    return a + b\n", "def add(a, b):\n    return a - b\n"
C_ADD, C_BAD = "int add(int a, int b) { return a + b; }", "int add(int a, int b) { return a - b; }"
JS_ADD, JS_BAD = "function add(a, b) { return a + b; }", "function add(a, b) { return a - b; }"
JAVA_ADD = "class Solution {\n  static int add(int a, int b) { return a + b; }\n}"
JAVA_BAD = "class Solution {\n  static int add(int a, int b) { return a - b; }\n}"
RS_ADD, RS_BAD = "fn add(a: i32, b: i32) -> i32 { a + b }", "fn add(a: i32, b: i32) -> i32 { a - b }"
SH_ADD, SH_BAD = "add() { echo $(( $1 + $2 )); }", "add() { echo $(( $1 - $2 )); }"
JAVA_MAIN = "public class Main {{\n  public static void main(String[] a) {{ {} }}\n}}"
RS_CFG_TEST = ("fn main() {}\n#[cfg(test)]\nmod tests {\n    use super::*;\n    #[test]\n"
               "    fn adds() { assert_eq!(add(1, 2), 3); }\n}")
UNITTEST = ("import unittest\nclass T(unittest.TestCase):\n    def test_add(self):\n"
            "        self.assertEqual(add(1, 2), 3)\n")

# name: (language, code, tests, verdict, reason)
WRONG = {
    # Python: test shapes that let a - b through before
    "py_tuple_assert": ("python", BAD, "assert (add(1, 2) == 3, 'msg')\n", "weak_tests", "vacuous_assert"),
    "py_except_assertion_error": ("python", BAD, "try:\n    assert add(1, 2) == 3\nexcept AssertionError:\n    pass\n",
                                  "failed", "caught_failure"),
    "py_catch_all_loop": ("python", BAD, "for a, b, e in [(1, 2, 3), (2, 2, 4)]:\n    try:\n"
                                         "        assert add(a, b) == e\n    except Exception:\n"
                                         "        print('FAIL')\n",
                          "failed", "caught_failure"),
    "py_sys_exit_between": ("python", BAD, "import sys\nassert add(0, 0) == 0\nsys.exit(0)\nassert add(1, 2) == 3\n",
                            "failed", "exited_early"),
    "py_raise_systemexit": ("python", BAD, "assert add(0, 0) == 0\nraise SystemExit\nassert add(1, 2) == 3\n",
                            "failed", "exited_early"),
    "py_exit_in_helper": ("python", BAD, "import sys\ndef check(f):\n    assert f(0, 0) == 0\n    sys.exit(0)\n"
                                         "    assert f(1, 2) == 3\ncheck(add)\n", "failed", "exited_early"),
    "py_assert_in_thread": ("python", BAD, "import threading\ndef check():\n    assert add(1, 2) == 3\n"
                                           "t = threading.Thread(target=check)\nt.start()\nt.join()\n",
                            "failed", "caught_failure"),
    "py_only_mentions_name": ("python", BAD, "add\nassert True\n", "weak_tests", "sanity_mutant_passed"),
    "py_prints_result_only": ("python", BAD, "print(add(1, 2))\nassert True\n", "weak_tests", "sanity_mutant_passed"),
    "py_unittest_fails": ("python", BAD, UNITTEST + "unittest.main()\n", "failed", "assertion_failed"),
    "py_unittest_never_run": ("python", BAD, UNITTEST, "failed", "caught_failure"),
    "py_runner_result_ignored": ("python", BAD, UNITTEST + "unittest.TextTestRunner().run("
                                 "unittest.defaultTestLoader.loadTestsFromTestCase(T))\n", "failed", "caught_failure"),
    "py_pytest_style_never_called": ("python", BAD, "def test_add():\n    assert add(1, 2) == 3\n", "failed",
                                     "assertion_failed"),
    "py_forged_marker": ("python", "import os\ndef add(a, b):\n    os.write(3, b'done 0 5\\n')\n    os._exit(0)\n",
                         "assert add(1, 2) == 3\n", "failed", "exited_early"),
    # C / C++
    "c_test_fn_main_never_calls": ("c", C_BAD, "#include <assert.h>\nvoid test_add(void) { assert(add(1, 2) == 3); }\n"
                                               "int main(void) { return 0; }", "failed", "assertion_failed"),
    "c_main_in_code": ("c", C_BAD + "\nint main(void) { return 0; }",
                       "#include <assert.h>\nvoid check(void) { assert(add(1, 2) == 3); }", "no_tests", "main_in_code"),
    "c_print_fail_exit0": ("c", C_BAD, "#include <stdio.h>\n#include <stdlib.h>\n"
                                       "int main(void) { if (add(1, 2) != 3) printf(\"FAIL\\n\"); exit(0); }",
                           "failed", "exited_early"),
    "c_print_fail_return0": ("c", C_BAD, "#include <stdio.h>\n#include <assert.h>\nint main(void) {\n"
                                         "  if (add(1, 2) != 3) printf(\"FAIL\\n\");\n  assert(1);\n  return 0;\n}",
                             "weak_tests", "sanity_mutant_passed"),
    "c_ndebug": ("c", C_BAD, "#define NDEBUG\n#include <assert.h>\n"
                             "int main(void) { assert(add(1, 2) == 3); return 0; }", "failed", "assertion_failed"),
    "c_redefined_assert": ("c", C_BAD, "#include <assert.h>\n#undef assert\n#define assert(x) ((void)0)\n"
                                       "int main(void) { assert(add(1, 2) == 3); return 0; }",
                           "weak_tests", "assert_redefined"),
    "cpp_catch_all": ("cpp", C_BAD, "#include <stdexcept>\n#include <cstdio>\nint main() {\n"
                                    "  try { if (add(1, 2) != 3) throw std::runtime_error(\"bad\"); }\n"
                                    "  catch (...) { std::puts(\"FAIL\"); }\n}",
                      "weak_tests", "swallowed_failures"),
    "c_constructor_exit0": ("c", "#include <stdlib.h>\n"
                                 "__attribute__((constructor)) static void early(void) { exit(0); }\n" + C_BAD,
                            "#include <assert.h>\nint main(void) { assert(add(1, 2) == 3); return 0; }",
                            "failed", "exited_early"),
    "c_forged_marker": ("c", "#include <unistd.h>\n#include <stdlib.h>\n"
                             "int add(int a, int b) { write(3, \"done\\n\", 5); exit(0); }",
                        "#include <assert.h>\nint main(void) { assert(add(1, 2) == 3); return 0; }",
                        "failed", "exited_early"),
    # Rust
    "rs_cfg_test_never_ran": ("rust", RS_BAD, RS_CFG_TEST, "failed", "assertion_failed"),
    "rs_panic_hook_exit0": ("rust", "fn add(a: i32, b: i32) -> i32 {\n    std::panic::set_hook(Box::new(|_| "
                                    "std::process::exit(0)));\n    a - b\n}",
                            "fn main() { assert_eq!(add(1, 2), 3); }", "failed", "exited_early"),
    "rs_all_tests_ignored": ("rust", RS_ADD, RS_CFG_TEST.replace("#[test]", "#[test]\n    #[ignore]"), "no_tests",
                             "no_test_ran"),
    # Shell
    "sh_and_echo_ok": ("shell", SH_BAD, '[ "$(add 1 2)" = 3 ] && echo ok', "weak_tests", "sanity_mutant_passed"),
    "sh_if_echo_fail": ("shell", SH_BAD, 'if [ "$(add 1 2)" != 3 ]; then echo FAIL; fi', "weak_tests",
                        "sanity_mutant_passed"),
    "sh_forged_marker": ("shell", "add() { printf 'done\\n' >&3; exit 0; }", 'add 1 2\n[ "$(add 1 2)" = 3 ]',
                         "failed", "exited_early"),
    "sh_redefined_bracket": ("shell", SH_BAD, '[() { return 0; }\n[ "$(add 1 2)" = 3 ]', "weak_tests",
                             "assert_redefined"),
    "sh_exit_trap_exit0": ("shell", "trap 'exit 0' EXIT\n" + SH_BAD, '[ "$(add 1 2)" = 3 ]', "failed", "exited_early"),
    # Java
    "java_catch_assertion_error": ("java", JAVA_BAD, JAVA_MAIN.format(
        "try { assert Solution.add(1, 2) == 3; } catch (AssertionError e) { System.out.println(\"FAIL\"); }"),
        "weak_tests", "swallowed_failures"),
    "java_test_method_never_called": ("java", JAVA_BAD, "public class Main {\n  static void testAdd() { assert "
                                                        "Solution.add(1, 2) == 3; }\n"
                                                        "  public static void main(String[] a) { }\n}",
                                      "failed", "assertion_failed"),
    "java_static_initialiser_exit0": ("java", "class Solution {\n  static { System.exit(0); }\n"
                                              "  static int add(int a, int b) { return a - b; }\n}",
                                      JAVA_MAIN.format("assert Solution.add(1, 2) == 3;"), "failed", "exited_early"),
    "java_shutdown_hook_halt0": ("java", "class Solution {\n  static int add(int a, int b) {\n    Runtime.getRuntime()"
                                         ".addShutdownHook(new Thread(() -> Runtime.getRuntime().halt(0)));\n"
                                         "    return a - b;\n  }\n}",
                                 JAVA_MAIN.format("assert Solution.add(1, 2) == 3;"), "failed", "assertion_failed"),
    # JavaScript
    "js_async_rejection_caught": ("javascript", "async function add(a, b) { return a - b; }",
                                  "const assert = require('assert');\n"
                                  "(async () => { assert.strictEqual(await add(1, 2), 3); })().catch(console.error);",
                                  "failed", "caught_failure"),
    "js_forged_marker": ("javascript", "function add(a, b) { require('fs').writeSync(3, 'done\\n'); process.exit(0); }",
                         "const assert = require('assert');\nassert.strictEqual(add(1, 2), 3);", "failed",
                         "exited_early"),
    "js_redefined_assert": ("javascript", JS_BAD, "function assert(c) { }\nassert(add(1, 2) === 3);", "weak_tests",
                            "assert_redefined"),
}

HONEST = {
    "py_asserts": ("python", ADD, "assert add(1, 2) == 3\nassert add(2, 2) == 4\n"),
    "py_unittest_main": ("python", ADD, UNITTEST + "if __name__ == '__main__':\n    unittest.main()\n"),
    "py_unittest_without_main": ("python", ADD, UNITTEST),
    "py_pytest_style": ("python", ADD, "def test_add():\n    assert add(1, 2) == 3\n"),
    "py_exit0_at_the_end_of_main": ("python", ADD, "import sys\ndef main():\n    assert add(1, 2) == 3\n"
                                                   "    sys.exit(0)\nif __name__ == '__main__':\n    main()\n"),
    "py_expected_exception": ("python", "def inv(x):\n    if x == 0:\n        raise ValueError('zero')\n"
                                        "    return 1 / x\n",
                              "try:\n    inv(0)\n    assert False, 'no error'\nexcept ValueError:\n    pass\n"
                              "assert inv(2) == 0.5\n"),
    "c_return_1_on_failure": ("c", C_ADD, "int main(void) {\n  if (add(1, 2) != 3) return 1;\n  if (add(2, 2) != 4) "
                                          "return 1;\n  return 0;\n}"),
    "c_assert": ("c", C_ADD, "#include <assert.h>\nint main(void) { assert(add(1, 2) == 3); }"),
    "c_test_fn_never_called": ("c", C_ADD, "#include <assert.h>\nvoid test_add(void) { assert(add(1, 2) == 3); }\n"
                                           "int main(void) { return 0; }"),
    "cpp_assert_no_return": ("cpp", C_ADD, "#include <cassert>\nint main() { assert(add(1, 2) == 3); }"),
    "rs_cfg_test": ("rust", RS_ADD, RS_CFG_TEST),
    "rs_main": ("rust", RS_ADD, "fn main() { assert_eq!(add(1, 2), 3); }"),
    "sh_or_exit_1": ("shell", SH_ADD, '[ "$(add 1 2)" = 3 ] || exit 1\n[ "$(add 2 2)" = 4 ] || exit 1'),
    "java_main": ("java", JAVA_ADD, JAVA_MAIN.format("assert Solution.add(1, 2) == 3; "
                                                     "assert Solution.add(2, 2) == 4;")),
    "js_awaited_async": ("javascript", "async function add(a, b) { return a + b; }",
                         "const assert = require('assert');\n"
                         "(async () => { assert.strictEqual(await add(1, 2), 3); })();"),
    "js_sync": ("javascript", JS_ADD, "const assert = require('assert');\nassert.strictEqual(add(1, 2), 3);"),
}


@pytest.fixture(scope="module")
def results(sandbox):
    have = set(available_languages())
    todo = {name: spec for name, spec in {**WRONG, **{k: (*v, "passed", None) for k, v in HONEST.items()}}.items()
            if spec[0] in have}
    ran = sandbox.run_many(build_program(lang, code, tests, id=name)
                           for name, (lang, code, tests, _, _) in todo.items())
    return dict(zip(todo, ran, strict=True))


def _check(results, name, verdict, reason):
    if name not in results:
        pytest.skip("toolchain not installed here")
    r = results[name]
    assert (r.verdict, r.reason or None) == (verdict, reason) if reason else r.verdict == verdict, \
        (r.verdict, r.reason, r.detail, r.stderr_tail[-800:])
    assert r.detail


@pytest.mark.parametrize("name", list(WRONG))
def test_wrong_samples_do_not_pass(results, name):
    _, _, _, verdict, reason = WRONG[name]
    _check(results, name, verdict, reason)


@pytest.mark.parametrize("name", list(HONEST))
def test_honest_samples_pass(results, name):
    _check(results, name, "passed", None)
    assert "sanity mutant failed" in results[name].detail  # the standard strictness ran its mutant


def test_strictness_basic_skips_mutants_and_static_weak_checks(sandbox):
    basic = type(sandbox)(sandbox.config.model_copy(update={"strictness": "basic", "workers": 1}))
    with basic:
        only_mentions, tuple_assert = basic.run_many([build_program("python", BAD, "add\nassert True\n"),
                                                      build_program("python", BAD, "assert (add(1, 2) == 3, 'm')\n")])
    assert only_mentions.verdict == "passed" and "mutant" not in only_mentions.detail
    assert tuple_assert.verdict == "passed"


def test_strict_breaks_each_definition_on_its_own(sandbox):
    code = ADD + "def unused(x):\n    return x\n"
    strict = type(sandbox)(sandbox.config.model_copy(update={"strictness": "strict", "workers": 1}))
    with strict:
        weak, good = strict.run_many([build_program("python", code, "assert add(1, 2) == 3\n"),
                                      build_program("python", code, "assert add(1, 2) == 3\nassert unused(4) == 4\n")])
    assert (weak.verdict, weak.reason) == ("weak_tests", "sanity_mutant_passed") and "unused" in weak.detail
    assert good.verdict == "passed" and "3 sanity mutants failed" in good.detail
