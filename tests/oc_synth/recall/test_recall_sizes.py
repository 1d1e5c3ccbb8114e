"""The default `oc-synth recall run` (no settings given) from tens to thousands of seeds, on corpora of our own whose
code pages are known (examples/recall/mixed_web.py: code Q&A and docs on 5 domains, prose on 16, 2 mixed domains;
the seeds come from 2 of the code domains): precision >= 0.9 and recall >= 0.85 of the recalled pages, exactly the
code domains flagged, and a few MB of pages cost well under 300 MB of disk over 3 rounds. Too few seeds are refused
(test_recall_gate.py)."""

import json

import pytest
import yaml
from typer.testing import CliRunner

from oc_common.records import iter_records
from oc_synth.cli import app
from oc_synth.recall.config import FastTextConfig


def tree_bytes(path):
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@pytest.fixture(scope="module", params=[(40, 1800), (300, 2400), (1200, 3000)], ids=["tens", "hundreds", "thousands"])
def default_run(request, tmp_path_factory, mixed_web):
    seeds, pages = request.param
    data = tmp_path_factory.mktemp(f"web{seeds}")
    truth = mixed_web.generate(data, seeds=seeds, pages=pages, seed=0)
    patterns = data / "url_patterns.yaml"
    assert yaml.safe_load(patterns.read_text()) == truth["url_patterns"]
    out = data / "recall"
    result = CliRunner().invoke(app, ["recall", "run", "--seeds", str(data / "seeds.jsonl"), "--corpus",
                                      str(data / "web"), "-o", str(out), "--url-patterns", str(patterns)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return data, out, truth, result.output


def test_default_run_reaches_precision_and_recall(default_run):
    _, out, truth, _ = default_run
    code = set(truth["code_urls"])
    recalled = {r["url"] for r in iter_records(out / "recalled")}
    precision, recall = len(recalled & code) / len(recalled), len(recalled & code) / len(code)
    assert precision >= 0.9 and recall >= 0.85, (precision, recall)


def test_default_run_flags_exactly_the_code_domains(default_run):
    _, out, truth, _ = default_run
    last = json.loads((out / "report.json").read_text())["rounds"][-1]
    assert last["round"] == 3 and sorted(last["code_domains"]) == truth["code_domains"]


def test_settings_scale_with_the_seeds_and_every_round_reports(default_run):
    _, out, _, output = default_run
    reports = json.loads((out / "report.json").read_text())["rounds"]
    for r in reports:
        ev = r["classifier"]["evaluation"]
        assert ev["passed"] and ev["auc"] >= 0.8
        if ev["method"] == "5-fold":  # every training page is a held-out page once
            assert (ev["positives"], ev["negatives"]) == (r["classifier"]["train_positives"],
                                                          r["classifier"]["train_negatives"])
        else:  # a split put aside: at least 200 pages
            assert ev["positives"] + ev["negatives"] >= 190
        assert sum(ev["histogram"]["positives"]) == ev["positives"] and r["score_histogram"]
        assert set(r["classifier"]["fasttext_auto"]) == {"dim", "lr", "epoch", "word_ngrams", "min_count", "bucket"}
    first = reports[0]["classifier"]
    pages = first["train_positives"] + first["train_negatives"]
    assert first["fasttext"] == {k: getattr(FastTextConfig().resolved(pages), k) for k in first["fasttext"]}
    assert first["fasttext"]["epoch"] >= 10 and (pages > 100 or first["fasttext"]["epoch"] == 50)
    assert first["evaluation"]["method"].startswith("5-fold" if pages <= 1000 else "holdout")
    assert "recall rounds" in output and "ROC AUC" in output  # the per-round report (docs/recall.md)


def test_three_rounds_on_a_few_mb_stay_under_300_mb(default_run):
    data, out, _, _ = default_run
    corpus = tree_bytes(data / "web")
    assert corpus < 8 * 2**20  # a few MB of pages
    assert tree_bytes(out) < 300 * 2**20
    reports = json.loads((out / "report.json").read_text())["rounds"]
    assert all(r["classifier"]["model_bytes"] < 60 * 2**20 for r in reports)  # DeepSeekMath's buckets: 2 GB each
