"""OUT directories whose shards differ load in `datasets` as one table (oc_common.records.write_shard).

`datasets` takes the columns and types of the first shard (in name order) and casts the others to them, so the
shards of a command must have the same columns: every record carries every field the command's stages can add (null
where absent), Parquet stores those fields with their types (a field null throughout the first shard keeps its
type), and a Parquet shard without records is not written (datasets' Parquet reader fails on a file without rows).
Inputs here are laid out so that the first shard lacks what later ones have: the cluster fields of records that take
no part in fuzzy dedup, the signals of other languages' profiles, shards with nothing kept.
"""

import json
from pathlib import Path

import pytest
from test_load_dataset import BUILDER, FORMATS, REPO, load, oc, recall_corpus

from oc_common.outputs import read_stats
from oc_common.records import iter_records, write_records

# 600 distinct words: one more word at the end leaves the word 5-gram sets ~99.8% alike, a near duplicate under
# OpenCoder's LSH settings (16 bands x 128 rows)
LONG = " ".join(f"token{i}" for i in range(600))


def write(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_records(path, records)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    out = tmp_path_factory.mktemp("ingested")
    oc("curate", "ingest", REPO / "examples/sample_repos", out / "records", "-q")
    return [r for f in sorted((out / "records").glob("*.jsonl")) for r in iter_records(f)]


def rec(base: dict, rid: str, text: str) -> dict:
    return {**base, "id": rid, "path": f"{rid}.py", "text": text, "size_bytes": len(text)}


def check_loads(out: Path, fmt: str, cache: Path, *, n: int | None = None) -> list[str]:
    """Both builders read OUT (`load_dataset(fmt, data_dir=OUT)` and `load_dataset(OUT)`): the same records, as many
    as the run wrote; returns the columns."""
    by_builder = load(BUILDER[fmt], out, cache / "a")
    inferred = load(None, out, cache / "b")
    expected = read_stats(out)["counters"]["records_out"] if n is None else n
    assert len(by_builder) == len(inferred) == expected
    assert by_builder.column_names == inferred.column_names
    return by_builder.column_names


def test_dedup_shards_with_and_without_cluster_fields(ingested, tmp_path):
    """First shard: records that take no part in fuzzy dedup (no word 5-gram) and an exact copy; second: a
    near-duplicate pair. Parquet: the first shard's null cluster fields keep their types."""
    base = ingested[0]
    inp = tmp_path / "in"
    write(inp / "a.jsonl", [rec(base, "t1", "{}"), rec(base, "t2", "x = 1"), rec(base, "t3", "x = 1")])
    write(inp / "b.jsonl", [rec(base, "n1", LONG), rec(base, "n2", LONG + " token")])
    write(inp / "c.jsonl", [])
    out, dropped = tmp_path / "out", tmp_path / "dropped"
    oc("curate", "dedup", inp, out, "--dropped", dropped, "--output-format", "parquet", "-q")
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == ["a.parquet", "b.parquet"]  # c: nothing kept
    assert sorted(p.name for p in dropped.iterdir() if p.is_file()) == ["a.parquet", "b.parquet"]
    kept = {r["id"]: r for f in sorted(out.glob("*.parquet")) for r in iter_records(f)}
    assert kept["t1"]["minhash_cluster"] is None and kept["t1"]["dup_count"] == 1 and kept["n1"]["minhash_count"] == 2
    columns = check_loads(out, "parquet", tmp_path / "c1")
    assert {"dup_cluster", "dup_count", "minhash_cluster", "minhash_count"} <= set(columns)
    gone = {r["id"]: r for f in sorted(dropped.glob("*.parquet")) for r in iter_records(f)}
    assert gone["t3"]["minhash_cluster"] is None and gone["n2"]["minhash_cluster"] is not None  # exact, fuzzy
    assert {"duplicate_of", "keep", "drop_reasons"} <= set(check_loads(dropped, "parquet", tmp_path / "c2", n=2))


@pytest.mark.parametrize("fmt", FORMATS)
def test_dedup_jsonl_and_parquet_with_a_first_shard_that_has_every_field(fmt, ingested, tmp_path):
    """The JSONL case: datasets types a JSON column from the first file, which here holds a value of each field;
    later shards lack some (records without a 5-gram, a shard of exact copies, an empty shard)."""
    inp = tmp_path / "in"
    write(inp / "part-0.jsonl", [*ingested, rec(ingested[0], "tiny", "{}")])
    write(inp / "part-1.jsonl", [rec(r, f"copy-{i}", r["text"]) for i, r in enumerate(ingested[:3])]
          + [rec(ingested[0], "tiny-2", "x = 2")])
    write(inp / "part-2.jsonl", [])
    out, dropped = tmp_path / "out", tmp_path / "dropped"
    oc("curate", "dedup", inp, out, "--dropped", dropped, "--output-format", fmt, "-q")
    kept = [r for f in sorted(out.iterdir()) if f.is_file() for r in iter_records(f)]
    assert all({"dup_cluster", "minhash_cluster"} <= set(r) for r in kept)  # every record, null where absent
    check_loads(out, fmt, tmp_path / "c1")
    check_loads(dropped, fmt, tmp_path / "c2", n=read_stats(out)["counters"]["records_dropped"])


def test_filter_signals_of_other_profiles_in_later_shards(ingested, tmp_path):
    """--signals writes each record's profile's signals: Python files first, C/JavaScript/HTML/text later."""
    inp = tmp_path / "in"
    write(inp / "a.jsonl", [r for r in ingested if r["language"] == "Python"])
    write(inp / "b.jsonl", [r for r in ingested if r["language"] != "Python"])
    out, dropped = tmp_path / "out", tmp_path / "dropped"
    oc("curate", "filter", inp, out, "--signals", "--dropped", dropped, "--output-format", "parquet", "-q")
    python = next(iter_records(out / "a.parquet"))
    assert python["qsc_codepython_cate_ast"] is not None and "qsc_codejavascript_cate_ast" in python
    columns = check_loads(out, "parquet", tmp_path / "c1")
    assert {"qsc_codepython_cate_ast", "qsc_codejavascript_cate_ast", "qsc_doc_num_words"} <= set(columns)
    check_loads(dropped, "parquet", tmp_path / "c2", n=read_stats(out)["counters"]["records_dropped"])


COMMANDS_WITH_EMPTY_SHARDS = {
    # name: argv (IN, OUT, format); the input's b.jsonl keeps nothing
    "curate filter": lambda i, o, f: ["curate", "filter", i, o, "--output-format", f],
    "curate select-algorithmic": lambda i, o, f: ["curate", "select-algorithmic", i, o, "--output-format", f],
}


@pytest.mark.parametrize("command", list(COMMANDS_WITH_EMPTY_SHARDS))
def test_a_shard_with_nothing_kept(command, ingested, tmp_path):
    inp = tmp_path / "in"
    solution = ("class Solution:\n    def twoSum(self, nums, target):\n        seen = {}\n        for i, n in "
                "enumerate(nums):\n            if target - n in seen:\n                return [seen[target - n], i]\n"
                "            seen[n] = i\n")
    write(inp / "a.jsonl", [*[r for r in ingested if r["language"] == "Python"], rec(ingested[0], "algo", solution)])
    write(inp / "b.jsonl", [rec(ingested[0], "nothing", "{}")])  # too short for the filter, no algorithmic keyword
    for fmt in FORMATS:
        out = tmp_path / fmt
        oc(*COMMANDS_WITH_EMPTY_SHARDS[command](inp, out, fmt), "-q")
        assert (out / f"b.{fmt}").exists() == (fmt == "jsonl")  # an empty JSONL file; no Parquet file
        check_loads(out, fmt, tmp_path / f"cache-{fmt}")


def test_verify_dropped_shard_without_records(tmp_path):
    inp = tmp_path / "in"
    add = "def add(a, b):\n    return a + b\n"
    write(inp / "a.jsonl", [{"id": "ok", "language": "python", "code": add, "tests": "assert add(2, 3) == 5\n"}])
    write(inp / "b.jsonl", [{"id": "bad", "language": "python", "code": add.replace("+", "-"),
                             "tests": "assert add(2, 3) == 5\n"},
                            {"id": "ok2", "language": "python", "code": add, "tests": "assert add(1, 1) == 2\n"}])
    out, dropped = tmp_path / "out", tmp_path / "dropped"
    oc("verify", inp, out, "--dropped", dropped, "--timeout", "10", "--output-format", "parquet", "-q")
    assert not (dropped / "a.parquet").exists()  # every sample of a.jsonl passed
    check_loads(out, "parquet", tmp_path / "c1", n=2)
    assert "verdict_reason" in check_loads(dropped, "parquet", tmp_path / "c2", n=1)


def test_recall_score_min_score_leaves_a_shard_empty(small_web, tmp_path):
    """--min-score drops every page of the second shard (prose); the first (code) keeps its pages."""
    web, classifier = small_web
    pages = list(iter_records(web / "seeds.jsonl"))
    inp = tmp_path / "in"
    write(inp / "a.jsonl", pages[:5])
    prose = "We walked to the old town and had dinner near the harbour. The buses leave every hour from the station."
    write(inp / "b.jsonl", [{"url": f"https://travel.example/{i}", "text": prose} for i in range(3)])
    out, dropped = tmp_path / "out", tmp_path / "dropped"
    oc("recall", "score", inp, out, "--model", classifier, "--min-score", "0.5", "--dropped", dropped,
       "--output-format", "parquet", "-q")
    assert not (out / "b.parquet").exists() and not (dropped / "a.parquet").exists()
    assert {"code_score", "domain"} <= set(check_loads(out, "parquet", tmp_path / "c1", n=5))
    check_loads(dropped, "parquet", tmp_path / "c2", n=3)


@pytest.fixture(scope="module")
def small_web(tmp_path_factory):
    """The recall demo's corpus at 40% size and a classifier trained on it."""
    web = recall_corpus(tmp_path_factory.mktemp("web"))
    oc("recall", "train", "--seeds", web / "seeds.jsonl", "--corpus", web / "web", "--out", web / "classifier",
       "--config", REPO / "examples/recall/config.yaml", "-q")
    return web, web / "classifier"


def test_generate_shard_with_nothing_kept(tmp_path):
    """Two seeds files: the second one's only seed is bad (blank text), so that shard keeps nothing."""
    from test_load_dataset import TEXTBOOK

    from oc_synth.eval.canned import CannedBackend
    from oc_synth.synth.generator import Generator
    from oc_synth.synth.run import config_from_spec

    seeds = tmp_path / "seeds"
    write(seeds / "a.jsonl", [json.loads(line) for line in (REPO / "examples/synth/code.jsonl").open()][:1])
    write(seeds / "b.jsonl", [{"id": "blank", "text": "   "}])
    cfg = config_from_spec({"recipe": "code-textbook", "seeds": str(seeds), "out": str(tmp_path / "gen"),
                            "backend": "canned", "model": "one textbook answer", "output_format": "parquet",
                            "decontaminate": False, "quiet": True})
    Generator(cfg, lambda: CannedBackend(lambda request, i: TEXTBOOK), None).run()
    out = tmp_path / "gen"
    assert (out / "a.parquet").exists() and not (out / "b.parquet").exists()
    check_loads(out, "parquet", tmp_path / "cache", n=1)
