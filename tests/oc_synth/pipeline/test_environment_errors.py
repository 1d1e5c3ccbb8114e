"""The machine refuses: a full disk (a real one: a small tmpfs), a read-only file system, no permission. Each is one
line naming the path and what to do, exit code 2, and leaves nothing a rerun would trust; the rerun, once there is
room, gives the output an undisturbed run gives."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_run import one_line_error
from pipeline_helpers import make_shards, tree_digest

from oc_common.outputs import read_manifest, read_stats
from oc_common.records import write_records
from oc_synth.pipeline.runner import read_markers


def big_shards(d: Path, n: int = 4, rows: int = 60) -> Path:
    """~100 KB of records: more than the 64 KB disk below holds."""
    for s in range(n):
        write_records(d / f"p{s}.jsonl", [{"id": f"{s}-{i}", "language": "Python",
                                           "text": f"# Copyright 2021 Y\nx_{i} = '{'ab' * 200}'  # c{i}@d.org\n"}
                                          for i in range(rows)])
    return d


def data_files(out: Path) -> dict[str, str]:
    return {k: v for k, v in tree_digest(out).items() if not k.startswith(".oc")}


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def test_a_full_disk_is_one_line_leaves_nothing_trusted_and_the_rerun_completes(tmp_path, mount_tmpfs, oc_synth):
    inp = big_shards(tmp_path / "in")
    reference = tmp_path / "reference"
    assert oc_synth("curate", "transform", str(inp), str(reference), "-q").returncode == 0
    disk = mount_tmpfs(tmp_path / "disk", size="64k")
    out = disk / "out"
    line = one_line_error(oc_synth("curate", "transform", str(inp), str(out), "-q"), str(out),
                          "no space left on device; free some space or write elsewhere, then rerun to resume")
    assert "Traceback" not in line and not temp_files(disk)
    for name, marker in read_markers(out).items():  # a shard marked done has its whole output
        assert (out / marker["outputs"]["OUT"]).read_bytes() == (reference / f"{name}.jsonl").read_bytes()
    mount_tmpfs.remount(disk, "4m")
    assert oc_synth("curate", "transform", str(inp), str(out), "-q").returncode == 0
    assert data_files(out) == data_files(reference)
    assert read_stats(out)["counters"]["records_out"] == read_stats(reference)["counters"]["records_out"] == 240


def test_a_read_only_location_fails_before_any_work(tmp_path, mount_tmpfs, oc_synth):
    inp = make_shards(tmp_path / "in")
    ro = mount_tmpfs(tmp_path / "ro", read_only=True)
    one_line_error(oc_synth("curate", "filter", str(inp), str(ro / "out")), str(ro / "out"),
                   "is on a read-only file system; choose a writable location")
    one_line_error(oc_synth("curate", "filter", str(inp), str(tmp_path / "out"), "--dropped", str(ro / "d")),
                   "--dropped", "read-only file system")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux) to drop root's override")
def test_no_permission_is_one_line(tmp_path):
    inp = make_shards(tmp_path / "in")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    # root ignores permissions; without CAP_DAC_OVERRIDE it meets them like any user
    r = subprocess.run(["setpriv", "--bounding-set", "-dac_override,-dac_read_search", sys.executable, "-m",
                        "oc_synth.cli", "curate", "transform", str(inp), str(locked / "out")],
                       capture_output=True, text=True, timeout=120)
    one_line_error(r, str(locked / "out"), "no permission to write in", "fix its permissions")
    assert list(locked.iterdir()) == []


def test_a_fifo_named_like_a_shard_is_never_opened(tmp_path, oc_synth):
    inp = make_shards(tmp_path / "in")
    import os

    os.mkfifo(inp / "pipe.jsonl")  # reading it would block forever
    r = oc_synth("curate", "transform", str(inp), str(tmp_path / "out"), "-q")
    assert r.returncode == 0, r.stderr[-2000:]
    assert read_manifest(tmp_path / "out")["writes"] == ["p0.jsonl", "p1.jsonl"]
