"""Helpers of the pipeline tests: the real CLI entry point in this process, the one-line error check, input trees."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from oc_common.records import write_records


@dataclass
class Ran:
    returncode: int
    stderr: str


def run_main(main, capfd, *args: str) -> Ran:
    """Run a CLI entry point (oc_common.cli.run_app) in this process: the exit code and stderr a user sees, without
    paying a Python start and the imports for each call."""
    capfd.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    return Ran(code, capfd.readouterr().err)


def one_line_error(r: Ran, *needles: str) -> str:
    """The CLI failed the way the conventions say: exit code 2, one `error:` line holding every needle, no
    traceback."""
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, r.stderr[-3000:]  # rich wraps nothing (soft_wrap): one physical line
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its content hash: equal before and after means untouched."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def make_shards(d: Path, n: int = 2, rows: int = 4) -> Path:
    for s in range(n):
        write_records(d / f"p{s}.jsonl", [{"id": f"{s}-{i}", "language": "Python",
                                           "text": f"# Copyright 2020 X\ndef f{i}():\n    return 'a{i}@b{s}.io'\n"}
                                          for i in range(rows)])
    return d


