"""Resumable sharded runs: one NeMo Curator pipeline over every input shard not finished by an earlier run.

Layout of an output directory written by ``run_sharded`` (the contract is oc_common/outputs.py, docs/outputs.md)::

    OUT/<shard>.jsonl              kept records (one output shard per input shard; sub-folders mirror the input)
    OUT/.oc/manifest.json          which command and options wrote OUT, its inputs, every path it wrote
    OUT/.oc/shards/<shard>.json    that shard's counters and its input's identity, written last: the done-marker
    OUT/.oc/stats.json             totals over all shards, rewritten at the end of every run
    DROPPED/<shard>.jsonl          rejected records with keep=false and drop_reasons (when asked for)
    DROPPED/.oc/manifest.json      the same manifest: what was written there

Resume is keyed on each input shard's identity: a shard is done when its marker exists and its input is the one the
marker describes (size, mtime, ctime, inode; else its content hash). A changed input shard is redone, a new one
processed, and the output of one that vanished is removed, each reported.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemo_curator.pipeline import Pipeline
from nemo_curator.stages.base import ProcessingStage
from nemo_curator.tasks import FileGroupTask
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from oc_common.errors import InputError
from oc_common.fileio import atomic_write_json
from oc_common.log import console, get_logger
from oc_common.outputs import (
    SHARDS,
    OutputDir,
    claim_outputs,
    group_identity,
    identity_change,
    meta_dir,
    shard_marker,
    stat_identity,
    stats_path,
)
from oc_common.records import list_record_files, strip_record_suffix
from oc_common.stats import Stats, render_stats
from oc_synth.pipeline.executors import check_executor, make_executor
from oc_synth.pipeline.stages import ShardReader, ShardWriter

log = get_logger(__name__)


@dataclass
class Shard:
    """One unit of work and of resume: its output is ``OUT/<name><suffix>``."""

    name: str  # relative path without suffix, e.g. "repo_a/part-00001"
    files: list[str]  # what the reader stage reads (one record file, or a group of source files for ingest)
    config: dict[str, Any] = field(default_factory=dict)  # passed to the reader stage
    identity: dict[str, Any] | None = None  # of its input, when it was planned (filled in by run_sharded if None)

    def current_identity(self, base: Path) -> dict[str, Any]:
        if len(self.files) == 1 and not self.config.get("group"):
            return stat_identity(self.files[0])
        return group_identity(self.files, base)


def plan_shards(inp: Path) -> list[Shard]:
    """One shard per record file under ``inp``; names mirror the input's relative paths."""
    files = list_record_files(inp)
    base = inp if inp.is_dir() else inp.parent
    shards = [Shard(strip_record_suffix(str(f.relative_to(base))), [str(f)]) for f in files]
    check_shard_names(shards)
    return shards


def check_shard_names(shards: Sequence[Shard]) -> None:
    """Mixed JSONL/Parquet input is fine, but two files that differ only by suffix would write the same output."""
    seen: dict[str, Shard] = {}
    for s in shards:
        if s.name in seen:
            raise InputError(f"input files {seen[s.name].files[0]} and {s.files[0]} would both be written as shard "
                             f"{s.name!r}; rename one")
        seen[s.name] = s


def read_markers(out: Path) -> dict[str, dict[str, Any]]:
    """shard name -> its done-marker, for every shard an earlier run finished in ``out``."""
    root = meta_dir(out) / SHARDS
    markers = {}
    if root.is_dir():
        for p in sorted(root.rglob("*.json")):
            try:
                markers[p.relative_to(root).as_posix()[: -len(".json")]] = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                p.unlink(missing_ok=True)  # unreadable (cannot happen with atomic writes): redo that shard
    return markers


def collect_stats(out: Path) -> Stats:
    total = Stats()
    for marker in read_markers(out).values():
        total.merge(Stats.from_dict(marker))
    return total


@dataclass
class ResumePlan:
    pending: list[Shard]
    done: int = 0
    changed: list[tuple[str, str]] = field(default_factory=list)  # (shard, what changed)
    new: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)

    def describe(self, total: int) -> str:
        parts = [f"{self.done} of {total} shards done earlier"]
        if self.changed:
            first = ", ".join(f"{n} ({why})" for n, why in self.changed[:3])
            parts.append(f"{len(self.changed)} redone because the input changed: {first}"
                         + (", ..." if len(self.changed) > 3 else ""))
        if self.new:
            parts.append(f"{len(self.new)} new input shards ({', '.join(self.new[:3])}"
                         + (", ...)" if len(self.new) > 3 else ")"))
        unfinished = len(self.pending) - len(self.changed) - len(self.new)
        if unfinished:
            parts.append(f"{unfinished} unfinished")
        if self.vanished:
            parts.append(f"{len(self.vanished)} input shards gone since, their output removed "
                         f"({', '.join(self.vanished[:3])}" + (", ...)" if len(self.vanished) > 3 else ")"))
        return "; ".join(parts)


