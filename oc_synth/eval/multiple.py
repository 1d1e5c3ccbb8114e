"""MultiPL-E (Cassano et al. 2023: HumanEval and MBPP translated to other languages) through our sandbox.

Data: one language of the Hugging Face dataset ``nuprl/MultiPL-E`` saved as a file (rows: name, language, prompt,
tests, stop_tokens); nothing is downloaded. Languages: those MultiPL-E has and our sandbox has toolchains for
(``LANGUAGES``: Python, C++, Java, JavaScript, Rust, shell).

The protocol is MultiPL-E's own (its ``multipl_e/completions.py``, ``automodel.py`` and ``evaluation/``), the only
one we run for this benchmark: the model continues the prompt (stripped of surrounding whitespace, as its
``automodel.py`` does) until one of the row's stop tokens, at most 512 new tokens (``MAX_TOKENS``); the program is
``prompt + completion + "\\n" + tests``; it passes iff it builds and exits with status 0.

Our sandbox runs a sample as a code part and a tests part. MultiPL-E's tests open with the closing brace of the
function the prompt started; that line moves to the code part, so the two parts joined are the same program. Java
keeps each public class in a file of its own, and MultiPL-E's tests are the rest of the prompt's class: there the
tests become a subclass (``class ProblemTests extends Problem``, after the prompt's imports) holding the same
``main``, whose unqualified calls reach the prompt's static methods through inheritance. MultiPL-E compiles Java
with the javatuples jar on the class path; ours has none, so ``import org.javatuples.*;`` is left out where nothing
uses it, and a problem that does use a javatuples type fails to compile here (``prepare`` counts them in the run's
notes). The sandbox runs the tests its own way (docs/sandbox.md: a wrapped ``main``, an end-of-tests marker); what
passes is the same: the program builds, its tests run to their end and no check fails.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from oc_common.errors import OcError
from oc_common.log import get_logger
from oc_synth.eval.harness import Harness, SampleProgram
from oc_synth.eval.problems import TESTS_FINISHED, Problem
from oc_synth.sandbox import available_languages

if TYPE_CHECKING:
    from oc_synth.eval.data import ProblemSet
    from oc_synth.sandbox import SandboxConfig

log = get_logger(__name__)

# MultiPL-E's language codes (and the names the dataset's configs use) -> our sandbox's language.
LANGUAGES = {"py": "python", "python": "python", "cpp": "cpp", "java": "java", "js": "javascript",
             "javascript": "javascript", "rs": "rust", "rust": "rust", "sh": "shell", "bash": "shell"}
MAX_TOKENS = 512  # multipl_e/completions.py MAX_TOKENS
TOP_P = 0.95  # multipl_e/completions.py TOP_P
FIELDS = ("name", "language", "prompt", "tests", "stop_tokens")
_JAVA_CLASS = re.compile(r"^class\s+(\w+)\s*\{", re.M)
_JAVATUPLES_IMPORT = re.compile(r"^import org\.javatuples\.\*;\n", re.M)
_JAVATUPLES_USE = re.compile(r"\b(?:Unit|Pair|Triplet|Quartet|Quintet|Sextet|Septet|Octet|Ennead|Decade|KeyValue|"
                             r"LabelValue)\s*(?:<|\.with\s*\()")


def is_multiple_record(r: dict[str, Any]) -> bool:
    return all(f in r for f in FIELDS)


def multiple_problem(r: dict[str, Any]) -> Problem:
    """A MultiPL-E row as a ``Problem`` (raises ValueError for a language we do not run or tests we cannot split)."""
    code = str(r["language"]).lower()
    if code not in LANGUAGES:
        raise ValueError(f"MultiPL-E language {r['language']!r}: the sandbox runs {', '.join(sorted(set(LANGUAGES)))}")
    stop = r["stop_tokens"]
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise ValueError(f"stop_tokens must be a list of strings (got {stop!r})")
    problem = Problem(task_id=str(r["name"]), benchmark="multipl-e", prompt=r["prompt"], description=r["prompt"],
                      entry_point="", tests=r["tests"], language=LANGUAGES[code], stop=tuple(stop))
    split_program(problem, "")  # a row whose tests do not have MultiPL-E's shape fails here, not per sample
    return problem


def split_program(problem: Problem, completion: str) -> tuple[str, str]:
    """(code, tests) for the sandbox, which together are MultiPL-E's ``prompt + completion + "\\n" + tests``."""
    head = problem.prompt + completion
    if problem.language == "python":
        return head, problem.tests.rstrip("\n") + "\n" + TESTS_FINISHED
    if problem.language == "java":
        return _split_java(problem, head)
    first, sep, rest = problem.tests.partition("\n")
    if sep and first.strip() == "}":
        return f"{head}\n{first}", rest
    return head, problem.tests


