"""The demo's embedded inputs give every stage something to do (scripts/demo.sh runs them end to end in CI): the
repositories feed each curation filter and the algorithmic selection, and the canned answers go through generate's
checks, dedup and decontamination and `verify` with exactly the drops they were written for."""

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oc_common.outputs import read_stats
from oc_synth.cli import app

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "demo"
# recipe -> (canned samples, kept by generate, passed by verify); None: the recipe has no tests (textbooks)
CANNED = {"annealing-snippets": (4, 4, 3), "code-textbook": (2, 2, None), "educational-instruct": (4, 3, 2),
          "package-instruct": (3, 3, 2), "diverse-instruct": (3, 3, 2)}


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, DEMO / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def oc(*args):
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_the_repositories_give_every_curation_stage_work(tmp_path):
    assert load_script("make_inputs").main([str(tmp_path / "in"), "--stdlib-files", "40"]) == 0
    oc("curate", "ingest", tmp_path / "in/repos", tmp_path / "ingest", "-q")
    oc("curate", "dedup", tmp_path / "ingest", tmp_path / "dedup", "-q")
    oc("curate", "transform", tmp_path / "dedup", tmp_path / "transform", "-q")
    oc("curate", "filter", tmp_path / "transform", tmp_path / "filter", "-q")
    oc("curate", "sample", tmp_path / "filter", tmp_path / "sample", "-q")
    oc("curate", "select-algorithmic", tmp_path / "sample", tmp_path / "algorithmic", "-q")
    stats = {stage: read_stats(tmp_path / stage) for stage in ("ingest", "dedup", "transform", "filter", "sample",
                                                                "algorithmic")}
    assert stats["ingest"]["groups"]["drop_reasons"]  # the CSVs
    dedup = stats["dedup"]["groups"]["drop_reasons"]
    assert dedup["exact_duplicate"] >= 2 and dedup["fuzzy_duplicate"] >= 1  # the mirror's copy, the vendored files
    replaced = stats["transform"]["groups"]
    assert any("email" in k.lower() for g in replaced.values() for k in g), replaced
    assert stats["filter"]["counters"]["records_dropped"] > 0
    assert stats["sample"]["groups"]["drop_reasons"].get("downsampled:HTML", 0) > 0
    assert stats["algorithmic"]["counters"]["records_out"] >= 5


@pytest.mark.parametrize("recipe", list(CANNED))
def test_canned_answers_are_kept_dropped_and_verified_as_written(recipe, tmp_path):
    samples, kept, passed = CANNED[recipe]
    out = tmp_path / "generated"
    replay = load_script("replay_answers")
    assert replay.main([recipe, str(DEMO / "canned" / f"{recipe}.yaml"), str(out), "--no-verify",
                        "--seeds-file", str(tmp_path / "seeds.jsonl")]) == 0
    c = read_stats(out)["counters"]
    assert (c["generated"], c["records_out"]) == (samples, kept)
    if recipe == "educational-instruct":  # the answer restating HumanEval/0
        assert read_stats(out)["groups"]["drop reasons"] == {"decontam:entry_point": 1}
    if passed is None:
        return
    oc("verify", out, tmp_path / "verified", "--dropped", tmp_path / "dropped", "--timeout", "10", "-q")
    verdicts = read_stats(tmp_path / "verified")["groups"]["verdict"]
    assert verdicts == {"passed": passed, "failed": kept - passed}
    dropped = [json.loads(line) for f in (tmp_path / "dropped").glob("*.jsonl") for line in f.open()]
    assert all("wrong" in r["seed_id"] for r in dropped)  # exactly the answers written to be wrong
