"""Fixtures: our hand-written MBPP-style problems written out in every format ``oc-synth eval`` reads."""

import json

import pytest
from eval_fixtures import ENTRY, MBPP_PROBLEMS, PLUS_INPUTS, plus_test_script, write_jsonl


@pytest.fixture
def mbpp_original(tmp_path):
    """The original mbpp.jsonl format."""
    return write_jsonl(tmp_path / "mbpp.jsonl", [
        {"task_id": t, "text": text, "code": code, "test_list": asserts, "test_setup_code": setup,
         "challenge_test_list": []} for t, text, code, asserts, setup in MBPP_PROBLEMS])


@pytest.fixture
def mbpp_sanitized(tmp_path):
    """MBPP sanitized: a JSON list; `prompt` instead of `text`, `test_imports` instead of `test_setup_code`."""
    path = tmp_path / "sanitized-mbpp.json"
    path.write_text(json.dumps([
        {"source_file": "ours", "task_id": t, "prompt": text, "code": code, "test_imports": [setup] if setup else [],
         "test_list": asserts} for t, text, code, asserts, setup in MBPP_PROBLEMS]), encoding="utf-8")
    return path


@pytest.fixture
def mbppplus_hf(tmp_path):
    """evalplus/mbppplus as saved from the Hugging Face dataset: MBPP sanitized fields plus a `test` script."""
    return write_jsonl(tmp_path / "mbppplus.jsonl", [
        {"task_id": t, "code": code, "prompt": text, "source_file": "ours",
         "test_imports": [setup] if setup else [], "test_list": asserts, "test": plus_test_script(t)}
        for t, text, code, asserts, setup in MBPP_PROBLEMS])


@pytest.fixture
def mbppplus_release(tmp_path):
    """The EvalPlus release format (MbppPlus.jsonl): inputs, no expected outputs, a docstring prompt."""
    rows = []
    for t, text, code, asserts, _setup in MBPP_PROBLEMS:
        base, plus = PLUS_INPUTS[t]
        rows.append({"task_id": f"Mbpp/{t}", "prompt": f'"""\n{text}\n{asserts[0]}\n"""\n', "entry_point": ENTRY[t],
                     "canonical_solution": code.replace("\r\n", "\n"), "base_input": base, "plus_input": plus,
                     "atol": 0, "assertion": "\n".join(asserts), "contract": ""})
    return write_jsonl(tmp_path / "MbppPlus.jsonl", rows)
