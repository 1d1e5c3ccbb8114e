"""The ``oc`` harness (``--harness oc``): our own prompts for base models (completion mode) and instruct models
(chat mode), and code extraction from answers. OpenCoder's own harness is ``opencodeeval``.

Completion mode follows the standard harnesses: the HumanEval prompt as shipped, MBPP as a docstring holding the task
and its first test (bigcode-evaluation-harness, and the form EvalPlus ships MBPP+ prompts in), each with the stop
sequences that end a function at the next top-level statement. Without them a base model runs on into a second
function or a test block, and whether that breaks the program depends on the sampler: one of the ways published
numbers fail to reproduce.

Chat mode sends one user message in the model's own chat template (applied by the backend) and takes the code out of
the answer's fenced block; see ``extract_code``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING

from oc_common.log import get_logger
from oc_synth.eval.harness import Harness, SampleProgram
from oc_synth.eval.problems import Problem, task_number

if TYPE_CHECKING:
    from oc_synth.eval.data import ProblemSet

log = get_logger(__name__)

# Codex paper / bigcode-evaluation-harness: a new top-level statement ends the function being completed.
HUMANEVAL_STOP = ("\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif", "\n```")
# bigcode-evaluation-harness's MBPP: the model writes the whole function after the docstring, so "\ndef" cannot stop
# it; a test, a closing docstring or a print after it can.
MBPP_STOP = ("\nclass", "\nassert", '\n"""', "\nprint", "\nif", "\n<|/", "\n```")

STOP_SEQUENCES = {"humaneval": HUMANEVAL_STOP, "mbpp": MBPP_STOP}

# EvalPlus's instruction for chat models (its codegen "instruction_prefix"), with the problem in a code block.
CHAT_INSTRUCTION = ("Please provide a self-contained Python script that solves the following problem in a markdown "
                    "code block:\n```\n{description}\n```\n")


# The original MBPP file holds all 974 problems; papers report its test split (Austin et al. 2021, section 2.1).
MBPP_TEST_IDS = range(11, 511)
MBPP_FULL_SIZE = 974


def mbpp_prompt(text: str, first_test: str) -> str:
    """The completion prompt of an MBPP problem: its statement and one example test, in a docstring."""
    return f'"""\n{text.strip()}\n{first_test.strip()}\n"""\n'


def stop_sequences(problem: Problem) -> tuple[str, ...]:
    return STOP_SEQUENCES[problem.benchmark]


def chat_messages(problem: Problem) -> list[dict[str, str]]:
    return [{"role": "user", "content": CHAT_INSTRUCTION.format(description=problem.description.strip())}]


_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(answer: str, entry_point: str) -> str:
    """The code in a chat answer.

    Among the fenced blocks (an unclosed last block counts: the answer may have hit max tokens), the first that
    defines ``entry_point``; else the first Python (or untagged) block; else the whole answer, which is what a model
    that answers with bare code means.
    """
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(answer)]
    if not blocks:
        return answer.strip("\n")
    defines = re.compile(rf"^\s*(async\s+)?def\s+{re.escape(entry_point)}\s*\(", re.MULTILINE) if entry_point else None
    if defines is not None:
        for _, body in blocks:
            if defines.search(body):
                return body.strip("\n")
    for lang, body in blocks:
        if lang in ("", "python", "py", "python3"):
            return body.strip("\n")
    return blocks[0][1].strip("\n")


class OcHarness(Harness):
    """Our prompts: the problem as shipped (HumanEval) or as a docstring with its first test (MBPP) for base models,
    EvalPlus's instruction for chat models; the code block that defines the entry point is what runs."""

    name = "oc"
    max_tokens = 512

    def select(self, problems: ProblemSet) -> ProblemSet:
        ps = problems.problems
        if problems.benchmark == "mbpp" and len(ps) == MBPP_FULL_SIZE and not any(p.evalplus for p in ps):
            kept = [p for p in ps if task_number(p.task_id) in MBPP_TEST_IDS]
            log.info("%s is the full MBPP file: using its test split (task_ids 11-510, %d problems)",
                     problems.source, len(kept))
            return dataclasses.replace(problems, problems=kept)
        return problems

    def prompt(self, problem: Problem) -> str:
        return problem.prompt

    def messages(self, problem: Problem) -> list[dict[str, str]]:
        return chat_messages(problem)

    def stop(self, problem: Problem, mode: str) -> tuple[str, ...]:
        return stop_sequences(problem) if mode == "completion" else ()

    def program(self, problem: Problem, answer: str, mode: str) -> SampleProgram:
        if mode == "completion":
            return SampleProgram("python", problem.completion_program(answer), problem.tests)
        code = extract_code(answer, problem.entry_point)
        return SampleProgram("python", problem.chat_program(code), problem.tests, kept=code)
