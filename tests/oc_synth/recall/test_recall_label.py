"""`oc-synth recall label`: seed labelling with an LLM through our backends (a loopback OpenAI-compatible server that
answers from the corpus's ground truth, and the tiny random Llama through transformers), resumable, prompt in a YAML
recipe; its output trains a classifier."""

import json
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from oc_common.errors import ConfigError
from oc_common.outputs import read_manifest
from oc_common.records import read_file_records
from oc_synth.cli import app
from oc_synth.recall.label import load_labeller


@pytest.fixture(scope="module")
def pages(tmp_path_factory, mixed_web):
    """~120 pages of a mixed_web corpus in one file, and the URLs of its code pages."""
    data = tmp_path_factory.mktemp("label_corpus")
    truth = mixed_web.generate(data, seeds=3, pages=120, seed=5, shards=1)
    return data / "web" / "part-00000.jsonl", set(truth["code_urls"])


TOO_LONG = (400, "This model's maximum context length is 256 tokens. However, your prompt contains at least 900 "
                 "input tokens.")  # vLLM's refusal


def oracle(code_urls, fail=(), too_long=()):
    """The 'LLM': answers from the truth, reading the URL the recipe put in the prompt; URLs in ``fail`` get a 400,
    those in ``too_long`` vLLM's context refusal."""
    def answer(prompt):
        url = re.search(r"Page URL: (\S+)", prompt).group(1)
        if url in fail:
            return ("status", 400)
        if url in too_long:
            return ("error", TOO_LONG)
        return "Yes." if url in code_urls else "No, it is not."
    return answer


def run(*args, ok=True):
    result = CliRunner().invoke(app, ["recall", "label", *map(str, args)], catch_exceptions=False)
    assert (result.exit_code == 0) == ok, result.output
    return result


