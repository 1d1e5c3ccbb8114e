"""End to end through the real passes (index -> decide -> remove): the exact keep rule, bad input, resume, workers,
and the CLI."""

import hashlib
import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from dedup_corpus import planted_corpus

from oc_common.errors import OcError, OutputExistsError
from oc_common.outputs import read_stats, shard_marker
from oc_common.records import iter_records, read_file_records, write_records
from oc_synth.curate.dedup.index import run_index
from oc_synth.curate.dedup.settings import build_settings
from oc_synth.curate.dedup.workflow import run_dedup, work_dir
from oc_synth.pipeline.runner import plan_shards

T = "2023-01-01T00:00:00Z"


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def keep_rule_records():
    """Groups of identical texts that each exercise one step of the keep rule."""
    return [
        # most stars (a missing value ranks lowest)
        {"id": "a1", "text": "A", "stars": 3}, {"id": "a2", "text": "A", "stars": 7}, {"id": "a3", "text": "A"},
        # equal stars: latest commit, compared as instants (b2 is 2022-12-31T23:00Z)
        {"id": "b1", "text": "B", "stars": 5, "commit_time": T},
        {"id": "b2", "text": "B", "stars": 5, "commit_time": "2023-01-01T01:00:00+02:00"},
        {"id": "b3", "text": "B", "stars": 5},
        # equal stars and time: smallest id, as text
        {"id": "c9", "text": "C", "stars": 1, "commit_time": T},
        {"id": "c10", "text": "C", "stars": 1, "commit_time": T},
        # unusable stars rank below 0; numeric strings are numbers
        {"id": "e1", "text": "E", "stars": "n/a"}, {"id": "e2", "text": "E", "stars": 0},
        {"id": "f1", "text": "F", "stars": "12"}, {"id": "f2", "text": "F", "stars": 11},
        # empty documents are identical content too; a record without text passes through untouched
        {"id": "g1", "text": ""}, {"id": "g2", "text": ""},
        {"id": "u1", "text": "unique content", "repo": "r/x"}, {"id": "no-text", "repo": "r/y"},
    ]


def parquet_records():
    """Repeated id, nothing else to rank by: first in input order. (Parquet: same keys in every row.)"""
    return [{"id": "d", "text": "D", "marker": 1, "nested": {"k": [1, 2]}},
            {"id": "d", "text": "D", "marker": 2, "nested": None}]


@pytest.fixture()
def keep_rule_input(tmp_path):
    inp = tmp_path / "in"
    # mixed formats, and a malformed line that must not shift the rows of the records after it
    (inp / "sub").mkdir(parents=True)
    lines = [json.dumps(r) for r in keep_rule_records()]
    lines.insert(4, '{"id": "broken", "text": ')
    (inp / "part-0.jsonl").write_text("\n".join(lines) + "\n")
    write_records(inp / "sub" / "part-1.parquet", parquet_records())
    return inp


def test_exact_keep_rule_cluster_fields_and_dropped_records(keep_rule_input, tmp_path):
    out, dropped, removed = tmp_path / "out", tmp_path / "dropped", tmp_path / "removed.jsonl"
    summary = run_dedup(keep_rule_input, out, build_settings(mode="exact", engine="cpu"), dropped=dropped,
                        removed_ids=removed, quiet=True)
    kept = {r["id"]: r for r in iter_records(out)}
    assert sorted(kept) == sorted(["a2", "b1", "c10", "d", "e2", "f1", "g1", "u1", "no-text"])
    assert kept["d"]["marker"] == 1 and kept["d"]["nested"] == {"k": [1, 2]}  # all fields intact
    assert kept["a2"]["dup_cluster"] == sha("A") and kept["a2"]["dup_count"] == 3
    assert kept["u1"]["dup_count"] == 1 and kept["u1"]["dup_cluster"] == sha("unique content")
    assert kept["g1"]["dup_count"] == 2
    assert kept["no-text"]["dup_cluster"] is None and kept["no-text"]["repo"] == "r/y"  # every record has the field
    gone = {r["id"] + str(r.get("marker", "")): r for r in iter_records(dropped)}
    assert sorted(gone) == sorted(["a1", "a3", "b2", "b3", "c9", "d2", "e1", "f2", "g2"])
    assert gone["b2"]["keep"] is False and gone["b2"]["drop_reasons"] == ["exact_duplicate"]
    assert gone["b2"]["duplicate_of"] == "b1" and gone["b2"]["dup_cluster"] == sha("B")
    ids = [r["id"] for r in read_file_records(removed)[0]]
    assert sorted(ids) == sorted(["a1", "a3", "b2", "b3", "c9", "d", "e1", "f2", "g2"])
    stats = read_stats(out)
    assert stats["counters"]["bad_records"] == 1 and stats["counters"]["records_out"] == 9
    assert stats["dedup"]["index"]["unusable_stars"] == 1 and stats["dedup"]["index"]["no_text"] == 1
    assert summary["clusters"]["exact_removed"] == 9 and summary["clusters"]["exact_groups"] == 7
    assert (out / "sub" / "part-1.jsonl").exists()  # sub-folders mirror the input


