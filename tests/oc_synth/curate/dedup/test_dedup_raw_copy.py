"""The removal pass copies JSONL lines without parsing them, and writes what the record path writes.

Oracle: the same records given as Parquet (read and written as records, the path every command takes), so each output
record must be the same object, and the counters the same (bytes written aside: the copy writes the input's bytes).
"""

import gzip
import json

import pytest

from oc_common.records import read_file_records, write_records
from oc_synth.curate.dedup.settings import build_settings
from oc_synth.curate.dedup.workflow import run_dedup

BASE = "def area(width, height):\n    return width * height\n\n\nprint(area(2, 3), 'π ≈ 3.14159')\n"


def corpus():
    records = []
    for i in range(30):
        text = BASE if i % 3 == 0 else BASE.replace("area", f"area_{i}")  # every third: an exact duplicate
        records.append({"id": f"r{i:02d}", "text": text, "stars": i % 5, "language": "Python" if i % 2 else "C",
                        "commit_time": f"2024-01-{1 + i % 20:02d}T00:00:00Z", "nested": {"k": [i, i + 1], "s": "é"}})
    records.append({"id": "no-text", "stars": 1})
    records.append({})  # an empty object
    return records


def outputs(root, suffix=".jsonl"):
    found = {}
    for path in sorted(root.rglob(f"*{suffix}")):
        if ".oc" not in path.parts:
            found[path.relative_to(root).as_posix()] = read_file_records(path)[0]
    return found


@pytest.mark.parametrize("mode", ["exact", "both"])
def test_copied_lines_hold_what_the_record_path_writes(tmp_path, mode):
    records = corpus()
    write_records(tmp_path / "jsonl" / "part-0.jsonl", records[:16])
    write_records(tmp_path / "jsonl" / "part-1.jsonl", records[16:])
    write_records(tmp_path / "parquet" / "part-0.parquet", records[:16])
    write_records(tmp_path / "parquet" / "part-1.parquet", records[16:])
    settings = build_settings(mode=mode, engine="cpu")
    copied = run_dedup(tmp_path / "jsonl", tmp_path / "out_copied", settings, dropped=tmp_path / "drop_copied",
                       quiet=True)
    parsed = run_dedup(tmp_path / "parquet", tmp_path / "out_parsed", settings, dropped=tmp_path / "drop_parsed",
                       quiet=True)
    assert copied["records_kept"] == parsed["records_kept"] < len(records)
    for kind in ("out", "drop"):
        a, b = outputs(tmp_path / f"{kind}_copied"), outputs(tmp_path / f"{kind}_parsed")
        assert a.keys() == b.keys() and a
        for name in a:
            # Parquet gives every record the union of the shard's columns (missing ones null); compare the rest
            assert [{k: v for k, v in r.items() if v is not None} for r in a[name]] == \
                [{k: v for k, v in r.items() if v is not None} for r in b[name]], name
    stats_a = json.loads((tmp_path / "out_copied" / ".oc" / "stats.json").read_text())
    stats_b = json.loads((tmp_path / "out_parsed" / ".oc" / "stats.json").read_text())
    for key in ("records_in", "records_out", "records_dropped"):
        assert stats_a["counters"][key] == stats_b["counters"][key]
    assert stats_a["groups"]["drop_reasons"] == stats_b["groups"]["drop_reasons"]
    assert stats_a["groups"]["language_in"] == stats_b["groups"]["language_in"]
    assert stats_a["groups"]["language_out"] == stats_b["groups"]["language_out"]


def test_a_kept_line_keeps_its_own_bytes_and_gets_the_fields_at_its_end(tmp_path):
    lines = ['{"id":"a","text":"x = 1\\ny = 2\\n",  "extra":[1,2]}', "", '{ "id" : "b", "text" : "other" }  ']
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "s.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run_dedup(tmp_path / "in", tmp_path / "out", build_settings(mode="exact", engine="cpu"), quiet=True)
    written = (tmp_path / "out" / "s.jsonl").read_text(encoding="utf-8").splitlines()
    assert written[0].startswith('{"id":"a","text":"x = 1\\ny = 2\\n",  "extra":[1,2], "dup_cluster": "')
    assert written[0].endswith('"dup_count": 1}')
    assert written[1].startswith('{ "id" : "b", "text" : "other", "dup_cluster": ')
    assert [json.loads(line)["id"] for line in written] == ["a", "b"]


def test_shards_that_mention_our_fields_or_had_bad_lines_take_the_record_path(tmp_path):
    # an earlier stage's keep=false decides here as it does for every command; a bad line is skipped and counted
    lines = [json.dumps({"id": "x", "text": "alpha beta", "keep": False, "drop_reasons": ["earlier"]}),
             json.dumps({"id": "y", "text": "gamma delta", "keep": True, "drop_reasons": []})]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "in" / "b.jsonl").write_text('{"id": "z", "text": "eps"}\nnot json\n', encoding="utf-8")
    run_dedup(tmp_path / "in", tmp_path / "out", build_settings(mode="exact", engine="cpu"),
              dropped=tmp_path / "drop", quiet=True)
    assert read_file_records(tmp_path / "out" / "a.jsonl")[0] == [  # keep / drop_reasons are taken off kept records
        {"id": "y", "text": "gamma delta", "dup_cluster": read_file_records(tmp_path / "out" / "a.jsonl")[0][0][
            "dup_cluster"], "dup_count": 1}]
    assert read_file_records(tmp_path / "drop" / "a.jsonl")[0][0]["drop_reasons"] == ["earlier"]
    assert [r["id"] for r in read_file_records(tmp_path / "out" / "b.jsonl")[0]] == ["z"]
    stats = json.loads((tmp_path / "out" / ".oc" / "stats.json").read_text())
    assert stats["counters"]["bad_records"] == 1


def test_gzipped_shards_are_copied_too(tmp_path):
    records = corpus()[:12]
    write_records(tmp_path / "in" / "p.jsonl.gz", records)
    run_dedup(tmp_path / "in", tmp_path / "out", build_settings(mode="exact", engine="cpu"),
              output_format="jsonl.gz", quiet=True)
    out = tmp_path / "out" / "p.jsonl.gz"
    with gzip.open(out, "rt", encoding="utf-8") as f:
        kept = [json.loads(line) for line in f]
    # r00, r03, r06, r09 are one text; r09 has the most stars (4) and survives
    assert [r["id"] for r in kept] == [r["id"] for r in records if r["id"] not in ("r00", "r03", "r06")]
    assert all("dup_cluster" in r for r in kept)
