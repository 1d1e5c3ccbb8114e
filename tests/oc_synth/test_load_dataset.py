"""Every data command's OUT loads where our users load data: `datasets.load_dataset("json" | "parquet",
data_dir=OUT)` and `load_dataset(OUT)` read exactly the kept records (run metadata sits in OUT/.oc/, which the
`datasets` builders skip), in the format `--output-format` asked for, whatever the input's format."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oc_common.outputs import read_stats
from oc_synth.cli import app

REPO = Path(__file__).resolve().parents[2]
FORMATS = ("jsonl", "parquet")
BUILDER = {"jsonl": "json", "parquet": "parquet"}
TEXTBOOK = ("Sorting is the first algorithm most programmers meet, and insertion sort is the gentlest way in. "
            "It keeps the left part of the list sorted and moves each new item left until it fits. The loop below "
            "does exactly that, one comparison at a time, and it is stable: equal items keep their order. It needs "
            "no extra memory, and on a list that is almost sorted it runs in nearly linear time.\n\n"
            "```python\ndef insertion_sort(items):\n    out = list(items)\n    for i in range(1, len(out)):\n"
            "        j = i\n        while j > 0 and out[j - 1] > out[j]:\n            out[j - 1], out[j] = out[j], "
            "out[j - 1]\n            j -= 1\n    return out\n```\n")


def oc(*args):
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def recall_corpus(out: Path) -> Path:
    """The recall demo's corpus (examples/recall/make_corpus.py) at 40% size, written to ``out``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_corpus", REPO / "examples/recall/make_corpus.py")
    make_corpus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_corpus)
    make_corpus.generate(out, scale=0.4, seed=1)
    return out


def load(builder, out: Path, cache: Path):
    import datasets

    if builder is None:
        return datasets.load_dataset(str(out), split="train", cache_dir=str(cache))
    return datasets.load_dataset(builder, data_dir=str(out), split="train", cache_dir=str(cache))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A Parquet copy of some curated records (the commands must write what --output-format says, not what they
    read), code samples for verify, and a small web corpus for recall."""
    import importlib.util

    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = tmp_path_factory.mktemp("inputs")
    oc("curate", "ingest", REPO / "examples/sample_repos", tmp / "ingested", "-q")
    records = [json.loads(line) for f in sorted((tmp / "ingested").glob("*.jsonl")) for line in f.open()]
    records.append({**records[0], "id": "algo/solution.py", "language": "Python",
                    "text": "class Solution:\n    def twoSum(self, nums, target):\n        seen = {}\n"
                            "        for i, n in enumerate(nums):\n            if target - n in seen:\n"
                            "                return [seen[target - n], i]\n            seen[n] = i\n"})
    (tmp / "records").mkdir()
    pq.write_table(pa.Table.from_pylist(records), tmp / "records" / "part-0.parquet")
    samples = tmp / "samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "ok", "language": "python", "code": "def add(a, b):\n    return a + b\n",
         "tests": "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"},
        {"id": "wrong", "language": "python", "code": "def add(a, b):\n    return a - b\n",
         "tests": "assert add(2, 3) == 5\n"}]))
    spec = importlib.util.spec_from_file_location("make_corpus", REPO / "examples/recall/make_corpus.py")
    make_corpus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_corpus)
    make_corpus.generate(tmp / "web", scale=0.4, seed=1)
    return tmp


COMMANDS = {
    # name: (argv builder, where the records are, relative to OUT)
    "curate ingest": lambda i, o, f: ["curate", "ingest", REPO / "examples/sample_repos", o, "--output-format", f],
    "curate dedup": lambda i, o, f: ["curate", "dedup", i / "records", o, "--output-format", f],
    "curate transform": lambda i, o, f: ["curate", "transform", i / "records", o, "--output-format", f],
    "curate filter": lambda i, o, f: ["curate", "filter", i / "records", o, "--dropped", o.parent / f"{o.name}-d",
                                      "--output-format", f],
    "curate sample": lambda i, o, f: ["curate", "sample", i / "records", o, "--output-format", f],
    "curate select-algorithmic": lambda i, o, f: ["curate", "select-algorithmic", i / "records", o,
                                                  "--output-format", f],
    "verify": lambda i, o, f: ["verify", i / "samples.jsonl", o, "--all", "--timeout", "10", "--output-format", f],
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_out_loads_in_datasets(command, fmt, inputs, tmp_path):
    out = tmp_path / "out"
    oc(*COMMANDS[command](inputs, out, fmt), "-q")
    shards = [p for p in out.iterdir() if p.is_file()]
    assert shards and all(p.name.endswith(f".{fmt}") for p in shards), shards
    n = read_stats(out)["counters"]["records_out"]
    assert n > 0
    by_builder = load(BUILDER[fmt], out, tmp_path / "cache")
    inferred = load(None, out, tmp_path / "cache2")
    assert len(by_builder) == len(inferred) == n
    assert "id" in by_builder.column_names and by_builder.column_names == inferred.column_names


@pytest.mark.parametrize("fmt", FORMATS)
def test_recall_score_out_loads_in_datasets(fmt, inputs, tmp_path):
    web = inputs / "web"
    oc("recall", "train", "--seeds", web / "seeds.jsonl", "--corpus", web / "web", "--out", tmp_path / "classifier",
       "--config", REPO / "examples/recall/config.yaml", "-q")
    scored = tmp_path / "scored"
    oc("recall", "score", web / "web", scored, "--model", tmp_path / "classifier", "--output-format", fmt, "-q")
    assert all(p.name.endswith(f".{fmt}") for p in scored.iterdir() if p.is_file())
    pages = load(BUILDER[fmt], scored, tmp_path / "cache")
    assert len(pages) == len(load(None, scored, tmp_path / "cache2")) == read_stats(scored)["counters"]["records_out"]
    assert "code_score" in pages.column_names
