"""The same stages give the same output in-process, in local worker processes (``--executor local --workers N``) and
on Ray (``RayShardExecutor``, a real local Ray)."""

import os
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from oc_common.errors import InputError
from oc_common.records import read_file_records, write_records
from oc_synth.curate.transform import run_transform
from oc_synth.pipeline.runner import run_sharded
from oc_synth.pipeline.stages import RecordStage


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


# --- --executor local --workers N ------------------------------------------------------------------------------------

def code_shards(root, shards=4, per_shard=12):
    """Real files (this Python's standard library, 1-30 kB) as code records; some pass the filter, some do not."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = [p for p in sorted(stdlib.glob("*.py")) if 1_000 <= p.stat().st_size <= 30_000][: shards * per_shard]
    for s in range(shards):
        write_records(root / f"part-{s}.jsonl", [
            {"id": f"{s}-{i}", "text": f.read_text(encoding="utf-8"), "path": f.name, "language": "Python",
             "doc_type": "code"} for i, f in enumerate(files[s * per_shard:(s + 1) * per_shard])])
    return root


def test_local_workers_write_exactly_what_one_process_writes(tmp_path):
    from oc_synth.curate.filter import run_filter

    inp = code_shards(tmp_path / "in")
    one = run_filter(inp, tmp_path / "one", dropped=tmp_path / "one_dropped", signals=True, quiet=True)
    two = run_filter(inp, tmp_path / "two", dropped=tmp_path / "two_dropped", signals=True, workers=2, quiet=True)
    for s in range(4):
        for kind in ("", "_dropped"):
            assert (tmp_path / f"two{kind}" / f"part-{s}.jsonl").read_bytes() == \
                (tmp_path / f"one{kind}" / f"part-{s}.jsonl").read_bytes()
    assert one.counters["records_out"] > 0 and one.counters["records_dropped"] > 0
    assert {k: v for k, v in one.counters.items() if k != "seconds"} == \
        {k: v for k, v in two.counters.items() if k != "seconds"}
    assert {k: v for k, v in one.groups.items() if k != "signal_seconds"} == \
        {k: v for k, v in two.groups.items() if k != "signal_seconds"}


@dataclass
class WhereStage(RecordStage):
    """Marks each record with the process that handled it; counts set-ups and tear-downs per process in files."""

    name: str = "where"
    log_dir: str = ""
    fail_on: str = ""

    def setup_worker(self) -> None:
        marker = Path(self.log_dir, f"setup-{os.getpid()}")
        (marker.with_name(marker.name + "-again") if marker.exists() else marker).touch()

    def teardown(self) -> None:
        Path(self.log_dir, f"teardown-{os.getpid()}").touch()

    def process_record(self, record, stats):  # noqa: ANN001, ANN201
        if record["id"] == self.fail_on:
            raise InputError(f"record {record['id']}: refused")
        record["pid"] = os.getpid()
        time.sleep(0.01)
        return record


def test_workers_are_processes_of_their_own_set_up_and_torn_down_once(tmp_path):
    inp = code_shards(tmp_path / "in", shards=6, per_shard=5)
    logs = tmp_path / "logs"
    logs.mkdir()
    run_sharded(command="test where", inp=inp, out=tmp_path / "out", stages=[WhereStage(log_dir=str(logs))],
                options={}, workers=2, quiet=True)
    pids = {rec["pid"] for f in (tmp_path / "out").glob("*.jsonl") for rec in read_file_records(f)[0]}
    assert len(pids) == 2 and os.getpid() not in pids
    assert sorted(p.name for p in logs.iterdir()) == sorted([f"setup-{p}" for p in pids]
                                                            + [f"teardown-{p}" for p in pids])


def test_a_failing_shard_stops_the_run_with_its_own_error(tmp_path):
    inp = code_shards(tmp_path / "in", shards=4, per_shard=5)
    (tmp_path / "logs").mkdir()
    stage = WhereStage(log_dir=str(tmp_path / "logs"), fail_on="2-3")
    with pytest.raises(InputError, match="record 2-3: refused"):
        run_sharded(command="test where", inp=inp, out=tmp_path / "out", stages=[stage], options={}, workers=2,
                    quiet=True)
    # the shards finished before the failure are kept; a rerun does the rest
    stage.fail_on = ""
    total = run_sharded(command="test where", inp=inp, out=tmp_path / "out", stages=[stage], options={}, workers=2,
                        quiet=True)
    assert total.counters["records_out"] == 20


def test_workers_are_not_forked_from_a_ray_driver(monkeypatch):
    """A fork of a process running Ray hangs in Ray's exit hooks (seen: 20 minutes in this file when the Ray test ran
    first); the pool starts its workers from a forkserver then. The Ray test above leaves Ray running for this file's
    later tests, which run the pool for real."""
    import types

    from oc_synth.pipeline.executors import _start_method

    monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(is_initialized=lambda: True))
    assert _start_method() == "forkserver"
    monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(is_initialized=lambda: False))
    assert _start_method() == "fork"
