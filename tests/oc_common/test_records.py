import gzip

import pytest

from oc_common.errors import InputError
from oc_common.fileio import atomic_open
from oc_common.records import iter_records, list_record_files, read_file_records, write_records


@pytest.mark.parametrize("name", ["a.jsonl", "a.jsonl.gz", "a.parquet"])
def test_round_trip_formats(tmp_path, name):
    recs = [{"id": str(i), "text": f"t{i}", "stars": i} for i in range(3)]
    assert write_records(tmp_path / name, recs) == 3
    assert read_file_records(tmp_path / name) == (recs, [])


def test_errors_name_file_and_line(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_bytes(b'{"a": 1}\n{"a": \n"str"\n\xff\n')
    recs, errors = read_file_records(p)
    assert recs == [{"a": 1}]
    assert [str(e).split(": ", 1)[0] for e in errors] == [f"{p}:2", f"{p}:3", f"{p}:4"]
    assert "malformed JSON" in errors[0].reason and "expected a JSON object" in errors[1].reason
    assert "not UTF-8" in errors[2].reason


def test_truncated_gzip_and_corrupt_parquet(tmp_path):
    gz = tmp_path / "a.jsonl.gz"
    data = gzip.compress(b'{"a": 1}\n' * 1000)
    gz.write_bytes(data[: len(data) // 2])
    recs, errors = read_file_records(gz)
    assert errors and "read error" in errors[-1].reason
    pq = tmp_path / "b.parquet"
    pq.write_bytes(b"not parquet")
    recs, errors = read_file_records(pq)
    assert recs == [] and "not a readable Parquet file" in errors[0].reason


def test_listing(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        list_record_files(tmp_path / "nope")
    with pytest.raises(InputError, match="no record files"):
        list_record_files(tmp_path)
    write_records(tmp_path / "b" / "2.jsonl", [{"x": 1}])
    write_records(tmp_path / "a.parquet", [{"x": 2}])
    write_records(tmp_path / "_stats" / "s.jsonl", [{"x": 3}])
    assert [p.name for p in list_record_files(tmp_path)] == ["a.parquet", "2.jsonl"]
    assert sorted(r["x"] for r in iter_records(tmp_path)) == [1, 2]


def test_atomic_open_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as f:
            f.write("new partial")
            raise RuntimeError("killed")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_parquet_keeps_fields_missing_from_the_first_record(tmp_path):
    recs = [{"id": "1"}, {"id": "2", "text": "x", "stars": 3}]
    write_records(tmp_path / "a.parquet", recs)
    got, _ = read_file_records(tmp_path / "a.parquet")
    assert got == [{"id": "1", "text": None, "stars": None}, {"id": "2", "text": "x", "stars": 3}]