def _split_java(problem: Problem, head: str) -> tuple[str, str]:
    cls = _JAVA_CLASS.search(problem.prompt)
    lines = problem.tests.rstrip().split("\n")
    if cls is None or len(lines) < 3 or lines[0].strip() != "}" or lines[-1].strip() != "}":
        raise ValueError("Java tests of an unknown shape: expected the prompt's `class Name {` and tests that close "
                         "its method, hold a main method and close the class")
    if not _JAVATUPLES_USE.search(head + problem.tests):
        head = _JAVATUPLES_IMPORT.sub("", head)
    name = cls.group(1)
    code = f"{head}\n{lines[0]}\n}}\n"
    # Imports hold per file: the tests' file gets the prompt's too.
    imports = "".join(line + "\n" for line in head[:cls.start()].splitlines() if line.startswith("import "))
    tests = f"{imports}public class {name}Tests extends {name} {{\n" + "\n".join(lines[1:-1]) + "\n}\n"
    return code, tests


def uses_javatuples(problem: Problem) -> bool:
    return problem.language == "java" and bool(_JAVATUPLES_USE.search(problem.prompt + problem.tests))


class MultiPLEHarness(Harness):
    name = "multipl-e"
    max_tokens = MAX_TOKENS
    top_p = TOP_P
    prompt_modes = ("completion",)

    def select(self, problems: ProblemSet) -> ProblemSet:
        languages = sorted({p.language for p in problems.problems})
        if len(languages) > 1:
            raise OcError(f"{problems.source}: problems in several languages ({', '.join(languages)}); run one "
                          "MultiPL-E language at a time (one saved config per file)")
        return problems

    def prompt(self, problem: Problem) -> str:
        return problem.prompt.strip()

    def messages(self, problem: Problem) -> list[dict[str, str]]:
        raise OcError("MultiPL-E is a completion benchmark (the model continues the prompt); use --prompt-mode "
                      "completion, also for instruct models")

    def stop(self, problem: Problem, mode: str) -> tuple[str, ...]:
        return problem.stop

    def program(self, problem: Problem, answer: str, mode: str) -> SampleProgram:
        code, tests = split_program(problem, answer)
        return SampleProgram(problem.language, code, tests)

    def prepare(self, problems: list[Problem], sandbox: SandboxConfig) -> None:
        languages = {p.language for p in problems}
        missing = sorted(languages - set(available_languages()))
        if missing:
            raise OcError(f"no toolchain for {', '.join(missing)} on this machine, so MultiPL-E's programs cannot "
                          "be built or run here (see docs/sandbox.md for what each language needs)")
        tuples = [p.task_id for p in problems if uses_javatuples(p)]
        if tuples and not any("javatuples" in n for n in self.notes):
            note = (f"{len(tuples)} Java problem(s) use javatuples types ({', '.join(tuples[:5])}"
                    f"{', ...' if len(tuples) > 5 else ''}), which MultiPL-E compiles with the javatuples jar; the "
                    "sandbox's Java has no such jar, so they fail to compile here")
            log.warning(note)
            self.notes.append(note)
