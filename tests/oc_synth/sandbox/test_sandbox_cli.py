"""``oc-synth verify IN OUT`` end to end: verdicts on records, bad input counted and kept, --all, --dropped, resume."""

import json
import os
import sys

import pytest
from typer.testing import CliRunner

from oc_common.records import read_file_records, write_records
from oc_synth.cli import app, main

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="the full sandbox needs root"),
              pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="apt-get install python3")]

F = "def f(x):\n    return x + 1\n"
RECORDS = [
    {"id": "ok", "code": F, "tests": "assert f(1) == 2"},  # language defaults to python
    {"id": "wrong", "language": "Python", "code": F, "tests": "assert f(1) == 3"},
    {"id": "never_calls", "language": "python", "code": F, "tests": "assert True"},
    {"id": "no_tests", "code": F},
    {"id": "slow", "code": "def f():\n    while True:\n        pass\n", "tests": "assert f()"},
    {"id": "no_code", "tests": "assert f(1) == 2"},
    {"id": "cobol", "language": "COBOL", "code": "DISPLAY 'HI'.", "tests": "x"},
]
EXPECTED = {"ok": "passed", "wrong": "failed", "never_calls": "no_tests", "no_tests": "no_tests", "slow": "timeout",
            "no_code": "error", "cobol": "error"}


def read_stats(out):
    for path in (out / ".oc" / "stats.json", out / "stats.json"):
        if path.exists():
            return json.loads(path.read_text())
    raise AssertionError(f"no stats.json under {out}")


def invoke(*args):
    return CliRunner().invoke(app, ["verify", *map(str, args)], catch_exceptions=False)


@pytest.fixture()
def inp(tmp_path):
    path = tmp_path / "in" / "part-0.jsonl"
    write_records(path, RECORDS)
    with open(path, "a") as f:
        f.write("{not json\n")  # a malformed line: counted, the rest of the shard still runs
    return path.parent


def test_default_keeps_passing_records_and_drops_the_rest_with_reasons(inp, tmp_path):
    out, dropped = tmp_path / "out", tmp_path / "dropped"
    res = invoke(inp, out, "--timeout", "1", "--workers", "2", "--dropped", dropped, "--quiet")
    assert res.exit_code == 0, res.output
    kept, _ = read_file_records(out / "part-0.jsonl")
    assert [(r["id"], r["verdict"], r["passed"]) for r in kept] == [("ok", "passed", True)]
    assert kept[0]["code"] == F and kept[0]["runtime_s"] > 0 and "stderr_tail" in kept[0]
    gone, _ = read_file_records(dropped / "part-0.jsonl")
    assert {r["id"]: r["verdict"] for r in gone} == {k: v for k, v in EXPECTED.items() if k != "ok"}
    assert {r["id"]: r["drop_reasons"] for r in gone}["wrong"] == ["verify_failed"]
    stats = read_stats(out)
    assert stats["counters"]["bad_records"] == 1
    assert stats["groups"]["verdict"] == {"passed": 1, "failed": 1, "no_tests": 2, "timeout": 1, "error": 2}
    # reasons are stable codes per verdict; the isolation in force is counted for every record
    assert stats["groups"]["no_tests_because"] == {"no_reference": 1, "empty_tests": 1}
    assert stats["groups"]["error_because"] == {"bad_record": 1, "unsupported_language": 1}
    assert set(stats["groups"]["isolation"]) <= {"namespaces+seccomp", "namespaces"}
    assert sum(stats["groups"]["isolation"].values()) == len(RECORDS)

    # rerun with the same options: nothing left to do, same totals
    again = invoke(inp, out, "--timeout", "1", "--workers", "1", "--dropped", dropped, "--quiet")
    assert again.exit_code == 0, again.output
    assert read_stats(out)["groups"] == stats["groups"]


def test_all_writes_every_record_with_its_verdict(inp, tmp_path):
    out = tmp_path / "out"
    res = invoke(inp, out, "--timeout", "1", "--all", "--quiet")
    assert res.exit_code == 0, res.output
    kept, _ = read_file_records(out / "part-0.jsonl")
    assert {r["id"]: r["verdict"] for r in kept} == EXPECTED
    by_id = {r["id"]: r for r in kept}
    assert "missing field 'code'" in by_id["no_code"]["verdict_detail"]
    assert "unsupported language 'COBOL'" in by_id["cobol"]["verdict_detail"]
    assert "AssertionError" in by_id["wrong"]["stderr_tail"] and by_id["wrong"]["verdict_reason"] == "assertion_failed"
    assert by_id["ok"]["verdict_detail"] == "1 asserts ran; 1 sanity mutant failed"


def test_bad_options_are_one_clear_error(inp, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["oc-synth", "verify", str(inp), str(tmp_path / "o"), "--isolation", "sometimes"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "isolation" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # refused before any work
