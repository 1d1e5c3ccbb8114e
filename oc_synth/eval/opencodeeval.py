"""OpenCoder's evaluation harness, OpenCodeEval, reproduced: ``--harness opencodeeval`` (the default).

Source: ``OpenCodeEval/src`` in github.com/OpenCoder-llm/OpenCoder-llm (MIT License; released 2024-11-12 with the
models, docs/opencoder.md), read and written again here. The tests compare what we build with strings written out
by OpenCodeEval's own code (``tests/oc_synth/eval/fixtures/opencodeeval.json``, and how it was made).

What OpenCodeEval does, benchmark by benchmark (greedy, ``max_tokens`` 2048):

- HumanEval(+), all 164 problems. Base models continue the prompt (normalised by ``refine_text``); chat models get
  one user message: "Please provide a self-contained Python script that solves the following problem in a markdown
  code block:" and the prompt in a ```python block.
- MBPP (the original file), task_ids 10-509, for base and chat models alike: three worked examples (task_ids 1-3:
  "You are an expert Python programmer, and here is your task: ... Your code should pass these tests: ..." and the
  solution in a ```python block), then the task with all its tests and an open ```python block.
- MBPP+ (EvalPlus data), every problem: the task and its first test, nothing else.
- Stop strings: ``GENERAL_STOP`` always, ``COMPLETION_STOP`` too for base models.
- What runs: the answer goes through ``sanitize`` (with the entry point for HumanEval), and the program is
  ``HEADER`` (15 import lines), then for HumanEval the prompt with a ``pass`` body, then the sanitised answer, then
  the dataset's tests; for MBPP the header, MBPP's setup code, the answer, the asserts.

Where we depart from the released code, and why (``notes`` of a run list the ones that applied):

- MBPP, base models: OpenCodeEval sanitises the prompt *and* the answer together. With the three worked examples in
  the prompt, the longest valid block is then usually an example's solution, not the answer (MBPP task 1's is 13
  lines), so that code cannot have produced the published MBPP numbers; later OpenCodeEval versions strip the
  examples first. We sanitise the answer alone. (HumanEval keeps the prompt: it is the function's own head.)
- The header imports numpy; when the sandbox's interpreter has no numpy we leave those two lines out and say so.
- Chat prompts: OpenCodeEval replaces the chat template by an "### Instruction: / ### Response:" form when the
  tokenizer's path contains "ckpt", "checkpoint" or "ckp"; we always use the model's own template.
- Execution: our sandbox with its own time limit (``--timeout``), not OpenCodeEval's in-process ``exec`` with 3 s.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from oc_common.errors import OcError
from oc_common.log import get_logger
from oc_synth.eval.environment import missing_modules
from oc_synth.eval.harness import Harness, SampleProgram
from oc_synth.eval.problems import Problem, task_number
from oc_synth.eval.sanitize import refine_text, sanitize

if TYPE_CHECKING:
    from oc_synth.eval.data import ProblemSet
    from oc_synth.sandbox import SandboxConfig

log = get_logger(__name__)

# benchmark/base.py: general_stop_words (every model) and completion_stop_words (base models).
GENERAL_STOP = ("<|endoftext|>", "<|endofmask|>", "</s>", "\nif __name__", "\ndef main(", "\nprint(", "\n```\n")
COMPLETION_STOP = ("\ndef ", "\nclass ", "\nimport ", "\nfrom ", "\nassert ")
# benchmark/base.py: the imports every program starts with.
HEADER = ("import math", "import re", "import sys", "import copy", "import datetime", "import itertools",
          "import collections", "import heapq", "import functools", "import hashlib", "import numpy",
          "import numpy as np", "import string", "from typing import *", "from collections import *")
# args.py: the prompt prefix and suffix a chat model gets on HumanEval.
CHAT_PREFIX = ("Please provide a self-contained Python script that solves the following problem in a markdown code "
               "block:\n```python\n")
CHAT_SUFFIX = "\n```\n"
MAX_TOKENS = 2048  # args.py --max_tokens
MBPP_TASK_IDS = range(10, 510)  # benchmark/MBPP.py: test_start 10, test_end 510 (end excluded)
FEWSHOT_FILE = Path(__file__).with_name("opencodeeval_mbpp_fewshot.json")  # MBPP task_ids 1-3 (CC BY 4.0)


def mbpp_task_block(statement: str, tests: list[str] | tuple[str, ...], code: str | None = None) -> str:
    """One MBPP task as OpenCodeEval writes it: a worked example with its ``code``, or the open task without."""
    block = (f"You are an expert Python programmer, and here is your task:\n{refine_text(statement)}"
             f"Your code should pass these tests:\n" + "\n".join(tests) + "\n")
    return block + (f"\n```python\n{refine_text(code)}\n```\n" if code else "\n```python\n")


def _fewshot_block() -> str:
    examples = json.loads(FEWSHOT_FILE.read_text(encoding="utf-8"))["examples"]
    return "\n".join(mbpp_task_block(e["text"], e["test_list"], e["code"]) for e in examples)


FEWSHOT = _fewshot_block()


def _header_module(line: str) -> str:
    return line.split()[1].split(".")[0]


class OpenCodeEvalHarness(Harness):
    name = "opencodeeval"
    max_tokens = MAX_TOKENS
    top_p = 1.0  # backend/vllm.py

    def __init__(self) -> None:
        super().__init__()
        self.header = HEADER
        self._prepared = False

    # -- which problems ----------------------------------------------------------------------------------------------

    def select(self, problems: ProblemSet) -> ProblemSet:
        if problems.benchmark != "mbpp" or any(p.evalplus for p in problems.problems):
            return problems  # HumanEval(+) and MBPP+: every problem
        kept = [p for p in problems.problems if task_number(p.task_id) in MBPP_TASK_IDS]
        if not kept:
            raise OcError(f"{problems.source}: none of these MBPP problems is in OpenCodeEval's task range "
                          f"(task_ids {MBPP_TASK_IDS.start}-{MBPP_TASK_IDS.stop - 1} of the original mbpp.jsonl); "
                          "pass that file, or use --harness oc for another problem set")
        missing = sorted(set(MBPP_TASK_IDS) - {task_number(p.task_id) for p in kept})
        if missing:
            note = (f"{len(missing)} of OpenCodeEval's {len(MBPP_TASK_IDS)} MBPP tasks are not in "
                    f"{problems.source} (task_ids {', '.join(map(str, missing[:10]))}"
                    f"{', ...' if len(missing) > 10 else ''}); the full mbpp.jsonl has them all")
            log.warning(note)
            self.notes.append(note)
        return dataclasses.replace(problems, problems=kept)

    # -- what the model sees -----------------------------------------------------------------------------------------

    def prompt(self, problem: Problem) -> str:
        if problem.benchmark == "humaneval":
            return refine_text(problem.prompt)
        if problem.evalplus:  # MBPPPlus.format_prompt: the task and its first test
            return refine_text("\n".join((problem.statement, *problem.test_list[:1])))
        return refine_text(f"{FEWSHOT}\n{mbpp_task_block(problem.statement, problem.test_list)}")

    def messages(self, problem: Problem) -> list[dict[str, str]]:
        # main.py: a chat model on HumanEval gets the default prefix and suffix (args.check_args); on MBPP the
        # prompt as it is, in the model's chat template.
        text = self.prompt(problem)
        if problem.benchmark == "humaneval":
            text = refine_text(CHAT_PREFIX + text + CHAT_SUFFIX)
        return [{"role": "user", "content": text}]

    def stop(self, problem: Problem, mode: str) -> tuple[str, ...]:
        return GENERAL_STOP + COMPLETION_STOP if mode == "completion" else GENERAL_STOP

    # -- what runs ---------------------------------------------------------------------------------------------------

    def kept_code(self, problem: Problem, answer: str, mode: str) -> str:
        """The sanitised answer. A base model's HumanEval answer is sanitised after its prompt (the function's head),
        as OpenCodeEval's vLLM backend joins them; MBPP answers alone (see the module docstring)."""
        text = answer
        if mode == "completion" and problem.benchmark == "humaneval":
            text = self.prompt(problem) + "\n\n" + answer
        entry_point = problem.entry_point if problem.benchmark == "humaneval" else None
        try:
            return sanitize(refine_text(text), entry_point)
        except (RecursionError, MemoryError, ValueError) as e:  # absurdly nested code: nothing usable is kept
            log.debug("sanitising an answer to %s failed (%s): nothing kept", problem.task_id, e)
            return ""

    def program(self, problem: Problem, answer: str, mode: str) -> SampleProgram:
        kept = self.kept_code(problem, answer, mode)
        header = "\n".join(self.header)
        if problem.benchmark == "humaneval":
            code = f"{header}\n{problem.prompt}\n    pass\n\n{kept}"
        elif problem.evalplus:
            code = f"{header}\n\n{kept}"
        else:
            code = f"{header}\n{problem.setup}\n{kept}"
        return SampleProgram("python", code, problem.tests, kept=kept)

    def prepare(self, problems: list[Problem], sandbox: SandboxConfig) -> None:
        if self._prepared:
            return
        self._prepared = True
        third_party = {_header_module(line) for line in HEADER} - set(sys.stdlib_module_names)
        missing = set(missing_modules(third_party, sandbox))
        if missing:
            self.header = tuple(line for line in HEADER if _header_module(line) not in missing)
            note = (f"the sandbox's interpreter ({sandbox.python}) cannot import {', '.join(sorted(missing))}, "
                    "which OpenCodeEval's program header imports: those import lines are left out, so an answer "
                    "that uses it without importing it fails here. For the exact header: apt-get install "
                    "python3-numpy and --sandbox-ro-path /usr/lib/python3/dist-packages")
            log.warning(note)
            self.notes.append(note)
