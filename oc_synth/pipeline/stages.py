"""The NeMo Curator stages every sharded command is built from.

A sharded command is ``ShardReader -> RecordStage... -> ShardWriter`` over one ``FileGroupTask`` per input shard.
Record stages never delete rows: a stage that rejects a record sets ``keep=False`` and appends its reason to
``drop_reasons``; the writer splits kept from dropped, so nothing is lost and every drop has a reason.
A stage that adds fields to records declares them with their types (``output_fields``; ``dropped_fields`` for
fields only rejected records get): the writer gives every record of the command each one, null where the stage set
none, so that all shards of an output have the same columns (``oc_common.records.write_shard``).
Per-shard counters travel with the batch in ``_metadata["stats"]``, the identity of the shard's input in
``_metadata["input_identity"]``; the writer writes both, last, as the shard's done-marker (``OUT/.oc/shards/``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from nemo_curator.stages.base import ProcessingStage
from nemo_curator.tasks import DocumentBatch, FileGroupTask

from oc_common.fileio import atomic_write_json
from oc_common.log import get_logger
from oc_common.outcome import DROP_REASONS, KEEP
from oc_common.outputs import content_digest, shard_marker
from oc_common.records import RecordError, dumps_record, read_file_records, write_shard
from oc_common.stats import Stats

log = get_logger(__name__)

MAX_ERRORS_LOGGED = 5


def batch_stats(batch: DocumentBatch) -> Stats:
    """The Stats object riding on a batch (created on first use)."""
    st = batch._metadata.get("stats")
    if isinstance(st, Stats):
        return st
    st = Stats.from_dict(st) if isinstance(st, dict) else Stats()
    batch._metadata["stats"] = st
    return st


def frame_from_records(records: list[dict[str, Any]]) -> pd.DataFrame:
    # object dtype keeps values exactly as read (no int->float upcast when a field is missing in some rows)
    return pd.DataFrame.from_records(records) if not records else pd.DataFrame(records, dtype=object)


def records_from_frame(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows back to dicts; a field a record never had (NaN from the frame's union of columns) is left out again."""
    out = []
    for rec in df.to_dict("records"):
        out.append({k: v for k, v in rec.items() if not (isinstance(v, float) and math.isnan(v))})
    return out


def ensure_keep_columns(df: pd.DataFrame) -> pd.DataFrame:
    if KEEP not in df.columns:
        df[KEEP] = pd.Series([True] * len(df), index=df.index, dtype=object)
    if DROP_REASONS not in df.columns:
        df[DROP_REASONS] = pd.Series([[] for _ in range(len(df))], index=df.index, dtype=object)
    return df


@dataclass
class ShardReader(ProcessingStage[FileGroupTask, DocumentBatch]):
    """Reads one shard file into a batch; malformed lines are counted (with file:line) instead of failing."""

    name: str = "shard_reader"

    def inputs(self) -> tuple[list[str], list[str]]:
        return ["data"], []

    def outputs(self) -> tuple[list[str], list[str]]:
        return ["data"], [KEEP, DROP_REASONS]

    def process(self, task: FileGroupTask) -> DocumentBatch:
        (path,) = task.data
        # The identity was taken (stat) when the shard was planned; the hash comes before the read, so a change at
        # any point after the stat shows at the next resume.
        identity = dict(task.reader_config.get("identity") or {})
        identity["content"] = content_digest(path)
        records, errors = read_file_records(path)
        batch = DocumentBatch(dataset_name=task.reader_config["shard"], data=ensure_keep_columns(
            frame_from_records(records)), _metadata={"source": path, "input_identity": identity})
        st = batch_stats(batch)
        st.add("records_in", len(records))
        st.add("bytes_in", Path(path).stat().st_size)
        record_read_errors(st, errors)
        return batch


def record_read_errors(st: Stats, errors: list[RecordError]) -> None:
    if not errors:
        return
    st.add("bad_records", len(errors))
    for e in errors:
        st.add_to("bad_records", e.reason.split(" (")[0].split(":")[0])
    for e in errors[:MAX_ERRORS_LOGGED]:
        log.warning("skipped %s", e)
    if len(errors) > MAX_ERRORS_LOGGED:
        log.warning("... and %d more bad records in %s", len(errors) - MAX_ERRORS_LOGGED, errors[0].file)


class LazySetup:
    """Per-worker initialisation that runs exactly once: Curator's executors call ``setup()`` on each worker, while
    the in-process executor and unit tests may call ``process()`` directly. Stages put their initialisation in
    ``setup_worker()`` and call ``ensure_setup()`` at the top of ``process()``."""

    def setup_worker(self) -> None:
        """Load data files, compile patterns, start pools: whatever a worker needs once."""

    def ensure_setup(self) -> None:
        if not self.__dict__.get("_set_up", False):
            self.setup_worker()
            self.__dict__["_set_up"] = True

    def setup(self, worker_metadata=None) -> None:  # noqa: ANN001 - Curator's signature
        self.ensure_setup()


