"""`recall run`'s pages (DIR/recalled/) and `generate`'s kept records load in `datasets` too, in the format
`--output-format` asked for (the other data commands: test_load_dataset.py)."""


import json

import pytest
from test_load_dataset import BUILDER, FORMATS, REPO, TEXTBOOK, load, oc, recall_corpus

from oc_common.outputs import read_stats


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    return recall_corpus(tmp_path_factory.mktemp("web"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_recall_run_pages_load_in_datasets(fmt, web, tmp_path):
    out = tmp_path / "recall"
    oc("recall", "run", "--seeds", web / "seeds.jsonl", "--corpus", web / "web", "--out", out, "--rounds", "1",
       "--config", REPO / "examples/recall/config.yaml", "--output-format", fmt, "-q")
    recalled = out / "recalled"
    pages = load(BUILDER[fmt], recalled, tmp_path / "cache")
    assert len(pages) == len(load(None, recalled, tmp_path / "cache2")) > 0
    assert all(name.endswith(f".{fmt}") for name in (p.name for p in recalled.iterdir()))
    assert min(pages["code_score"]) >= json.loads((out / "report.json").read_text())["rounds"][0]["threshold"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_generate_out_loads_in_datasets(fmt, tmp_path):
    from oc_synth.eval.canned import CannedBackend
    from oc_synth.synth.generator import Generator
    from oc_synth.synth.run import config_from_spec

    cfg = config_from_spec({"recipe": "code-textbook", "seeds": str(REPO / "examples/synth/code.jsonl"),
                            "out": str(tmp_path / "gen"), "backend": "canned", "model": "one textbook answer",
                            "limit": 2, "output_format": fmt, "quiet": True})
    Generator(cfg, lambda: CannedBackend(lambda request, i: TEXTBOOK), None).run()
    out = tmp_path / "gen"
    assert sorted(p.suffix for p in out.iterdir() if p.is_file()) == [f".{fmt}"]
    kept = load(BUILDER[fmt], out, tmp_path / "cache")
    assert len(kept) == len(load(None, out, tmp_path / "cache2")) == read_stats(out)["counters"]["records_out"] == 1
    assert kept[0]["text"].startswith("Sorting is")  # the two seeds' identical answers: one kept after dedup
