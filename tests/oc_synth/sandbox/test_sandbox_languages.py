"""Other languages: programs are built as documented, and pass/fail in the real sandbox where the toolchain exists."""

import pytest

from oc_synth.sandbox import UnsupportedLanguage, available_languages, build_program
from oc_synth.sandbox import languages as langs

# language: (code, tests that pass, tests that fail)
SAMPLES = {
    "c": ("int add(int a, int b) { return a + b; }",
          "#include <assert.h>\nint main(void) { assert(add(2, 3) == 5); return 0; }",
          "#include <assert.h>\nint main(void) { assert(add(2, 3) == 6); return 0; }"),
    "cpp": ("#include <vector>\nint total(const std::vector<int>& v) { int s = 0; for (int x : v) s += x; return s; }",
            "#include <cassert>\nint main() { assert(total({1, 2, 3}) == 6); }",
            "#include <cassert>\nint main() { assert(total({1, 2, 3}) == 7); }"),
    "javascript": ("function add(a, b) { return a + b; }",
                   "const assert = require('assert');\nassert.strictEqual(add(2, 3), 5);",
                   "const assert = require('assert');\nassert.strictEqual(add(2, 3), 6);"),
    "java": ("class Solution {\n  static int add(int a, int b) { return a + b; }\n}",
             "public class Main {\n  public static void main(String[] args) { assert Solution.add(2, 3) == 5; }\n}",
             "public class Main {\n  public static void main(String[] args) { assert Solution.add(2, 3) == 6; }\n}"),
    "rust": ("fn add(a: i32, b: i32) -> i32 { a + b }",
             "fn main() { assert_eq!(add(2, 3), 5); }",
             "fn main() { assert_eq!(add(2, 3), 6); }"),
    "shell": ('add() { echo $(( $1 + $2 )); }', '[ "$(add 2 3)" = 5 ]', '[ "$(add 2 3)" = 6 ]'),
}


@pytest.mark.parametrize("name, expected", [(None, "python"), ("Python", "python"), ("C++", "cpp"),
                                            ("JavaScript", "javascript"), ("Shell", "shell"), ("rs", "rust")])
def test_language_names_follow_linguist_and_aliases(name, expected):
    assert langs.language(name).name == expected


def test_unknown_language_and_missing_toolchain_are_reported(monkeypatch):
    with pytest.raises(UnsupportedLanguage, match="unsupported language 'COBOL'"):
        build_program("COBOL", "x", "y")
    monkeypatch.setattr(langs, "tool", lambda name: None)
    with pytest.raises(UnsupportedLanguage, match="toolchain missing: node"):
        build_program("javascript", "function f() {}", "f()")


def test_java_files_are_named_after_their_public_class():
    if "java" not in available_languages():
        pytest.skip("no JDK here")
    p = build_program("java", "public class Calc { static int one() { return 1; } }",
                      "public class Check { public static void main(String[] a) { assert Calc.one() == 1; } }")
    assert sorted(p.files) == ["Calc.java", "Check.java", "OcVerifyHarness.java"]
    argv = p.steps[-1].argv
    assert argv[argv.index("OcVerifyHarness") + 1] == "Check" and "-ea" in argv  # the harness calls Check.main
    assert all(s.argv[0].startswith("/") for s in p.steps)  # absolute, as the sandbox has no PATH lookup surprises


@pytest.fixture(scope="module")
def results(sandbox):
    todo = [(lang, kind, build_program(lang, code, tests))
            for lang, (code, good, bad) in SAMPLES.items() if lang in available_languages()
            for kind, tests in (("good", good), ("bad", bad))]
    if "javascript" in available_languages():  # exits 0 before its tests: the missing marker gives it away
        todo.append(("javascript", "early_exit", build_program(
            "javascript", "function add(a, b) { process.exit(0); }", SAMPLES["javascript"][1])))
    todo.append(("c", "compile_error", build_program("c", "int add(int a, int b) { return a + }",
                                                     SAMPLES["c"][1])))
    return {(lang, kind): r for (lang, kind, _), r in zip(todo, sandbox.run_many(p for _, _, p in todo), strict=True)}


@pytest.mark.parametrize("lang", list(SAMPLES))
def test_language_pass_and_fail(results, lang):
    if (lang, "good") not in results:
        pytest.skip(f"no {lang} toolchain here")
    good, bad = results[(lang, "good")], results[(lang, "bad")]
    assert good.verdict == "passed", (good.detail, good.stderr_tail)
    assert bad.verdict == "failed", (bad.detail, bad.stderr_tail)


def test_early_exit_and_compile_errors(results):
    if ("javascript", "early_exit") in results:
        r = results[("javascript", "early_exit")]
        assert (r.verdict, r.detail) == ("failed", "the program exited (status 0) before its tests finished")
    r = results[("c", "compile_error")]
    assert r.verdict == "error" and r.detail.startswith("compile error: main.c:1")