def test_label_through_openai_server_resumes_and_feeds_training(pages, fake_openai, tmp_path, mixed_web):
    web, code_urls = pages
    records, _ = read_file_records(web)
    failing, long_pages = {r["url"] for r in records[:7]}, {records[7]["url"]}
    server = fake_openai
    server.respond, server.latency = oracle(code_urls, fail=failing, too_long=long_pages), 0.0
    out = tmp_path / "labels"
    args = [web, out, "-b", "openai", "-m", "served-model", "-B", f"base_url={server.base_url}", "-B",
            "api_key=secret-key", "-B", "max_retries=0", "--batch-size", "16", "-q"]
    first = run(*args)
    assert "7 pages failed in the backend" in first.output and "rerun the same command" in first.output
    assert "1 pages do not fit the model's context" in first.output
    logged, _ = read_file_records(out / "labels.jsonl")
    assert len(logged) == len(records) - 7 and not failing & {r["url"] for r in logged}
    # a prompt the model cannot take is a final outcome (the same prompt would fail again), never a seed
    assert [r["label"] for r in logged if r["url"] in long_pages] == ["prompt_too_long"]
    assert "secret-key" not in json.dumps(read_manifest(out))  # a key never lands in the manifest
    # the rerun asks only for the pages that failed, then every page is labelled as the truth says
    server.respond = oracle(code_urls)
    asked_before = len(server.requests)
    run(*args)
    assert len(server.requests) - asked_before == 7
    code, _ = read_file_records(out / "code.jsonl")
    other, _ = read_file_records(out / "other.jsonl")
    assert {r["url"] for r in code} == ({r["url"] for r in records} - long_pages) & code_urls
    assert len(code) + len(other) == len(records) - 1 and all(set(r) == {"url", "text", "label"} for r in code)
    body = server.requests[-1]
    assert body["model"] == "served-model" and body["temperature"] == 0 and body["max_tokens"] == 4
    assert body["messages"][0]["role"] == "system" and '"""' in body["messages"][1]["content"]
    # a third run has nothing left to ask
    asked = len(server.requests)
    run(*args)
    assert len(server.requests) == asked
    # the labels are seeds and clean negatives for training (negatives: given ones first, no corpus sample needed)
    clf = tmp_path / "clf"
    result = CliRunner().invoke(app, ["recall", "train", "--seeds", str(out / "code.jsonl"), "--corpus", str(web),
                                      "--negatives", str(out / "other.jsonl"), "-o", str(clf), "-q"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    meta = json.loads((clf / "classifier.json").read_text())
    assert meta["stats"]["counters"]["negatives_given"] == meta["train_negatives"] == len(code)
    assert meta["evaluation"]["passed"] and meta["evaluation"]["auc"] > 0.95


def test_sample_is_a_fixed_uniform_draw(pages, fake_openai, tmp_path):
    web, code_urls = pages
    server = fake_openai
    server.respond, server.latency = oracle(code_urls), 0.0
    base = ["-b", "openai", "-m", "m", "-B", f"base_url={server.base_url}", "--sample", "25", "-q"]
    run(web, tmp_path / "a", *base)
    run(web, tmp_path / "b", *base)
    run(web, tmp_path / "c", *base, "--seed", "1")
    a, b, c = ({r["url"] for r in read_file_records(tmp_path / d / "labels.jsonl")[0]} for d in "abc")
    assert len(a) == 25 and a == b and a != c


def test_label_with_tiny_model_through_transformers(pages, tmp_path_factory, tmp_path):
    """The real hf backend on the tiny random Llama: its answers are gibberish, so they are kept as unparsed (with
    the answer), never seeds; a rerun generates nothing."""
    from oc_synth.backends.tiny import build_tiny_llama

    model = build_tiny_llama(tmp_path_factory.mktemp("tiny"))
    web, _ = pages
    out = tmp_path / "labels"
    args = [web, out, "-b", "hf", "-m", model, "--sample", "3", "-s", "max_chars=200", "-s", "sampling.max_tokens=3"]
    result = run(*args)
    assert "recall label" in result.output
    logged, _ = read_file_records(out / "labels.jsonl")
    assert len(logged) == 3 and all(r["label"] in ("code", "other", "unparsed") and isinstance(r["answer"], str)
                                    for r in logged)
    assert len(read_file_records(out / "code.jsonl")[0]) == sum(r["label"] == "code" for r in logged)
    stats = json.loads((out / ".oc" / "stats.json").read_text())
    assert stats["counters"]["labelled_unparsed"] == sum(r["label"] == "unparsed" for r in logged)
    again = run(*args, "-q")
    assert again.exit_code == 0 and json.loads((out / ".oc" / "stats.json").read_text())["counters"][
        "done_earlier"] == 3
    # another recipe setting is another labelling: refused instead of mixing two
    result = CliRunner().invoke(app, ["recall", "label", *map(str, args[:-1]), "sampling.max_tokens=5"])
    assert result.exit_code != 0 and "other options" in str(result.exception)


def test_answers_are_read_by_the_first_label_word():
    lab = load_labeller()
    assert lab.parse("Yes") == "code" and lab.parse("no.") == "other" and lab.parse("**YES**, it has code") == "code"
    assert lab.parse("Answer: no - yes would be wrong") == "other"  # the first word that means a label decides
    assert lab.parse("Maybe") == "unparsed" and lab.parse("yesterday") == "unparsed"  # whole words only
    msgs = lab.messages({"url": "https://a.example/q/1", "text": "§" * 10_000})
    assert [m["role"] for m in msgs] == ["system", "user"] and msgs[1]["content"].count("§") == 3000


def test_recipe_mistakes_are_one_clear_line(tmp_path, pages):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nprompt: '{{ page_text }}'\nanswers: {code: ['yes'], other: ['no']}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: prompt: 'page_text' is undefined"):
        load_labeller(bad)
    bad.write_text("name: x\nprompt: '{{ text }}'\nanswers: {code: [yes], other: [no]}\n")
    with pytest.raises(ConfigError, match="answers: .*write the words in quotes"):  # YAML's yes is true
        load_labeller(bad)
    bad.write_text("name: x\nprompt: '{{ text }}'\nanswers: {relevant: ['yes'], other: ['no']}\n")
    with pytest.raises(ConfigError, match="answers.*needs a `code` label"):
        load_labeller(bad)
    bad.write_text("name: x\nprompt: '{{ text }}'\nanswers: {code: ['yes'], other: ['Yes']}\n")
    with pytest.raises(ConfigError, match="'Yes' means both code and other"):
        load_labeller(bad)
    web, _ = pages
    proc = subprocess.run([sys.executable, "-m", "oc_synth.cli", "recall", "label", str(web), str(tmp_path / "o"),
                           "-m", "m", "-s", "max_char=10"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "max_char: unknown key" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()  # refused before anything was written
