"""What a harness decides, and the one interface the runner uses: ``Harness``.

A harness is the part of an evaluation that changes the score without changing the model: which problems run (task
ranges), what the model is shown (prompt, few-shot examples, chat message), where its answer is cut (stop strings),
what is kept of the answer (extraction, sanitising) and how the program that runs in the sandbox is put together.
Published numbers are only comparable under the harness that produced them, so the harness is part of a run's
identity (a resumed run refuses another one).

- ``opencodeeval`` (``opencodeeval.OpenCodeEvalHarness``): OpenCoder's released harness, reproduced.
- ``oc`` (``prompts.OcHarness``): our own prompts (bigcode-evaluation-harness / EvalPlus conventions).
- ``multipl-e`` (``multiple.MultiPLEHarness``): MultiPL-E's own protocol, the only one for that benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from oc_synth.eval.data import ProblemSet
    from oc_synth.eval.problems import Problem
    from oc_synth.sandbox.config import SandboxConfig


@dataclass(frozen=True)
class SampleProgram:
    """What runs in the sandbox for one sample: ``code`` then ``tests``, in ``language``; ``kept`` is the code the
    harness took from the answer (a chat answer's code block, the sanitised answer), None when it used it as is."""

    language: str
    code: str
    tests: str
    kept: str | None = None


class Harness:
    """Base class; ``runner.make_harness`` picks one. Instances may hold what ``prepare`` found out."""

    name: ClassVar[str] = ""
    max_tokens: ClassVar[int] = 512  # its default budget of new tokens per sample
    top_p: ClassVar[float] = 0.95  # its nucleus sampling when not greedy
    prompt_modes: ClassVar[tuple[str, ...]] = ("completion", "chat")

    def __init__(self) -> None:
        # Where this run departs from the harness it reproduces, and why (written to summary.json and printed).
        self.notes: list[str] = []

    def select(self, problems: ProblemSet) -> ProblemSet:
        """The problems this harness runs (its task range); all of them unless it says otherwise."""
        return problems

    def prompt(self, problem: Problem) -> str:
        """Completion mode: the text a base model continues."""
        raise NotImplementedError

    def messages(self, problem: Problem) -> list[dict[str, str]]:
        """Chat mode: the conversation an instruct model answers (the backend applies its chat template)."""
        raise NotImplementedError

    def stop(self, problem: Problem, mode: str) -> tuple[str, ...]:
        """Strings that end a sample (not included in it)."""
        raise NotImplementedError

    def program(self, problem: Problem, answer: str, mode: str) -> SampleProgram:
        """The program one sample makes."""
        raise NotImplementedError

    def prepare(self, problems: list[Problem], sandbox: SandboxConfig) -> None:
        """Checks of what the programs need (toolchains, modules), before any generation; raise OcError for what
        the user must fix, add a note for what this run does differently. Called once per run; cheap to repeat."""

    def seen(self, problem: Problem, mode: str) -> str:
        """Everything the model is shown for ``problem``: a change makes earlier samples stale."""
        if mode == "completion":
            return self.prompt(problem)
        return repr(self.messages(problem))