def plan_resume(out: Path, shards: Sequence[Shard], outputs: dict[str, Path], earlier_writes: set[str],
                suffix: str) -> ResumePlan:
    """Which shards still need work, judged by their inputs' identities; removes what vanished inputs left."""
    markers = read_markers(out)
    plan = ResumePlan(pending=[])
    for s in shards:
        marker = markers.get(s.name)
        if marker is None:
            plan.pending.append(s)
            if earlier_writes and f"{s.name}{suffix}" not in earlier_writes:
                plan.new.append(s.name)
            continue
        old = marker.get("input")
        if len(s.files) == 1 and not s.config.get("group"):
            check = identity_change(old, s.files[0])
            change, refreshed = check.change, check.identity
        else:
            same = isinstance(old, dict) and old.get("digest") == (s.identity or {}).get("digest")
            change, refreshed = (None if same else "files changed"), None
        if change is None:
            plan.done += 1
            if refreshed is not None:  # a copy or a touch: same content; remember the new stat fields
                atomic_write_json(shard_marker(out, s.name), {**marker, "input": refreshed})
            continue
        plan.changed.append((s.name, change))
        plan.pending.append(s)
        shard_marker(out, s.name).unlink(missing_ok=True)
    planned = {s.name for s in shards}
    for name, marker in markers.items():
        if name in planned:
            continue
        plan.vanished.append(name)
        for label, where in outputs.items():
            rel = (marker.get("outputs") or {}).get(label)
            if rel:
                (where / rel).unlink(missing_ok=True)
        shard_marker(out, name).unlink(missing_ok=True)
    return plan


def run_sharded(
    *,
    command: str,
    inp: Path,
    out: Path,
    stages: Sequence[ProcessingStage],
    options: dict[str, Any],
    dropped: Path | None = None,
    annotate: bool = False,
    executor: str = "local",
    overwrite: bool = False,
    output_suffix: str = ".jsonl",
    output_format: str | None = None,
    title: str | None = None,
    keep_rate_groups: tuple[str, str] | None = ("language_in", "language_out"),
    quiet: bool = False,
    shards: Sequence[Shard] | None = None,
    reader: ProcessingStage | None = None,
    extra_stats: Stats | None = None,
    workers: int = 1,
    writer: Callable[..., ShardWriter] = ShardWriter,
) -> Stats:
    """Run ``reader -> stages -> ShardWriter`` over every unfinished shard; return the totals.

    By default the shards are the record files under ``inp`` and the reader is ``ShardReader``; ingest passes its own
    shards (groups of source files) and reader. ``extra_stats`` (e.g. counts from planning) join the totals.
    ``workers`` > 1 runs shards in that many processes (``--executor local``; see executors.py). ``writer`` makes the
    last stage from ShardWriter's fields (dedup's writes some shards without parsing them).
    ``output_format`` (a command's ``--output-format``: jsonl, jsonl.gz or parquet) sets the suffix, and joins the
    options (a resume must write the same format).
    """
    check_executor(executor)
    if output_format is not None:
        output_suffix = f".{output_format}"
        options = {**options, "output_format": output_format}
    inp, out = Path(inp), Path(out)
    shards = list(shards) if shards is not None else plan_shards(inp)
    base = inp if inp.is_dir() else inp.parent
    writes = [f"{s.name}{output_suffix}" for s in shards]
    dirs = [OutputDir(out, "OUT", writes)] + ([OutputDir(Path(dropped), "--dropped", writes)] if dropped else [])
    earlier = claim_outputs(command, options, inputs={"IN": inp}, dirs=dirs, overwrite=overwrite)
    earlier_writes = set(dirs[0].manifest.get("writes", [])) if earlier and dirs[0].manifest else set()
    for s in shards:
        if s.identity is None:
            s.identity = s.current_identity(base)
    outputs = {d.label: d.path for d in dirs}
    plan = plan_resume(out, shards, outputs, earlier_writes, output_suffix)
    pending = plan.pending
    if earlier:
        message = plan.describe(len(shards))
        (log.warning if plan.changed or plan.vanished else log.info)("%s: %s", command, message)
    t0 = time.perf_counter()
    if pending:
        fields, dropped_only = {}, {}
        for stage in stages:  # what the stages add: on every record of OUT, null where absent (stages.py)
            fields.update(stage.output_fields() if hasattr(stage, "output_fields") else {})
            dropped_only.update(stage.dropped_fields() if hasattr(stage, "dropped_fields") else {})
        last = writer(out_dir=str(out), dropped_dir=str(dropped) if dropped else None, suffix=output_suffix,
                      annotate=annotate, fields=fields, dropped_only_fields=dropped_only)
        pipe = Pipeline(name=command.replace(" ", "_").replace(":", ""),
                        stages=[reader or ShardReader(), *stages, last])
        tasks = [FileGroupTask(dataset_name=s.name, data=list(s.files),
                               reader_config={"shard": s.name, "identity": s.identity, **s.config})
                 for s in pending]
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, disable=quiet or executor != "local", transient=True) as progress:
            bar = progress.add_task(f"{command}: shards", total=len(tasks))
            ex = make_executor(executor, on_task_done=lambda _t: progress.advance(bar), workers=workers)
            pipe.run(ex, initial_tasks=tasks)
    total = collect_stats(out)
    if extra_stats is not None:
        total.merge(extra_stats)
    total.counters["shards"] = len(shards)
    total.counters["seconds"] = round(time.perf_counter() - t0, 3)
    resume = {"done_earlier": plan.done, "changed": dict(plan.changed), "new": plan.new, "vanished": plan.vanished}
    atomic_write_json(stats_path(out), {"command": command, **total.to_dict(), "resume": resume})
    if not quiet:
        render_stats(title or command, total, console, keep_rate_groups=keep_rate_groups)
        console.print(f"[bold]{command}[/]: {total.counters.get('records_out', 0):,} records written to {out}"
                      + (f", dropped ones to {dropped}" if dropped else "") + f"; stats in {stats_path(out)}",
                      highlight=False)
    return total
