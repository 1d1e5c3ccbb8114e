"""``oc-synth verify`` as a sharded, resumable pipeline stage (imports NeMo Curator: kept out of the light API)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oc_common.log import get_logger
from oc_common.outcome import KEEP, reject
from oc_common.stats import Stats
from oc_synth.pipeline.stages import (
    RecordStage,
    batch_stats,
    ensure_keep_columns,
    frame_from_records,
    records_from_frame,
)
from oc_synth.sandbox.config import SandboxConfig
from oc_synth.sandbox.runner import Sandbox
from oc_synth.sandbox.verify import verify_one

log = get_logger(__name__)
FULL_ISOLATION = "namespaces+seccomp"  # Sandbox.isolation_mode of the full sandbox


def count_verdict(stats: Stats, record: dict[str, Any], isolation: str | None = None) -> None:
    """One record's verdict in the stats: per verdict, per reason of each non-passing verdict (``checks`` codes:
    sanity_mutant_passed, vacuous_assert, caught_failure, exited_early, ...), and the isolation it ran under."""
    stats.add_to("verdict", record["verdict"])
    if not record["passed"]:
        reason = record.get("verdict_reason") or record["verdict_detail"].split(":")[0][:80]
        stats.add_to(f"{record['verdict']}_because", reason)
    if isolation is not None:
        stats.add_to("isolation", isolation)
    stats.add("runtime_s_total", float(record["runtime_s"]))


@dataclass
class VerifyStage(RecordStage):
    """Runs a whole batch through one sandbox pool (records in parallel, not one by one). Non-passing records are
    rejected with reason ``verify_<verdict>`` unless ``keep_all``. It asks an executor for one CPU per sandbox slot:
    on Ray, each worker runs its own pool of ``workers`` slots."""

    name: str = "sandbox_verify"
    sandbox_config: dict = field(default_factory=dict)  # SandboxConfig fields (a dict travels to Ray workers)
    keep_all: bool = False

    def __post_init__(self) -> None:
        from nemo_curator.stages.resources import Resources

        self.resources = Resources(cpus=float(SandboxConfig(**self.sandbox_config).workers))

    def output_fields(self) -> dict[str, str]:
        return {"verdict": "string", "passed": "bool", "verdict_detail": "string", "verdict_reason": "string",
                "stderr_tail": "string", "runtime_s": "float64"}  # SandboxResult.record_fields

    def _sandbox(self) -> Sandbox:
        if getattr(self, "_sb", None) is None:
            self._sb = Sandbox(SandboxConfig(**self.sandbox_config))
        return self._sb

    def process(self, batch):  # noqa: ANN001, ANN201 - DocumentBatch in and out
        from nemo_curator.tasks import DocumentBatch

        st = batch_stats(batch)
        records = records_from_frame(ensure_keep_columns(batch.to_pandas()))
        todo = [i for i, r in enumerate(records) if r.get(KEEP, True)]
        sb = self._sandbox()
        for i, rec in zip(todo, sb.ordered_map(lambda r: verify_one(sb, r), [records[i] for i in todo]), strict=True):
            count_verdict(st, rec, sb.isolation_mode)
            if not rec["passed"] and not self.keep_all:
                reject(rec, f"verify_{rec['verdict']}")
            records[i] = rec
        return DocumentBatch(dataset_name=batch.dataset_name, data=ensure_keep_columns(frame_from_records(records)),
                             _metadata=batch._metadata, _stage_perf=batch._stage_perf)

    def teardown(self) -> None:
        if getattr(self, "_sb", None) is not None:
            self._sb.close()
            self._sb = None


def run_verify(inp: Path, out: Path, config: SandboxConfig, *, keep_all: bool = False, dropped: Path | None = None,
               overwrite: bool = False, quiet: bool = False, output_format: str = "jsonl",
               executor: str = "local") -> Stats:
    from oc_synth.pipeline.runner import run_sharded

    # Results depend on these settings, not on the worker count: resuming with other --workers is fine.
    options = {"keep_all": keep_all, **config.model_dump(exclude={"workers", "uid_base"})}
    stage = VerifyStage(sandbox_config=config.model_dump(), keep_all=keep_all)
    try:
        stats = run_sharded(command="verify", inp=inp, out=out, stages=[stage], options=options, dropped=dropped,
                            overwrite=overwrite, quiet=quiet, title="oc-synth verify", output_format=output_format,
                            executor=executor)
    finally:
        stage.teardown()
    if executor != "local":
        warn_degraded(stats)
    return stats


def warn_degraded(stats: Stats) -> None:
    """Say, in the driver, how many records ran without the full sandbox: a Ray worker's own warning stays in that
    worker's log, and only a worker node where the worker runs as root isolates fully (docs/sandbox.md)."""
    modes = stats.groups.get("isolation", {})
    degraded = {mode: n for mode, n in modes.items() if mode != FULL_ISOLATION}
    if degraded:
        log.warning("verify: %s of %s records ran without the full sandbox (%s; rlimits: the worker is not root, "
                    "no isolation; namespaces: no system-call filter). Full isolation needs root on every worker "
                    "node (docs/sandbox.md).", f"{sum(degraded.values()):,}", f"{sum(modes.values()):,}",
                    ", ".join(f"{m}: {n:,}" for m, n in sorted(degraded.items())))
