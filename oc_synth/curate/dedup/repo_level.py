"""``curate dedup --level repo``: repository-level dedup, the alternative OpenCoder's ablation compares with file level
(paper §2.1.1 and its dedup ablation; docs/opencoder.md §1): repository-level dedup keeps about 3x the tokens of
file-level dedup, and file level trains better, so file level is the default.

A repository is one unit: its files (records sharing ``repo``), sorted by path and joined with a newline, make one
"repository document". The repository documents are deduplicated exactly like files (``run_dedup``: SHA-256, then
MinHash LSH at the same settings; the keep rule sees the repository's highest ``stars`` and latest ``commit_time``),
and every file of a removed repository is removed, with ``duplicate_of_repo`` naming the surviving repository. Files
without a ``repo`` are kept.

Scale: the repository documents are built by hash-partitioning the input records into buckets on disk (one pass),
then grouping one bucket at a time in memory, so memory is about one bucket (the input / ``buckets``). They live in a
temporary folder beside OUT and are rebuilt on a rerun; the final pass (removal) resumes by shard like every stage.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oc_common.outcome import reject
from oc_common.records import iter_file_records, list_record_files, write_records
from oc_common.stats import Stats
from oc_synth.curate.dedup.settings import DedupSettings
from oc_synth.pipeline.stages import RecordStage

COMMAND = "curate dedup"
BUCKET_BYTES = 256 * 2**20  # ours: input bytes per in-memory bucket


def _bucket_of(repo: str, buckets: int) -> int:
    return int.from_bytes(hashlib.blake2b(repo.encode("utf-8", "surrogatepass"), digest_size=4).digest(), "big") \
        % buckets


def build_repo_documents(inp: Path, work: Path, text_field: str = "text") -> Stats:
    """Write one record per repository (``id`` = repo, ``text``, ``stars``, ``commit_time``, ``files``) under
    ``work/docs``; files without a repo or a text are counted and left out."""
    files = list_record_files(inp)
    buckets = max(1, -(-sum(f.stat().st_size for f in files) // BUCKET_BYTES))
    parts = work / "buckets"
    parts.mkdir(parents=True, exist_ok=True)
    handles = [open(parts / f"{b:05d}.jsonl", "w", encoding="utf-8") for b in range(buckets)]  # noqa: SIM115
    stats = Stats()
    try:
        for f in files:
            for _, rec in iter_file_records(f):
                if not isinstance(rec, dict):
                    continue  # a bad record: the removal pass reads and reports it
                repo, text = rec.get("repo"), rec.get(text_field)
                if not isinstance(repo, str) or not repo or not isinstance(text, str):
                    stats.add("files_without_repo")
                    continue
                row = {"repo": repo, "path": str(rec.get("path") or rec.get("id") or ""), "text": text,
                       "stars": rec.get("stars"), "commit_time": rec.get("commit_time")}
                handles[_bucket_of(repo, buckets)].write(json.dumps(row, ensure_ascii=False) + "\n")
    finally:
        for h in handles:
            h.close()
    docs = work / "docs"
    for b in range(buckets):
        by_repo: dict[str, list[dict]] = defaultdict(list)
        with open(parts / f"{b:05d}.jsonl", encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                by_repo[row["repo"]].append(row)
        records = []
        for repo, rows in sorted(by_repo.items()):
            rows.sort(key=lambda r: r["path"])
            stars = [r["stars"] for r in rows if isinstance(r["stars"], int) and not isinstance(r["stars"], bool)]
            times = [r["commit_time"] for r in rows if isinstance(r["commit_time"], str)]
            records.append({"id": repo, "repo": repo, "text": "\n".join(r["text"] for r in rows),
                            "stars": max(stars) if stars else None, "commit_time": max(times) if times else None,
                            "files": len(rows)})
        write_records(docs / f"{b:05d}.jsonl", records)
        (parts / f"{b:05d}.jsonl").unlink()
        stats.add("repos", len(records))
    return stats


@dataclass
class RepoRemovalStage(RecordStage):
    """Removes every file of a removed repository: ``removed`` maps a repo to (reason, surviving repo)."""

    removed: dict[str, tuple[str, str]] = field(default_factory=dict)
    name: str = "repo_dedup_removal"

    def process_record(self, record: dict[str, Any], stats: Stats) -> dict[str, Any]:
        hit = self.removed.get(record.get("repo")) if isinstance(record.get("repo"), str) else None
        if hit is not None:
            reason, survivor = hit
            record["duplicate_of_repo"] = survivor
            reject(record, reason)
        return record


def run_repo_dedup(inp: Path, out: Path, settings: DedupSettings, *, dropped: Path | None = None,
                   removed_ids: Path | None = None, executor: str = "local", output_format: str = "jsonl",
                   overwrite: bool = False, quiet: bool = False) -> Stats:
    from oc_synth.curate.dedup.workflow import OUTPUT_SUFFIXES, run_dedup
    from oc_synth.pipeline.runner import run_sharded

    inp, out = Path(inp), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.repo-level-", dir=out.parent))
    try:
        plan = build_repo_documents(inp, work)
        run_dedup(work / "docs", work / "dedup", settings, removed_ids=work / "removed.jsonl", quiet=True)
        removed_rows = [r for _, r in iter_file_records(work / "removed.jsonl")] \
            if (work / "removed.jsonl").exists() else []
        removed = {r["id"]: (r["reason"], r["duplicate_of"]) for r in removed_rows}
        plan.add("repos_removed", len(removed))
        for reason, _ in removed.values():
            plan.add_to("repos_removed_by", reason)
        if removed_ids is not None:
            write_records(Path(removed_ids), [{"repo": r["id"], "reason": r["reason"], "cluster": r["cluster"],
                                               "duplicate_of_repo": r["duplicate_of"]} for r in removed_rows])
        options = {"level": "repo", "settings": settings.model_dump(mode="json", exclude={"workers"}),
                   "removed_repos": hashlib.sha256(json.dumps(sorted(removed.items())).encode()).hexdigest()[:16],
                   "output_format": output_format}
        return run_sharded(command=COMMAND, inp=inp, out=out, stages=[RepoRemovalStage(removed=removed)],
                           options=options, dropped=dropped, executor=executor, overwrite=overwrite,
                           output_suffix=OUTPUT_SUFFIXES[output_format], title="dedup (repository level)",
                           extra_stats=plan, quiet=quiet)
    finally:
        shutil.rmtree(work, ignore_errors=True)
