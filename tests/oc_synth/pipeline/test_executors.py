"""The same stages give the same output in-process and on NeMo Curator's Ray actor pool (a real local Ray)."""

import pytest

from oc_common.records import read_file_records, write_records
from oc_synth.curate.transform import run_transform


@pytest.fixture()
def shards(tmp_path):
    inp = tmp_path / "in"
    for s in range(3):
        write_records(inp / f"p{s}.jsonl", [
            {"id": f"{s}-{i}", "language": "Python",
             "text": f"# Copyright 2020 X\nuser_{i} = 'person{i}@corp{s}.io'\nserver = '34.120.{s}.{i + 1}'\n"}
            for i in range(20)])
    return inp


def test_ray_executor_matches_local(shards, tmp_path):
    local = run_transform(shards, tmp_path / "local", quiet=True)
    ray_stats = run_transform(shards, tmp_path / "ray", executor="ray", quiet=True)
    for s in range(3):
        a = read_file_records(tmp_path / "local" / f"p{s}.jsonl")[0]
        b = read_file_records(tmp_path / "ray" / f"p{s}.jsonl")[0]
        assert sorted(a, key=lambda r: r["id"]) == sorted(b, key=lambda r: r["id"])
    assert local.counters["copyright_removed"] == ray_stats.counters["copyright_removed"] == 60
    assert local.groups["pii"] == ray_stats.groups["pii"]
    assert local.groups["pii"]["email"] == 60 and local.groups["pii"]["ip_address"] == 60
