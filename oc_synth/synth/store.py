"""The generation log: every sample the pipeline produced, appended per shard in atomic chunks.

    OUT/.oc/generations/<shard>.jsonl           one line per sample (or per rejected seed), with everything about it
    OUT/.oc/generations/<shard>.rank00003.jsonl the same, written by data-parallel rank 3
    OUT/.oc/failed/<shard>[.rankNNNNN].jsonl    seeds whose backend call failed: retried by the next run

(under ``OUT/.oc/``, the run's metadata folder, so that ``datasets.load_dataset(OUT)`` reads only the kept records)

A chunk of lines is written with a single ``write`` and fsync'd. A run killed mid-write leaves at most a partial
last line, which the next writer cuts off before appending. Every line carries its seed's id and ``seed_digest`` (the
seed record's content). A generation of a seed, (id, digest), is done when all of its samples are in the log (a seed
that was rejected outright is one record); a rerun generates only the seeds whose current (id, digest) is not done,
so a seed edited under the same id is generated again. The log is append-only: finalize decides which lines count.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from oc_common.outputs import META_DIR
from oc_common.records import dumps_record

GENERATIONS = f"{META_DIR}/generations"
SEED_DIGEST = "seed_digest"  # on every log line: the content of the seed it came from (seeds.seed_digest)
FAILED = f"{META_DIR}/failed"
_RANK_FILE = re.compile(r"^(?P<shard>.+?)(?:\.rank(?P<rank>\d{5}))?\.jsonl$")


def rank_suffix(rank: int | None) -> str:
    return "" if rank is None else f".rank{rank:05d}"


def repair_tail(path: Path) -> int:
    """Cut a partial last line (a run killed mid-append); returns the bytes removed."""
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return 0
        pos, chunk = size, 1 << 16
        while pos > 0:  # scan backwards for the last newline
            start = max(0, pos - chunk)
            f.seek(start)
            data = f.read(pos - start)
            nl = data.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            pos = start
        else:
            keep = 0
        f.truncate(keep)
        return size - keep


def append_records(path: Path, records: Iterable[dict[str, Any]]) -> int:
    """Append records as one write + fsync. Returns how many."""
    lines = [dumps_record(r) + "\n" for r in records]
    if not lines:
        return 0
    data = "".join(lines).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    return len(lines)


def iter_log(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) of a log file; a line that does not parse (only a torn tail can) is skipped."""
    with open(path, "rb") as f:
        for i, raw in enumerate(f, 1):
            if not raw.endswith(b"\n"):
                return
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict):
                yield i, rec


class GenerationStore:
    def __init__(self, out: Path, rank: int | None = None):
        self.out = Path(out)
        self.rank = rank
        self.generations = self.out / GENERATIONS
        self.failed = self.out / FAILED
        self._repaired: set[Path] = set()

    def log_path(self, shard: str) -> Path:
        return self.generations / f"{shard}{rank_suffix(self.rank)}.jsonl"

    def failed_path(self, shard: str) -> Path:
        return self.failed / f"{shard}{rank_suffix(self.rank)}.jsonl"

    def _prepare(self, path: Path) -> None:
        if path not in self._repaired:
            repair_tail(path)
            self._repaired.add(path)

    def append(self, shard: str, records: list[dict[str, Any]]) -> None:
        path = self.log_path(shard)
        self._prepare(path)
        append_records(path, records)

    def append_failures(self, shard: str, failures: list[dict[str, Any]]) -> None:
        path = self.failed_path(shard)
        self._prepare(path)
        append_records(path, failures)

    def log_files(self, directory: Path | None = None) -> dict[str, list[Path]]:
        """shard name -> its log files (all ranks), sorted."""
        directory = directory or self.generations
        out: dict[str, list[Path]] = defaultdict(list)
        if directory.is_dir():
            for p in sorted(directory.rglob("*.jsonl")):
                m = _RANK_FILE.match(str(p.relative_to(directory)))
                if m:
                    out[m["shard"]].append(p)
        return dict(out)

    def done_generations(self) -> set[tuple[str, str | None]]:
        """(seed id, seed digest) of the generations whose every sample is in the log (any shard, any rank)."""
        samples: dict[tuple[str, str | None], set[int]] = defaultdict(set)
        expected: dict[tuple[str, str | None], int] = {}
        for files in self.log_files().values():
            for path in files:
                for _, rec in iter_log(path):
                    if rec.get("seed_id") is None:
                        continue
                    key = (rec["seed_id"], rec.get(SEED_DIGEST))
                    if rec.get("sample") is None:
                        expected[key] = 0
                    else:
                        samples[key].add(rec["sample"])
                        expected.setdefault(key, int(rec.get("samples") or 1))
        return {key for key, n in expected.items() if n == 0 or len(samples[key]) >= n}
