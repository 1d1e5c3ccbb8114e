"""A real vLLM (the CPU build, in its own environment: tests/vllm_server.py) serving the model the demo trains.

The model: the `tiny` preset pretrained for 2 steps on Megatron-Core with examples/pretrain_tiny.yaml, then
`oc-megatron convert to-hf`, as scripts/demo.sh does. Its heads are 32 wide (vLLM's CPU attention rejects 16) and
its context is 256 tokens. One OpenAI-compatible server (``vllm.entrypoints.openai.api_server`` on 127.0.0.1, served
as "tiny-demo", so the name is no local directory and prompt lengths are the server's to judge unless a tokenizer is
given) answers `oc-synth generate`, `oc-synth eval` and `oc-synth recall label` through ``--backend openai``; the
same model runs through our vllm offline backend inside the vLLM environment. Skipped, saying why, where there is no
vLLM environment (bash scripts/install_vllm.sh makes one).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner
from vllm_server import REPO, VLLMServer, run_in_vllm_env

from oc_common.outputs import read_stats
from oc_common.records import read_file_records
from oc_synth.cli import app
from oc_synth.synth.finalize import REJECTED

SERVED = "tiny-demo"
TOO_LONG = "~" * 400  # one token per "~" with the tiny tokenizer: past the 256-token context
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def oc_megatron(*args: str, log: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "oc_megatron.cli", *args], capture_output=True, text=True,
                          timeout=900, cwd=REPO)
    log.write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.fixture(scope="module")
def demo_model(vllm_env, tmp_path_factory) -> Path:
    """What scripts/demo.sh makes, in small: tiny data, `oc-megatron train examples/pretrain_tiny.yaml` (2 steps),
    `oc-megatron convert to-hf`."""
    from oc_megatron.data.preprocess import preprocess
    from oc_megatron.data.tiny import stdlib_code_records, train_bpe_tokenizer, write_jsonl

    root = tmp_path_factory.mktemp("demo")
    records = list(stdlib_code_records(max_files=80, max_bytes=60_000))
    write_jsonl(records, root / "corpus.jsonl")
    tokenizer = train_bpe_tokenizer((r["text"] for r in records), 1024, root / "tokenizer")
    preprocess(root / "corpus.jsonl", root / "code", tokenizer, workers=1, append_eod=True, progress=False)
    oc_megatron("train", str(REPO / "examples" / "pretrain_tiny.yaml"), "-s", f"output_dir={root / 'pretrain'}",
                "-s", f"data.tokenizer={tokenizer}", "-s", f"data.blend=[{{path: {root / 'code'}, weight: 1.0}}]",
                "-s", "train.iters=2", "-s", "checkpoint.interval=2", "-s", "train.eval_interval=2",
                "-s", "train.eval_iters=1", "-s", "schedule.warmup_steps=1", "-s", "schedule.decay_steps=1",
                log=root / "train.log")
    oc_megatron("convert", "to-hf", str(root / "pretrain" / "checkpoints"), str(root / "hf"), "--tokenizer",
                str(tokenizer), log=root / "convert.log")
    return root / "hf"


@pytest.fixture(scope="module")
def server(vllm_env, demo_model, tmp_path_factory):
    with VLLMServer(vllm_env[0], demo_model, tmp_path_factory.mktemp("vllm") / "server.log",
                    served_model_name=SERVED) as s:
        yield s


def run_cli(*args: str):
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def openai_args(server, *extra: str) -> list[str]:
    return ["--backend", "openai", "-B", f"base_url={server.base_url}", *extra]


def test_the_demo_model_is_served_by_vllm(server, demo_model):
    from oc_megatron.models.opencoder import PRESETS
    from oc_synth.backends import GenerationRequest, SamplingParams, make_backend

    config = json.loads((demo_model / "config.json").read_text())
    tiny = PRESETS["tiny"]
    assert config["head_dim"] == tiny.head_dim == 32 and config["max_position_embeddings"] == tiny.seq_length == 256
    greedy = [GenerationRequest("c", prompt="def add(a, b):", sampling=SamplingParams(max_tokens=8)),
              GenerationRequest("m", messages=[{"role": "user", "content": "Add two numbers."}],
                                sampling=SamplingParams(max_tokens=8))]
    served = make_backend("openai", SERVED, base_url=server.base_url)
    out = served.generate(greedy)
    assert all(c.ok and c.completion_tokens >= 1 for c in out), [c.error for c in out]
    with make_backend("hf", str(demo_model)) as hf:  # one interface: greedy decoding agrees across engines
        assert [c.texts for c in hf.generate(greedy)] == [c.texts for c in out]
    models = json.loads(subprocess.run(["curl", "-s", f"{server.base_url}/models"], capture_output=True, text=True,
                                       timeout=30).stdout)
    assert [(m["id"], m["max_model_len"]) for m in models["data"]] == [(SERVED, 256)]


def test_server_errors_reach_the_verdict_whole_and_too_long_prompts_are_their_own_verdict(server, tmp_path):
    """HumanEval through the server (OpenCodeEval's 12 stop strings: 4 to the server, all applied here), plus a
    problem whose prompt does not fit: prompt_too_long in the server's words; then the same 12 stop strings all sent
    (max_stop=12): the server's two-line validation error reaches the verdict whole."""
    data = tmp_path / "problems.jsonl"
    from oc_synth.eval.data import humaneval_package_records

    rows = humaneval_package_records()[:3]
    rows.append({**rows[0], "task_id": "Long/0", "prompt": rows[0]["prompt"] + f'    """{TOO_LONG}"""\n'})
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "eval"
    run_cli("eval", "humaneval", SERVED, "--data", str(data), "--max-tokens", "16", "--out", str(out),
            *openai_args(server))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["problems"] == 4 and summary["problems_not_asked"] == 1 and summary["complete"] is True
    results = {r["task_id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    for tid in ("HumanEval/0", "HumanEval/1", "HumanEval/2"):  # asked, answered, run in the sandbox
        (s,) = results[tid]["samples"]
        assert s["completion"] is not None and s["verdict"] not in ("generation_error", "prompt_too_long"), s
    (s,) = results["Long/0"]["samples"]
    assert s["verdict"] == "prompt_too_long" and s["verdict_detail"].startswith(
        "the server refused the prompt: HTTP 400 (after 1 attempt): This model's maximum context length is 256 "
        "tokens. However, your prompt contains at least ")

    # with the model's tokenizer at hand, the long prompt is found before sending
    counted = tmp_path / "eval_counted"
    run_cli("eval", "humaneval", SERVED, "--data", str(data), "--max-tokens", "16", "--out", str(counted),
            *openai_args(server, "-B", f"tokenizer={server.model}"))
    detail = next(json.loads(x) for x in (counted / "results.jsonl").read_text().splitlines()
                  if x.startswith('{"task_id": "Long/0"'))["samples"][0]["verdict_detail"]
    assert detail.startswith("the prompt is ") and (f"the model's context is 256 (max_model_len of the model served "
                                                    f"at {server.base_url})") in detail

    all_stops = tmp_path / "eval_all_stops"
    run_cli("eval", "humaneval", SERVED, "--limit", "1", "--max-tokens", "16", "--out", str(all_stops),
            *openai_args(server, "-B", "max_stop=12"))
    (row,) = map(json.loads, (all_stops / "results.jsonl").read_text().splitlines())
    detail = row["samples"][0]["verdict_detail"]
    assert row["samples"][0]["verdict"] == "generation_error"
    lines = detail.splitlines()
    assert lines[0] == "HTTP 400 (after 1 attempt): 2 validation errors:" and len(lines) == 3, detail
    assert "'type': 'string_type'" in lines[1]
    assert "List should have at most 4 items after validation, not 12" in lines[2]


def test_generate_through_the_server(server, tmp_path):
    """evol-instruct (two steps: evolve the seed, then answer it), whose prompts fit the 256-token context, and a seed
    whose prompt does not: its own drop reason, in the server's words, the seed done."""
    seeds = tmp_path / "seeds.jsonl"
    rows = read_file_records(REPO / "examples" / "synth" / "evol.jsonl")[0][:2]
    rows.append({"id": "evol-too-long", "instruction": TOO_LONG})
    seeds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "synth"
    run_cli("generate", "evol-instruct", "--seeds", str(seeds), "--out", str(out), "--model", SERVED,
            "--max-tokens", "16", "--no-verify", *openai_args(server))
    counters = read_stats(out)["counters"]
    assert counters["seeds"] == 3 and counters["generated"] == 2 and counters["backend_failed"] == 0
    rejected, _ = read_file_records(out / REJECTED / "seeds.jsonl")
    by_seed = {r["seed_id"]: r for r in rejected}
    assert by_seed["evol-too-long"]["drop_reasons"] == ["prompt_too_long"]
    assert by_seed["evol-too-long"]["drop_details"][0].startswith(
        "step evolve: the server refused the prompt: HTTP 400 (after 1 attempt): This model's maximum context length "
        "is 256 tokens.")
    answered = [r for r in rejected if r["seed_id"] != "evol-too-long"]  # gibberish: kept with its parse failure
    assert len(answered) == 2 and all(set(r["raw"]) == {"evolve", "answer"} and r["provenance"]["backend"] == "openai"
                                      for r in answered)


def test_recall_label_through_the_server(server, tmp_path):
    pages = tmp_path / "pages.jsonl"
    pages.write_text("".join(json.dumps({"url": f"https://example.com/{i}", "text": text}) + "\n" for i, text in
                             enumerate(["def add(a, b):\n    return a + b", "The weather is sunny today.",
                                        "pip install requests; import requests"])))
    out = tmp_path / "labels"
    run_cli("recall", "label", str(pages), str(out), "--model", SERVED, "-s", "max_chars=200", *openai_args(server))
    labels, _ = read_file_records(out / "labels.jsonl")
    assert len(labels) == 3 and {r["label"] for r in labels} <= {"code", "other", "unparsed"}
    assert all(isinstance(r["answer"], str) and r["answer"] for r in labels)  # what the model answered, kept
    counters = read_stats(out)["counters"]
    assert counters.get("backend_failed", 0) == 0
    assert sum(counters[f"labelled_{k}"] for k in ("code", "other", "unparsed")) == 3


def test_the_same_model_through_the_vllm_offline_backend(vllm_env, demo_model, server):
    """Our vllm backend, run inside the vLLM environment: the engine's greedy answers equal the server's, prompt
    lengths are counted as vLLM counts them, a too-long prompt is refused alone (vLLM would fail the whole batch),
    greedy n > 1 copies one answer."""
    from oc_synth.backends import GenerationRequest, SamplingParams, make_backend

    proc = run_in_vllm_env(vllm_env[0], Path(__file__).with_name("vllm_offline_driver.py"), str(demo_model))
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert proc.returncode == 0 and line, proc.stderr[-4000:]
    got = json.loads(line[len("RESULT "):])
    assert got["context"] == 256
    out = got["completions"]
    for rid in ("completion", "chat", "greedy_n3", "sampled", "structured"):
        assert out[rid]["error"] is None and out[rid]["prompt_tokens"] == got["counted"][rid], (rid, out[rid])
    assert out["greedy_n3"]["texts"] == out["completion"]["texts"] * 3
    assert len(out["sampled"]["texts"]) == 2
    assert out["too_long"]["error_kind"] == "prompt_too_long" and out["too_long"]["error"].startswith(
        "the prompt is 400 tokens and the model's context is 256 (the engine's max_model_len)")
    assert out["structured"]["texts"][0].startswith("{")
    served = make_backend("openai", SERVED, base_url=server.base_url)
    c, m = served.generate([
        GenerationRequest("c", prompt="def add(a, b):", sampling=SamplingParams(max_tokens=8)),
        GenerationRequest("m", messages=[{"role": "user", "content": "Write a function that adds two numbers."}],
                          sampling=SamplingParams(max_tokens=8))])
    assert (c.texts, m.texts) == (out["completion"]["texts"], out["chat"]["texts"])
