"""Sanity mutants: which functions are broken and how, per language (no sandbox needed: the source is checked)."""

import ast

import pytest

from oc_synth.sandbox import Program
from oc_synth.sandbox.mutants import BROKEN_CLASS, definitions, modes, mutate


def _program(lang, code, tests="x"):
    return Program(lang, code, tests, files={}, steps=())


def _mutant_code(lang, code, mode="value", only=None):
    import oc_synth.sandbox.mutants as m

    made = m._mutate_python(code, only) if lang == "python" else m._mutate_tree_sitter(lang, code, only, mode)
    return made


def test_python_bodies_become_a_result_that_fails_on_use():
    code = ('"""doc"""\nfrom __future__ import annotations\nimport math\n\nLIMIT = 3\nsquare = lambda x: x * x\n\n'
            "def add(a, b):\n    return a + b\n\nclass Stack:\n    def __init__(self):\n        self.items = []\n"
            "    def push(self, x):\n        self.items.append(x)\n")
    text, broken = _mutant_code("python", code)
    assert broken == ["square", "add", "Stack"]
    ns: dict = {}
    exec(compile(text, "mutant.py", "exec"), ns)  # __future__ still first: it compiles
    result = ns["add"](1, 2)
    assert type(result).__name__ == BROKEN_CLASS and str(result).startswith("<broken")
    for use in (lambda: result == 3, lambda: bool(result), lambda: result + 1, lambda: list(result),
                lambda: result.real, lambda: ns["square"](2) < 4):
        with pytest.raises(RuntimeError, match="sanity mutant"):
            use()
    assert ns["Stack"]() is not None and ns["LIMIT"] == 3  # __init__ returns None; data is untouched
    assert isinstance(ast.parse(text), ast.Module)


def test_python_strict_mutants_break_one_definition():
    code = "def a():\n    return 1\n\ndef b():\n    return 2\n"
    assert definitions(_program("python", code)) == ["a", "b"]
    text, broken = _mutant_code("python", code, only={"b"})
    ns: dict = {}
    exec(text, ns)
    assert broken == ["b"] and ns["a"]() == 1 and type(ns["b"]()).__name__ == BROKEN_CLASS
    assert _mutant_code("python", "X = 1\n") is None  # nothing to break: no mutant


@pytest.mark.parametrize("lang, code, value_stub, fail_stub", [
    ("c", "static const char *name(int i) { return \"x\"; }\nint main(void) { return 0; }",
     "{ static const char * __oc_zero; return __oc_zero; }", "{ __builtin_abort(); }"),
    ("c", "void fill(int *a) { a[0] = 1; }", "{ }", "{ __builtin_abort(); }"),
    ("cpp", "struct P { int x; P() : x(1) {} int get() const { return x; } };\nstd::string s() { return \"a\"; }",
     "{ static std::string __oc_zero{}; return __oc_zero; }", "{ __builtin_abort(); }"),
    ("java", "class S { S() {} static long twice(long x) { return 2 * x; } static void main(String[] a) {} }",
     "{ return 0L; }", '{ throw new RuntimeException("oc-synth verify sanity mutant"); }'),
    ("rust", "fn add(a: i32, b: i32) -> i32 { a + b }\n#[test]\nfn t() { assert_eq!(add(1, 2), 3); }\nfn main() {}",
     "{ Default::default() }", '{ panic!("oc-synth verify sanity mutant") }'),
    ("javascript", "const add = (a, b) => a + b;\nclass C { constructor() { this.v = 1 } get() { return this.v } }",
     "(undefined)", "(undefined)"),
    ("shell", "add() { echo $(( $1 + $2 )); }\nGREETING=hi", "{ return 0; }", "{ return 0; }"),
])
def test_tree_sitter_stubs(lang, code, value_stub, fail_stub):
    value, broken = _mutant_code(lang, code, "value")
    fail, _ = _mutant_code(lang, code, "fail")
    assert value_stub in value and fail_stub in fail
    assert "main" not in broken and "constructor" not in broken and "t" not in broken  # entry points, tests
    if lang == "cpp":
        assert "P() : x(1) {}" in value and "int get() const { static int __oc_zero{}; return __oc_zero; }" in value
    if lang == "javascript":
        assert "constructor() { this.v = 1 }" in value and "get() { return undefined; }" in value
    if lang == "shell":
        assert "GREETING=hi" in value


def test_compiled_languages_fall_back_to_aborting_stubs():
    assert modes(_program("rust", "fn f() {}")) == ("value", "fail")
    assert modes(_program("python", "def f(): pass")) == ("value",)
    assert mutate(_program("python", "X = 1\n", "assert X")) is None
    assert definitions(_program("cpp", "namespace ns { int a() { return 1; } int b() { return 2; } }\nint c() "
                                       "{ return 3; }")) == ["ns", "c"]


# -- the first mutant runs in the program's own request (runner + jail), from a clean slate --------------------------

REMEMBERS = "def f():\n    with open('/tmp/seen', 'w') as fh:\n        fh.write('x')\n    return 1\n"
TESTS_READ_WHAT_THE_RUN_LEFT = "import os\nhad = os.path.exists('/tmp/seen')\nassert had or f() == 1\n"


def test_the_mutant_sees_nothing_the_program_left_in_tmp(sandbox):
    from oc_synth.sandbox import build_program

    # The program leaves /tmp/seen behind; tests that accept that file would pass the mutant if it ran in the
    # program's /tmp. Run in the same request, the mutant still gets a fresh /tmp: it fails, the sample passes.
    result = sandbox.run(build_program("python", REMEMBERS, TESTS_READ_WHAT_THE_RUN_LEFT))
    assert result.verdict == "passed" and "1 sanity mutant failed" in result.detail, result.detail


def test_the_mutant_in_the_request_judges_as_a_mutant_on_its_own(sandbox):
    from oc_synth.sandbox import build_program

    weak = build_program("python", "def add(a, b):\n    return a + b\n", "add\nassert True\n")
    together = sandbox.run(weak)
    alone = sandbox._sanity_check(weak, sandbox._run_once(weak)[0], "standard")  # the mutant sent on its own
    assert (together.verdict, together.reason) == (alone.verdict, alone.reason) == ("weak_tests",
                                                                                     "sanity_mutant_passed")