def test_both_modes_fuzzy_runs_on_exact_survivors(tmp_path):
    body = " ".join(f"word{i}" for i in range(400))
    recs = [{"id": "orig", "text": body, "stars": 1}, {"id": "copy", "text": body, "stars": 9},
            {"id": "near", "text": body + " tail", "stars": 5}, {"id": "short1", "text": "import os"},
            {"id": "short2", "text": "import   os\n", "stars": 2}, {"id": "blank", "text": "  ;; "}]
    write_records(tmp_path / "in.jsonl", recs)
    out, dropped = tmp_path / "out", tmp_path / "dropped"
    summary = run_dedup(tmp_path / "in.jsonl", out, build_settings(mode="both", engine="cpu"), dropped=dropped,
                        quiet=True)
    kept = {r["id"]: r for r in iter_records(out)}
    gone = {r["id"]: r for r in iter_records(dropped)}
    assert sorted(kept) == ["blank", "copy", "short2"]
    assert gone["orig"]["drop_reasons"] == ["exact_duplicate"] and gone["orig"]["duplicate_of"] == "copy"
    assert gone["near"]["drop_reasons"] == ["fuzzy_duplicate"] and gone["near"]["duplicate_of"] == "copy"
    assert gone["short1"]["drop_reasons"] == ["fuzzy_duplicate"]  # shorter than 5 words: one shingle, same set
    assert kept["copy"]["dup_count"] == 2 and kept["copy"]["minhash_count"] == 2
    assert kept["copy"]["minhash_cluster"] == sha(body) == gone["near"]["minhash_cluster"]
    assert kept["blank"]["minhash_cluster"] is None  # no words: takes no part in fuzzy dedup
    assert summary["index"]["no_shingles"] == 1


def test_name_clash_between_formats_is_refused(tmp_path):
    write_records(tmp_path / "in" / "a.jsonl", [{"id": "1", "text": "x"}])
    write_records(tmp_path / "in" / "a.parquet", [{"id": "2", "text": "y"}])
    with pytest.raises(OcError, match="would both be written as shard 'a'"):
        run_dedup(tmp_path / "in", tmp_path / "out", build_settings(engine="cpu"), quiet=True)


def test_rerun_resumes_and_refuses_other_options(keep_rule_input, tmp_path):
    out = tmp_path / "out"
    settings = build_settings(mode="exact", engine="cpu")
    run_dedup(keep_rule_input, out, settings, quiet=True)
    before = {p.name: p.read_bytes() for p in out.rglob("*.jsonl")}
    shard_marker(out, "part-0").unlink()  # as if killed before writing shard part-0
    (work_dir(out) / "index" / "sub" / "part-1.parquet").unlink()
    summary = run_dedup(keep_rule_input, out, settings, quiet=True)
    assert summary["records_indexed_now"] == 2  # only the missing index was rebuilt
    assert {p.name: p.read_bytes() for p in out.rglob("*.jsonl")} == before
    with pytest.raises(OutputExistsError, match="other options"):
        run_dedup(keep_rule_input, out, build_settings(mode="exact", engine="cpu", seed=1), quiet=True)


def test_cpu_engine_output_identical_for_one_and_two_workers(tmp_path):
    corpus = planted_corpus({0.99: 300}, unrelated=100, seed=3)  # 700 documents in one shard: two worker chunks
    write_records(tmp_path / "in.jsonl", corpus.records)
    outputs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        run_dedup(tmp_path / "in.jsonl", out, build_settings(mode="fuzzy", engine="cpu", workers=workers),
                  quiet=True)
        index = pq.read_table(work_dir(out) / "index" / "in.parquet")
        outputs.append(((out / "in.jsonl").read_bytes(), index.drop_columns([]).to_pydict()))
    assert outputs[0] == outputs[1]
    assert len(read_file_records(tmp_path / "w1" / "in.jsonl")[0]) < 450  # the near-duplicates were removed


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "oc_synth.cli", "curate", "dedup", *args], capture_output=True,
                          text=True, check=False)


def test_cli_help_and_clear_errors(tmp_path):
    help_text = run_cli("--help").stdout
    for option in ("--mode", "--engine", "--preset", "--shingle", "--ngram", "--num-perm", "--bands", "--rows",
                   "--seed", "--lowercase", "--jaccard-check", "--workers", "--executor", "--dropped",
                   "--removed-ids", "--output-format", "--overwrite", "--quiet"):
        assert option in help_text
    write_records(tmp_path / "in.jsonl", [{"id": "1", "text": "x"}])
    bad = run_cli(str(tmp_path / "in.jsonl"), str(tmp_path / "out"), "--bands", "10", "--num-perm", "100")
    assert bad.returncode == 2 and "num_perm (100) must equal bands x rows" in bad.stderr
    gpu = run_cli(str(tmp_path / "in.jsonl"), str(tmp_path / "out"), "--engine", "gpu")
    assert gpu.returncode == 2 and "--engine gpu" in gpu.stderr and "--engine cpu" in gpu.stderr
    ok = run_cli(str(tmp_path / "in.jsonl"), str(tmp_path / "out"), "--output-format", "parquet")
    assert ok.returncode == 0, ok.stderr
    assert "auto: cuDF is not importable" in " ".join(ok.stderr.split())  # says which engine ran and why
    assert read_file_records(tmp_path / "out" / "in.parquet")[0][0]["dup_count"] == 1


@pytest.mark.slow
def test_signature_stage_on_ray_gives_the_local_index(tmp_path):
    """The index pass (signatures -> band keys) on NeMo Curator's Ray actor pool; the removal pass on Ray is
    run_sharded's, covered by tests/oc_synth/pipeline/test_executors.py."""
    corpus = planted_corpus({0.99: 20}, unrelated=20, seed=5)
    for s in range(2):
        write_records(tmp_path / "in" / f"p{s}.jsonl", corpus.records[s::2])
    shards = plan_shards(tmp_path / "in")
    settings = build_settings(mode="fuzzy", engine="cpu")
    for executor in ("local", "ray"):
        assert run_index(shards, tmp_path / executor, settings, compute_bands=True, executor=executor) == 60
    for s in range(2):
        local, on_ray = (pq.read_table(tmp_path / e / f"p{s}.parquet") for e in ("local", "ray"))
        assert local.equals(on_ray) and local.num_rows == 30
