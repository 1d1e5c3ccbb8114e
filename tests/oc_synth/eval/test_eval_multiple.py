"""MultiPL-E through our sandbox: the format read, MultiPL-E's protocol (stripped prompt, the row's stop tokens, 512
new tokens, program = prompt + completion + "\\n" + tests), and right and wrong completions scored in Python, C++,
Java, JavaScript, Rust and shell (our own problems in MultiPL-E's format: eval_fixtures.MULTIPLE_PROBLEMS)."""

import json

import pytest
from eval_fixtures import JAVA_PAIR_PROBLEM, MULTIPLE_PROBLEMS, multiple_row, write_jsonl

from oc_common.errors import OcError
from oc_synth.eval.canned import CannedBackend
from oc_synth.eval.data import load_problems
from oc_synth.eval.multiple import MultiPLEHarness, split_program
from oc_synth.eval.runner import EvalSettings, make_harness, run_eval

SANDBOX_LANGUAGE = {"py": "python", "cpp": "cpp", "java": "java", "js": "javascript", "rs": "rust", "sh": "shell"}


def load(tmp_path, language, problem=None, name="OC_0_sum_of_squares"):
    path = write_jsonl(tmp_path / f"humaneval-{language}.jsonl", [multiple_row(language, problem, name)])
    return load_problems("multipl-e", path, harness=make_harness(None, "multipl-e"))


@pytest.mark.parametrize("language", sorted(MULTIPLE_PROBLEMS))
def test_the_two_parts_are_multiples_program(language, tmp_path):
    [p] = load(tmp_path, language).problems
    assert p.language == SANDBOX_LANGUAGE[language] and p.stop == tuple(MULTIPLE_PROBLEMS[language]["stop_tokens"])
    right = MULTIPLE_PROBLEMS[language]["right"]
    code, tests = split_program(p, right)
    theirs = p.prompt + right + "\n" + p.tests
    if language == "python":
        assert code == p.prompt + right and tests.startswith(p.tests)
    elif language == "java":
        # One class cannot span two files: the tests become a subclass holding the same main; javatuples (unused
        # here) is not imported, as the sandbox has no jar for it.
        assert "org.javatuples" not in code and code.count("class Problem {") == 1
        assert "\npublic class ProblemTests extends Problem {\n    public static void main(" in tests
        assert theirs.replace("import org.javatuples.*;\n", "").split("    public static void main(")[0] in code
    elif language != "py":
        assert code + "\n" + tests == theirs


@pytest.mark.parametrize("language", sorted(MULTIPLE_PROBLEMS))
def test_right_completions_pass_and_wrong_ones_fail(language, tmp_path):
    ps = load(tmp_path, language)
    answers = MULTIPLE_PROBLEMS[language]
    backend = CannedBackend(lambda request, i: [answers["right"], answers["wrong"]][i], model="infly/OpenCoder-8B")
    summary = run_eval(ps, backend, tmp_path / "out", EvalSettings(n=2, ks=(1, 2)))
    [result] = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [s["verdict"] for s in result["samples"]] == ["passed", "failed"], result["samples"]
    assert summary["pass@1"] == 0.5 and summary["pass@2"] == 1.0
    assert summary["harness"] == "multipl-e" and summary["language"] == SANDBOX_LANGUAGE[language]
    # MultiPL-E's protocol: the prompt stripped, the row's stop tokens, 512 new tokens, top_p 0.95.
    [request] = backend.requests
    assert request.prompt == ps.problems[0].prompt.strip()
    assert request.sampling.stop == tuple(answers["stop_tokens"])
    assert (request.sampling.max_tokens, request.sampling.top_p) == (512, 0.95)
    sample = json.loads((tmp_path / "out" / "samples.jsonl").read_text().splitlines()[0])
    assert sample["solution"] == split_program(ps.problems[0], answers["right"])[0]
    assert sample.get("language", "python") == SANDBOX_LANGUAGE[language]


def test_a_java_problem_needing_javatuples_fails_to_compile_and_is_counted(tmp_path):
    ps = load(tmp_path, "java", JAVA_PAIR_PROBLEM, name="OC_1_min_max")
    code, _ = split_program(ps.problems[0], JAVA_PAIR_PROBLEM["right"])
    assert "import org.javatuples.*;" in code  # used: kept, so the failure says what is missing
    harness = MultiPLEHarness()
    summary = run_eval(ps, CannedBackend(lambda r, i: JAVA_PAIR_PROBLEM["right"]), tmp_path / "out",
                       EvalSettings(), harness=harness)
    [result] = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    sample = result["samples"][0]
    assert sample["verdict"] == "error" and "javatuples" in sample["verdict_detail"] + sample["stderr_tail"]
    assert summary["harness_notes"] == harness.notes and "1 Java problem(s) use javatuples" in harness.notes[0]


def test_multiple_data_mistakes_are_one_line_errors(tmp_path):
    lua = dict(multiple_row("py"), language="lua")
    with pytest.raises(OcError, match="MultiPL-E language 'lua': the sandbox runs"):
        load_problems("multipl-e", write_jsonl(tmp_path / "lua.jsonl", [lua]))
    mixed = write_jsonl(tmp_path / "mixed.jsonl", [multiple_row("py"), multiple_row("cpp", name="OC_1")])
    with pytest.raises(OcError, match="several languages"):
        load_problems("multipl-e", mixed, harness=make_harness(None, "multipl-e"))
    cpp = write_jsonl(tmp_path / "cpp.jsonl", [multiple_row("cpp")])
    with pytest.raises(OcError, match="runs as `oc-synth eval multipl-e`"):
        load_problems("humaneval", cpp)
    with pytest.raises(OcError, match="runs as `oc-synth eval multipl-e`"):
        load_problems("multipl-e", write_jsonl(tmp_path / "he.jsonl", [{"task_id": "x", "prompt": "", "test": "",
                                                                        "entry_point": "f"}]))
    broken_java = dict(multiple_row("java"), tests="    assert(true);\n")
    with pytest.raises(OcError, match="Java tests of an unknown shape"):
        load_problems("multipl-e", write_jsonl(tmp_path / "java.jsonl", [broken_java]))
    with pytest.raises(OcError, match="nuprl/MultiPL-E"):
        load_problems("multipl-e")
    with pytest.raises(OcError, match="completion prompts only"):
        run_eval(load(tmp_path, "py"), CannedBackend(lambda r, i: ""), tmp_path / "o", EvalSettings(prompt_mode="chat"))
