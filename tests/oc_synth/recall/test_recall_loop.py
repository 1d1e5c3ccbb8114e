"""The whole loop on the demo's generated web corpus (~2,100 pages, 5 code domains among 8 non-code ones), through
the CLI: `oc-synth recall run ... --rounds 3`."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from oc_common.errors import OutputExistsError
from oc_common.outputs import shard_marker
from oc_common.records import iter_records, read_file_records
from oc_synth.cli import app


@pytest.fixture(scope="module")
def demo(tmp_path_factory, corpus_maker):
    data = tmp_path_factory.mktemp("demo")
    truth = corpus_maker.generate(data, scale=1.0, seed=0)
    return data, truth


def run_cli(*args):
    result = CliRunner().invoke(app, ["recall", *map(str, args)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def recall_args(example_dir):
    def args(data, out, *extra):
        return ["run", "--seeds", data / "seeds.jsonl", "--corpus", data / "web", "--out", out, "--url-patterns",
                example_dir / "url_patterns.yaml", "--config", example_dir / "config.yaml", *extra]

    return args


@pytest.fixture(scope="module")
def loop(demo, tmp_path_factory, recall_args):
    data, truth = demo
    out = tmp_path_factory.mktemp("loop") / "recall"
    result = run_cli(*recall_args(data, out, "--rounds", "3"))
    reports = [json.loads((out / f"round_{k}" / "report.json").read_text()) for k in (1, 2, 3)]
    domains = [json.loads((out / f"round_{k}" / "domains.json").read_text()) for k in (1, 2, 3)]
    return out, truth, reports, domains, result.output


def test_loop_recovers_every_code_domain_and_no_other(loop):
    out, truth, reports, domains, _ = loop
    for k, table in enumerate(domains, 1):
        assert {d for d, v in table.items() if v["code_related"]} <= set(truth["code_domains"]), f"round {k}"
        assert set(table["qa.devforum.example"]) == {"pages", "positives", "positive_fraction", "code_related"}
    # the seeds (API docs, pastes, lessons) find every code domain, though only part of the Q&A site's questions
    assert reports[0]["code_domains"] == reports[2]["code_domains"] == truth["code_domains"]
    # round 2 found no new seed and the same domains: round 3 would train on the same pages, so it is round 2's
    assert reports[1]["new_seeds"] == 0 and reports[2]["same_as_round"] == 2 and reports[2]["disk_bytes"] == 0
    model2, model3 = (out / f"round_{k}" / "classifier" / "model.bin" for k in (2, 3))
    assert model3.stat().st_ino == model2.stat().st_ino  # a hard link: no second copy, no second scoring pass
    assert domains[2] == domains[1]
    # a URL pattern outside a code domain never makes seeds: the cooking Q&A stays non-code
    assert domains[2]["ask.cooking.example"]["positives"] == 0


def test_pattern_pages_scored_negative_rejoin_the_seeds(loop):
    out, _, reports, _, _ = loop
    seeds1, _ = read_file_records(out / "round_1" / "new_seeds.jsonl")
    assert len(seeds1) == reports[0]["new_seeds"] >= 20
    assert all(s["domain"] in reports[0]["code_domains"] and s["code_score"] < 0.5 for s in seeds1)
    sources = [s["seed_source"].removeprefix("url_pattern:") for s in seeds1]
    assert set(sources) <= {"qa.devforum.example/questions/*", "blog.shellnotes.example/posts/*"}  # never cooking
    assert sources.count("qa.devforum.example/questions/*") > len(sources) / 2
    # they train round 2 (more positives) and round 2 scores them positive
    assert reports[1]["classifier"]["train_positives"] > reports[0]["classifier"]["train_positives"]
    round2 = {r["url"]: r["code_score"] for r in iter_records(out / "round_2" / "scored")}
    rescored = [round2[s["url"]] for s in seeds1]
    assert sum(s >= 0.5 for s in rescored) / len(rescored) > 0.9


def test_recall_of_code_pages_grows_and_final_set_is_clean(loop):
    out, truth, reports, _, output = loop
    code = set(truth["code_urls"])

    def round_recall(k):
        hits = {r["url"] for r in iter_records(out / f"round_{k}" / "scored") if r["code_score"] >= 0.5}
        return len(hits & code) / len(code)

    r1, r2 = round_recall(1), round_recall(2)
    assert r1 < 0.8 and r2 > 0.95 and r2 > r1 + 0.2
    recalled = list(iter_records(out / "recalled"))
    urls = [r["url"] for r in recalled]
    assert len(urls) == len(set(urls)) == reports[2]["recalled_pages"]
    precision = len(set(urls) & code) / len(urls)
    recall = len(set(urls) & code) / len(code)
    assert precision > 0.95 and recall > 0.95
    assert all(r["code_score"] >= 0.5 and r["recall_round"] == 3 and r["text"] for r in recalled)
    # per-round metrics are reported and printed
    for rep in reports:
        h = rep["classifier"]["evaluation"]["at_threshold"]
        assert h["positives"] > 0 and h["negatives"] > 0 and 0 <= h["precision"] <= 1 and 0 <= h["recall"] <= 1
    assert "held-out (5-fold, 60 pos / 60 neg)" in output and "recall rounds" in output
    summary = json.loads((out / "report.json").read_text())
    assert [r["round"] for r in summary["rounds"]] == [1, 2, 3]


def test_rerun_resumes_and_is_deterministic(loop, demo, tmp_path, recall_args):
    out, _, reports, _, _ = loop
    data, _ = demo
    model = out / "round_3" / "classifier" / "model.bin"
    mtime = model.stat().st_mtime_ns
    run_cli(*recall_args(data, out, "--rounds", "3"))  # everything done: nothing is redone
    assert model.stat().st_mtime_ns == mtime
    # a second run from scratch gives the same domains and the same recalled pages
    again = tmp_path / "again"
    run_cli(*recall_args(data, again, "--quiet"))
    for rel in ("round_1/domains.json", "round_3/domains.json", "round_1/new_seeds.jsonl", "recalled/part-00000.jsonl"):
        assert (again / rel).read_bytes() == (out / rel).read_bytes(), rel
    # a killed round resumes; a 4th round can be added later
    (again / "round_3" / "report.json").unlink()
    shard_marker(again / "round_3" / "scored", "part-00001").unlink()
    run_cli(*recall_args(data, again, "--rounds", "4", "--quiet"))
    assert (again / "round_3" / "domains.json").read_bytes() == (out / "round_3" / "domains.json").read_bytes()
    assert json.loads((again / ".oc" / "recalled.json").read_text())["round"] == 4
    # other options are refused instead of mixing two runs
    with pytest.raises(OutputExistsError, match="other options"):
        CliRunner().invoke(app, ["recall", *map(str, recall_args(data, again, "--domain-threshold", "0.2"))],
                           catch_exceptions=False)


def test_bad_inputs_fail_with_one_clear_line(demo, tmp_path, example_dir):
    data, _ = demo
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    cmd = [sys.executable, "-m", "oc_synth.cli", "recall", "run", "--seeds", str(empty), "--corpus",
           str(data / "web"), "--out", str(tmp_path / "out"), "--config", str(example_dir / "config.yaml")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "empty.jsonl: no usable positive pages" in proc.stderr and "Traceback" not in proc.stderr
    bad_cfg = tmp_path / "bad.yaml"
    bad_cfg.write_text("fasttext:\n  dimm: 3\n")
    proc = subprocess.run(cmd[:-1] + [str(bad_cfg)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "fasttext.dimm: unknown key" in proc.stderr
