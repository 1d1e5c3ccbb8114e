"""How a recipe asks a model for tests in each language, so that the sandbox can run them as written.

The sandbox (``oc_synth/sandbox/languages.py``) assembles a sample per language: Python runs the tests after the
solution in one namespace; C, C++, JavaScript, Rust and shell put the tests after the solution in one program; Java
compiles the solution and the tests as separate files and runs the tests' public class with assertions enabled.
A prompt says ``{{ language | test_instructions }}`` instead of repeating these rules in every recipe.
"""

from __future__ import annotations

TEST_INSTRUCTIONS = {
    "python": "plain top-level `assert` statements that call the solution (they run after it, in the same program)",
    "c": "an `int main(void)` that checks the solution with `assert` (include <assert.h>) and returns 0; it is "
         "compiled after the solution, in the same file",
    "cpp": "an `int main()` that checks the solution with `assert` (include <cassert>) and returns 0; it is compiled "
           "after the solution, in the same file",
    "java": "a `public class Main` whose `main` method checks the solution with `assert` statements (run with -ea) "
            "or throws an AssertionError; the solution is a separate, non-public class",
    "javascript": "`const assert = require(\"assert\");` and then `assert.strictEqual` / `assert.deepStrictEqual` "
                  "calls on the solution (they run after it, in the same file)",
    "rust": "a `fn main()` that checks the solution with `assert_eq!` / `assert!`; it is compiled after the "
            "solution, in the same file",
    "shell": "bash checks such as `[ \"$(f 1)\" = 2 ]` that call the solution's functions (they run after it, "
             "under `set -e`, so a failing check ends the script with an error)",
}
_ALIASES = {"py": "python", "python3": "python", "c++": "cpp", "cxx": "cpp", "cc": "cpp", "js": "javascript",
            "node": "javascript", "nodejs": "javascript", "rs": "rust", "bash": "shell", "sh": "shell"}


def test_instructions(language: str) -> str:
    """The test-writing rule for ``language`` (a Jinja filter in every recipe)."""
    key = str(language).strip().lower()
    return TEST_INSTRUCTIONS.get(_ALIASES.get(key, key),
                                 "checks that call the solution and make the program exit with a non-zero status "
                                 "when one fails")
