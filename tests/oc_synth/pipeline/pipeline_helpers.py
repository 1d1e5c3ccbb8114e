"""Helpers of the pipeline tests: input trees and their digests (running the CLI: tests/cli_run.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from oc_common.records import write_records


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


