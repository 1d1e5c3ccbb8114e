"""The output contract (oc_common/outputs.py, docs/outputs.md) through the real CLI and the real runner: inputs are
never touched, --overwrite removes only what a run of ours wrote, run metadata never gets in the way of
`datasets.load_dataset(OUT)`, and resume is keyed on each input shard's identity."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_run import one_line_error
from pipeline_helpers import make_shards, tree_digest

from oc_common.errors import OutputError, OutputExistsError
from oc_common.outputs import read_manifest, read_stats, shard_marker
from oc_common.records import iter_records, read_file_records, write_records
from oc_synth.pipeline.runner import run_sharded
from oc_synth.pipeline.stages import RecordStage


# ---- inputs are never touched --------------------------------------------------------------------------------------
def test_filter_into_its_own_input_is_refused_and_the_input_is_intact(tmp_path, oc_synth):
    d = make_shards(tmp_path / "d")
    before = tree_digest(d)
    one_line_error(oc_synth("curate", "filter", str(d), str(d), "--overwrite"), "is the input", str(d))
    assert tree_digest(d) == before
    d2 = make_shards(tmp_path / "d2")
    before2 = tree_digest(d2)
    out = tmp_path / "out"
    one_line_error(oc_synth("curate", "filter", str(d2), str(out), "--dropped", str(d2), "--overwrite"),
                   "--dropped", "is the input")
    assert tree_digest(d2) == before2 and not out.exists()


def test_output_inside_the_input_is_refused_every_time(tmp_path, oc_synth):
    nest = make_shards(tmp_path / "nest")
    before = tree_digest(nest)
    for _ in range(2):
        one_line_error(oc_synth("curate", "transform", str(nest), str(nest / "out")), "lies inside the input")
        assert not (nest / "out").exists() and tree_digest(nest) == before


def test_output_containing_the_input_and_overlapping_outputs_are_refused(tmp_path, oc_synth):
    d = make_shards(tmp_path / "d" / "in")
    before = tree_digest(tmp_path / "d")
    one_line_error(oc_synth("curate", "transform", str(d), str(tmp_path / "d")), "contains the input")
    out = tmp_path / "out"
    one_line_error(oc_synth("curate", "filter", str(d), str(out), "--dropped", str(out / "dropped")),
                   "contains --dropped", "the two outputs must be separate")
    link = tmp_path / "alias"
    link.symlink_to(d)  # an alias of the input is the input
    one_line_error(oc_synth("curate", "transform", str(d), str(link)), "is the input")
    assert tree_digest(tmp_path / "d") == before and not out.exists()


def test_discovery_never_reads_an_output_made_from_the_input(tmp_path, oc_synth):
    nest = make_shards(tmp_path / "nest")
    (nest / "a").mkdir()
    (nest / "p1.jsonl").rename(nest / "a" / "p1.jsonl")
    r = oc_synth("curate", "transform", str(nest / "a"), str(nest / "b"))  # a sibling of its input: allowed
    assert r.returncode == 0, r.stderr[-2000:]
    r = oc_synth("curate", "transform", str(nest), str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr[-2000:]
    ids = sorted(rec["id"] for rec in iter_records(tmp_path / "out"))
    assert ids == sorted(f"{s}-{i}" for s in range(2) for i in range(4))  # nest/b (made from nest/a) not read
    assert "skipped, an output of ours made from" in r.stderr


# ---- --overwrite removes only what a run of ours wrote -------------------------------------------------------------
def test_overwrite_removes_only_what_the_manifest_lists(tmp_path, oc_synth):
    d = make_shards(tmp_path / "in")
    out, dropped = tmp_path / "out", tmp_path / "dropped"
    assert oc_synth("curate", "filter", str(d), str(out), "--dropped", str(dropped)).returncode == 0
    manifest = read_manifest(out)
    assert manifest["command"] == "curate filter" and manifest["writes"] == ["p0.jsonl", "p1.jsonl"]
    assert read_manifest(dropped)["label"] == "--dropped"
    (out / "notes.txt").write_text("mine")
    (out / "extra").mkdir()
    write_records(out / "extra" / "mine.jsonl", [{"id": "x", "text": "mine"}])
    (dropped / "keep.md").write_text("mine too")
    r = oc_synth("curate", "filter", str(d), str(out), "--dropped", str(dropped), "--signals", "--overwrite")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "notes.txt").read_text() == "mine" and (out / "extra" / "mine.jsonl").is_file()
    assert (dropped / "keep.md").read_text() == "mine too"
    assert "left 2 files no run of ours wrote" in " ".join(r.stderr.split())
    assert read_manifest(out)["options"]["signals"] is True


def test_a_directory_we_did_not_write_is_refused_even_with_overwrite(tmp_path, oc_synth):
    d = make_shards(tmp_path / "in")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "thesis.tex").write_text("years of work")
    for extra in ([], ["--overwrite"]):
        one_line_error(oc_synth("curate", "transform", str(d), str(theirs), *extra), "no run of ours wrote",
                       "thesis.tex")
        assert (theirs / "thesis.tex").read_text() == "years of work"
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "_manifest.json").write_text("{}")
    one_line_error(oc_synth("curate", "transform", str(d), str(legacy), "--overwrite"), "earlier version")
    assert (legacy / "_manifest.json").exists()


def test_other_options_are_named(tmp_path, oc_synth):
    d = make_shards(tmp_path / "in")
    out = tmp_path / "out"
    assert oc_synth("curate", "transform", str(d), str(out)).returncode == 0
    one_line_error(oc_synth("curate", "transform", str(d), str(out), "-s", "pii.emails=false"),
                   "other options (pii.emails: true there, false now)", "--overwrite")
    one_line_error(oc_synth("curate", "filter", str(d), str(out)), "written by `curate transform`")


# ---- run metadata out of the way of `datasets` ---------------------------------------------------------------------
def test_every_output_loads_directly_with_datasets(tmp_path, oc_synth):
    datasets = pytest.importorskip("datasets")
    repos = Path(__file__).resolve().parents[3] / "examples" / "sample_repos"
    ingested, ingest_dropped = tmp_path / "ingest", tmp_path / "ingest_dropped"
    filtered, filter_dropped, parquet = tmp_path / "filtered", tmp_path / "filter_dropped", tmp_path / "parquet"
    assert oc_synth("curate", "ingest", str(repos), str(ingested), "--dropped", str(ingest_dropped),
                    "--shard-size", "5").returncode == 0
    assert oc_synth("curate", "filter", str(ingested), str(filtered), "--dropped", str(filter_dropped)).returncode == 0
    assert oc_synth("curate", "dedup", str(ingested), str(parquet), "--mode", "exact", "--output-format",
                    "parquet").returncode == 0
    cache = tmp_path / "hf_cache"
    for where in (ingested, ingest_dropped, filtered, filter_dropped, parquet):
        n = sum(1 for _ in iter_records(where))
        assert n and (where / ".oc" / "manifest.json").is_file()
        assert datasets.load_dataset(str(where), split="train", cache_dir=str(cache)).num_rows == n
        builder = "parquet" if where == parquet else "json"
        assert datasets.load_dataset(builder, data_dir=str(where), split="train", cache_dir=str(cache)).num_rows == n
    assert sorted(datasets.load_dataset(str(parquet), split="train", cache_dir=str(cache))["id"]) == sorted(
        r["id"] for r in iter_records(parquet))


# ---- resume keyed on the inputs ------------------------------------------------------------------------------------
@dataclass
class CountingStage(RecordStage):
    name: str = "counting"
    calls: int = 0

    def process_record(self, record, stats):
        self.calls += 1
        return record


def _run(inp, out, stage=None):
    stage = stage or CountingStage()
    run_sharded(command="test", inp=inp, out=out, stages=[stage], options={}, quiet=True)
    return stage


def test_a_changed_input_shard_is_redone_a_new_one_processed_a_vanished_one_removed(tmp_path):
    inp, out = make_shards(tmp_path / "in", n=3), tmp_path / "out"
    _run(inp, out)
    size = (inp / "p0.jsonl").stat().st_size
    with open(inp / "p0.jsonl", "a") as f:  # the repro: a record appended after a finished run
        f.write(json.dumps({"id": "0-new", "language": "Python", "text": "y = 2\n"}) + "\n")
    write_records(inp / "p9.jsonl", [{"id": "9-0", "text": "z = 3\n"}])
    (inp / "p2.jsonl").unlink()
    stage = _run(inp, out)
    assert stage.calls == 5 + 1  # p0 (now 5 records) and p9; p1 untouched
    assert "0-new" in {r["id"] for r in read_file_records(out / "p0.jsonl")[0]}
    assert (out / "p9.jsonl").is_file() and not (out / "p2.jsonl").exists() and not shard_marker(out, "p2").exists()
    resume = read_stats(out)["resume"]
    grown = (inp / "p0.jsonl").stat().st_size
    assert resume["changed"] == {"p0": f"size {size} -> {grown} bytes"} and resume["new"] == ["p9"]
    assert resume["vanished"] == ["p2"] and resume["done_earlier"] == 1
    assert read_stats(out)["counters"]["records_in"] == 5 + 4 + 1


def test_a_touched_or_copied_input_is_not_redone_but_a_same_size_edit_is(tmp_path):
    inp, out = make_shards(tmp_path / "in"), tmp_path / "out"
    _run(inp, out)
    os.utime(inp / "p0.jsonl")  # touched: new mtime, same content
    (inp / "p1.jsonl").write_bytes((inp / "p1.jsonl").read_bytes())  # rewritten with the same bytes
    assert _run(inp, out).calls == 0
    assert _run(inp, out).calls == 0  # and the refreshed identities make the next check cheap again
    st = os.stat(inp / "p0.jsonl")
    data = (inp / "p0.jsonl").read_bytes()
    (inp / "p0.jsonl").write_bytes(data.replace(b"return", b"RETURN"))
    os.utime(inp / "p0.jsonl", ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime: only ctime moved
    stage = _run(inp, out)
    assert stage.calls == 4 and read_stats(out)["resume"]["changed"] == {"p0": "content changed (same size)"}
    assert "RETURN" in (out / "p0.jsonl").read_text()


def test_cli_transform_picks_up_an_appended_record(tmp_path, oc_synth):
    inp, out = make_shards(tmp_path / "in"), tmp_path / "out"
    assert oc_synth("curate", "transform", str(inp), str(out)).returncode == 0
    with open(inp / "p1.jsonl", "a") as f:
        f.write(json.dumps({"id": "1-new", "text": "reach me at new@mail.org\n"}) + "\n")
    r = oc_synth("curate", "transform", str(inp), str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    new = [rec for rec in read_file_records(out / "p1.jsonl")[0] if rec["id"] == "1-new"]
    assert new and new[0]["text"] == "reach me at <EMAIL>\n"
    assert "1 redone because the input changed: p1 (size" in " ".join(r.stderr.split())


def test_dedup_says_exactly_what_changed(tmp_path):
    from oc_synth.curate.dedup.settings import build_settings
    from oc_synth.curate.dedup.workflow import run_dedup

    inp, out = make_shards(tmp_path / "in"), tmp_path / "out"
    settings = build_settings(mode="exact", engine="cpu")
    run_dedup(inp, out, settings, quiet=True)
    run_dedup(inp, out, settings, quiet=True)  # unchanged: resumes
    size = (inp / "p0.jsonl").stat().st_size
    with open(inp / "p0.jsonl", "a") as f:
        f.write(json.dumps({"id": "0-new", "text": "new"}) + "\n")
    write_records(inp / "p5.jsonl", [{"id": "5-0", "text": "five"}])
    grown = (inp / "p0.jsonl").stat().st_size
    with pytest.raises(OutputExistsError, match=rf"the inputs changed .*p0.jsonl: size {size} -> {grown} bytes; "
                                                r"p5.jsonl: new\).*--overwrite"):
        run_dedup(inp, out, settings, quiet=True)
    summary = run_dedup(inp, out, settings, overwrite=True, quiet=True)
    assert summary["records"] == 10


def test_unusable_output_locations_fail_before_any_work(tmp_path, oc_synth):
    d = make_shards(tmp_path / "in")
    (tmp_path / "a_file").write_text("x")
    one_line_error(oc_synth("curate", "transform", str(d), str(tmp_path / "a_file")), "a_file", "is a file")
    one_line_error(oc_synth("curate", "transform", str(d), str(tmp_path / "a_file" / "out")),
                   "a_file is a file, not a directory")
    with pytest.raises(OutputError, match="is a file, not a directory"):
        run_sharded(command="t", inp=d, out=tmp_path / "a_file" / "x", stages=[], options={}, quiet=True)


def test_ingest_redoes_the_shard_whose_source_files_changed(tmp_path):
    from oc_synth.curate.ingest import run_ingest

    src = tmp_path / "src"
    for repo in ("a", "b"):
        (src / repo).mkdir(parents=True)
        for i in range(3):
            (src / repo / f"m{i}.py").write_text(f"def f{i}():\n    return {i}\n")
    out = tmp_path / "out"
    run_ingest(src, out, shard_size=3, quiet=True)  # part-00000: a/*, part-00001: b/*
    before = (out / "part-00000.jsonl").read_bytes()
    (src / "b" / "m1.py").write_text("def f1():\n    return 'changed'\n")
    stats = run_ingest(src, out, shard_size=3, quiet=True)
    assert (out / "part-00000.jsonl").read_bytes() == before
    assert "return 'changed'" in (out / "part-00001.jsonl").read_text()
    assert read_stats(out)["resume"] == {"done_earlier": 1, "changed": {"part-00001": "files changed"}, "new": [],
                                         "vanished": []}
    assert stats.counters["records_out"] == 6