@dataclass
class RecordStage(LazySetup, ProcessingStage[DocumentBatch, DocumentBatch]):
    """Base for stages that look at one record at a time. Subclasses implement ``process_record``.

    ``process_record(record, stats)`` returns the (possibly modified) record. To reject it, call
    ``reject(record, reason)``. Records already rejected by an earlier stage are passed through untouched unless
    ``process_rejected`` is True (``--signals`` wants every signal on every record).
    """

    name: str = "record_stage"
    process_rejected: bool = False

    def inputs(self) -> tuple[list[str], list[str]]:
        return ["data"], []

    def outputs(self) -> tuple[list[str], list[str]]:
        return ["data"], [KEEP, DROP_REASONS]

    def process_record(self, record: dict[str, Any], stats: Stats) -> dict[str, Any]:
        raise NotImplementedError

    def output_fields(self) -> dict[str, str]:
        """The fields this stage may add to a record: name -> type (``oc_common.records.FIELD_TYPES``)."""
        return {}

    def dropped_fields(self) -> dict[str, str]:
        """Fields it adds only to the records it rejects (written to ``--dropped``)."""
        return {}

    def process(self, batch: DocumentBatch) -> DocumentBatch:
        self.ensure_setup()
        st = batch_stats(batch)
        records = records_from_frame(ensure_keep_columns(batch.to_pandas()))
        out = []
        for rec in records:
            if rec.get(KEEP, True) or self.process_rejected:
                rec = self.process_record(rec, st)
            out.append(rec)
        return DocumentBatch(dataset_name=batch.dataset_name, data=ensure_keep_columns(frame_from_records(out)),
                             _metadata=batch._metadata, _stage_perf=batch._stage_perf)


@dataclass
class ShardWriter(ProcessingStage[DocumentBatch, None]):
    """Writes kept records to ``out_dir/<shard><suffix>``, dropped ones to ``dropped_dir`` (if given), and the shard's
    stats last: the stats file marks the shard done, so a killed run redoes only unfinished shards."""

    out_dir: str = ""
    dropped_dir: str | None = None
    suffix: str = ".jsonl"
    annotate: bool = False  # keep `keep` / `drop_reasons` on output records
    language_field: str | None = "language"
    fields: dict[str, str] | None = None  # the stages' output_fields: on every record
    dropped_only_fields: dict[str, str] | None = None  # the stages' dropped_fields: on every dropped record
    name: str = "shard_writer"

    def inputs(self) -> tuple[list[str], list[str]]:
        return ["data"], []

    def outputs(self) -> tuple[list[str], list[str]]:
        return ["data"], []

    def process(self, batch: DocumentBatch) -> None:
        # Returns nothing: the records are on disk, and an executor would otherwise hold every shard's text until
        # the end of the run.
        shard = batch.dataset_name
        st = batch_stats(batch)
        records = records_from_frame(ensure_keep_columns(batch.to_pandas()))
        kept, dropped = [], []
        for rec in records:
            reasons = rec.pop(DROP_REASONS, None)
            reasons = list(reasons) if isinstance(reasons, (list, tuple)) or hasattr(reasons, "tolist") else []
            keep = bool(rec.pop(KEEP, True))
            lang = rec.get(self.language_field) if self.language_field else None
            if lang is not None:
                st.add_to("language_in", str(lang))
            if keep:
                if self.annotate:
                    rec[KEEP], rec[DROP_REASONS] = True, reasons
                kept.append(rec)
                if lang is not None:
                    st.add_to("language_out", str(lang))
            else:
                rec[KEEP], rec[DROP_REASONS] = False, reasons  # dropped records always say why
                dropped.append(rec)
                for reason in reasons:
                    st.add_to("drop_reasons", reason)
        st.add("records_out", len(kept))
        st.add("records_dropped", len(dropped))
        st.add("bytes_out", sum(len(dumps_record(r).encode()) + 1 for r in kept))
        name = f"{shard}{self.suffix}"
        outcome = {KEEP: "bool", DROP_REASONS: "list<string>"}
        write_shard(Path(self.out_dir) / name, kept, {**(self.fields or {}), **(outcome if self.annotate else {})})
        outputs = {"OUT": name}
        if self.dropped_dir:
            write_shard(Path(self.dropped_dir) / name, dropped,
                        {**(self.fields or {}), **(self.dropped_only_fields or {}), **outcome})
            outputs["--dropped"] = name
        atomic_write_json(shard_marker(self.out_dir, shard),
                          {"shard": shard, "source": batch._metadata.get("source"),
                           "input": batch._metadata.get("input_identity"), "outputs": outputs, **st.to_dict()})
        return None
