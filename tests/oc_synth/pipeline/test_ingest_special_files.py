"""Ingest reads regular files only: a FIFO, a socket or a device in a source tree is dropped with reason
`not_regular_file` and never opened for reading (a FIFO would hang the run, /dev/zero would never end); a file name
that is not UTF-8 is kept, escaped and flagged, never a crash."""

from __future__ import annotations

import os
import socket
import stat

import pytest

from oc_common.outputs import read_stats
from oc_common.records import iter_records


@pytest.mark.timeout(120)  # a FIFO that gets opened blocks forever: fail instead of hanging the suite
def test_special_files_are_dropped_unopened_and_odd_names_kept(tmp_path, oc_synth):
    src = tmp_path / "src"
    repo = src / "repo1"
    repo.mkdir(parents=True)
    (repo / "ok.py").write_text("def ok():\n    return 1\n")
    os.mkfifo(repo / "fifo.py")
    (repo / "inside").mkdir()
    os.mkfifo(repo / "inside" / "pipe")
    os.symlink(repo / "inside" / "pipe", repo / "link_to_fifo.py")  # a link inside SRC to a FIFO
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(repo / "server.sock"))
    try:
        try:
            os.mknod(repo / "zero.c", stat.S_IFCHR | 0o666, os.makedev(1, 5))  # /dev/zero: reads never end
            device = True
        except PermissionError:
            device = False
        odd = os.fsencode(repo) + b"/caf\xe9.py"  # Latin-1 bytes: not a UTF-8 name
        with open(odd, "wb") as f:
            f.write(b"y = 2\n")
        out, dropped = tmp_path / "out", tmp_path / "dropped"
        r = oc_synth("curate", "ingest", str(src), str(out), "--dropped", str(dropped), "-q")
    finally:
        sock.close()
    assert r.returncode == 0, r.stderr[-3000:]
    gone = {rec["path"]: rec["drop_reasons"] for rec in iter_records(dropped)}
    special = {"fifo.py", "inside/pipe", "link_to_fifo.py", "server.sock"} | ({"zero.c"} if device else set())
    assert {p: reasons for p, reasons in gone.items() if p in special} == {p: ["not_regular_file"] for p in special}
    kept = {rec["path"]: rec for rec in iter_records(out)}
    assert kept["caf\\xe9.py"]["name_not_utf8"] is True and kept["caf\\xe9.py"]["text"] == "y = 2\n"
    assert kept["caf\\xe9.py"]["id"] == "repo1/caf\\xe9.py" and kept["ok.py"]["name_not_utf8"] is False
    assert read_stats(out)["counters"]["names_not_utf8"] == 1
