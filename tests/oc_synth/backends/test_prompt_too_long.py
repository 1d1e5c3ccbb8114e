"""A prompt longer than the model's context is its own outcome: eval's verdict ``prompt_too_long`` (counted in the
summary as problems not asked), generate's drop reason ``prompt_too_long`` (the seed is done, not retried), through
the CLIs with the hf backend on a tiny random Llama with 2,048 positions. The same through a real vLLM server and the
vLLM engine: test_vllm_real.py."""

import json

import pytest
from typer.testing import CliRunner

from oc_common.outputs import read_stats
from oc_common.records import read_file_records
from oc_synth.cli import app
from oc_synth.synth.finalize import REJECTED

# "~" never occurs in the tiny tokenizer's training text: one token per character, so this is > 2,048 tokens.
LONG_TEXT = "~" * 3000


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from oc_synth.backends.tiny import build_tiny_llama

    return str(build_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama", context=2048))


def problems(path):
    """Two HumanEval-format problems: one that fits the context, one whose docstring does not."""
    check = "def check(candidate):\n    assert candidate({}) == {}\n"
    rows = [{"task_id": "Fits/0", "prompt": 'def add(a, b):\n    """Add a and b."""\n', "entry_point": "add",
             "canonical_solution": "    return a + b\n", "test": check.format("1, 2", 3)},
            {"task_id": "Long/1", "prompt": f'def sub(a, b):\n    """{LONG_TEXT}"""\n', "entry_point": "sub",
             "canonical_solution": "    return a - b\n", "test": check.format("3, 2", 1)}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_eval_counts_problems_it_could_not_ask(tiny_model, tmp_path):
    out = tmp_path / "eval"
    r = CliRunner().invoke(app, ["eval", "humaneval", tiny_model, "--data", str(problems(tmp_path / "p.jsonl")),
                                 "--backend", "hf", "--max-tokens", "8", "--out", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["problems"] == 2 and summary["problems_not_asked"] == 1 and summary["complete"] is True
    assert summary["verdicts"]["prompt_too_long"] == 1 and "generation_error" not in summary["verdicts"]
    fits, long = (json.loads(line) for line in (out / "results.jsonl").read_text().splitlines())
    assert fits["samples"][0]["verdict"] not in ("prompt_too_long", "generation_error")  # asked, then executed
    (s,) = long["samples"]
    assert s["verdict"] == "prompt_too_long" and not s["passed"] and s["completion"] is None
    assert " tokens and the model's context is 2048 (max_position_embeddings in its config.json)" in s["verdict_detail"]
    assert "not asked: 1 problem(s)" in " ".join(r.output.split())


def test_generate_drops_a_seed_whose_prompt_does_not_fit(tiny_model, tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(json.dumps({"id": "short", "text": "def add(a, b):\n    return a + b\n"}) + "\n"
                     + json.dumps({"id": "long", "text": LONG_TEXT}) + "\n")
    out = tmp_path / "out"
    args = ["generate", "annealing-snippets", "--seeds", str(seeds), "--out", str(out), "--backend", "hf",
            "--model", tiny_model, "--max-tokens", "8", "--no-verify"]
    r = CliRunner().invoke(app, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    stats = read_stats(out)
    assert stats["counters"]["seeds"] == 2 and stats["counters"]["backend_failed"] == 0
    assert stats["counters"]["generated"] == 1  # the long seed never reached the model
    assert stats["groups"]["drop reasons"]["prompt_too_long"] == 1
    rejected, _ = read_file_records(out / REJECTED / "seeds.jsonl")
    (long,) = [rec for rec in rejected if rec["seed_id"] == "long"]
    assert long["drop_reasons"] == ["prompt_too_long"] and long["sample"] is None
    assert long["drop_details"][0].startswith("step snippet: the prompt is ")
    assert "prompt_too_long" in r.output  # the closing summary's drop reasons
    # the seed is done: a rerun asks nothing again
    again = CliRunner().invoke(app, args, catch_exceptions=False)
    assert again.exit_code == 0 and read_stats(out)["counters"] == stats["counters"]
