"""Pass 3: the ``run_sharded`` stages that apply one shard's decisions to its records.

Kept records come out with every field intact plus the cluster fields; removed ones are rejected with their reason
(``--dropped`` writes them with ``keep=false``, ``drop_reasons``, the cluster fields and ``duplicate_of``).
Decisions are matched by row: a shard must still have the number of records it had when indexed.

A JSONL shard whose lines all parsed when it was indexed, written as JSONL, is copied line by line without being
parsed (``DedupShardReader`` reads nothing, ``DedupShardWriter`` streams it): a kept line is its input bytes with the
cluster fields added before its closing brace (``, "dup_cluster": "...", "dup_count": 2``), so the records' fields,
values and formatting are the input's. Re-encoding every kept record was a quarter of a dedup run. Every other shard
is read and written as records, as every command does: Parquet in or out, a shard with bad lines, a shard with a
record that has a field this pass adds (``dup_cluster``, ...: the index pass counts them; the record path replaces
them), and a shard that may hold an earlier stage's ``keep`` / ``drop_reasons`` (they decide in the writer).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pandas as pd
import pyarrow.parquet as pq
from nemo_curator.stages.base import ProcessingStage
from nemo_curator.tasks import DocumentBatch, FileGroupTask

from oc_common.errors import OcError
from oc_common.fileio import atomic_open, atomic_write_json
from oc_common.outcome import DROP_REASONS, KEEP, reject
from oc_common.outputs import content_digest, shard_marker
from oc_common.records import JSONL_SUFFIXES, record_suffix
from oc_synth.curate.dedup.decisions import decision_path
from oc_synth.curate.dedup.index import index_path, read_index_stats
from oc_synth.pipeline.stages import (
    ShardReader,
    ShardWriter,
    batch_stats,
    ensure_keep_columns,
    frame_from_records,
    records_from_frame,
)

CLUSTER_FIELDS = ("dup_cluster", "dup_count", "minhash_cluster", "minhash_count")
CLUSTER_TYPES = {"dup_cluster": "string", "dup_count": "int64", "minhash_cluster": "string", "minhash_count": "int64"}


def cluster_fields(exact: bool, fuzzy: bool) -> tuple[str, ...]:
    """The cluster fields a dedup of this mode puts on every record (null where a record took no part)."""
    return tuple(f for f in CLUSTER_FIELDS if (exact and f.startswith("dup_")) or (fuzzy and f.startswith("minhash_")))
# ``keep`` / ``drop_reasons`` of an earlier stage decide in the writer (and are taken off kept records): a shard that
# may hold them (the names, quoted, anywhere in its lines) goes the record path. The reader adds these columns to
# every batch, so the index pass cannot tell.
WRITER_FIELDS = (b'"keep"', b'"drop_reasons"')
RAW = "raw_lines"  # batch metadata: this shard's lines are copied, not parsed
RAW_OUTPUT_SUFFIXES = (".jsonl", ".jsonl.gz")


def _changed(source: str | None, now: int, then: int) -> OcError:
    return OcError(f"{source}: has {now} records but had {then} when it was indexed; the input changed during the "
                   "run (rerun with --overwrite)")


@dataclass
class DedupRemovalStage(ProcessingStage[DocumentBatch, DocumentBatch]):
    """Decisions are per row of a shard, so this stage works on the whole shard rather than record by record. A shard
    to be copied line by line passes through untouched (the writer applies its decisions)."""

    decisions_dir: str = ""
    fields: tuple[str, ...] = CLUSTER_FIELDS  # this run's (cluster_fields)
    name: str = "dedup_removal"

    def inputs(self) -> tuple[list[str], list[str]]:
        return ["data"], []

    def output_fields(self) -> dict[str, str]:
        return {f: CLUSTER_TYPES[f] for f in self.fields}

    def dropped_fields(self) -> dict[str, str]:
        return {"duplicate_of": "string"}

    def outputs(self) -> tuple[list[str], list[str]]:
        return ["data"], [KEEP, DROP_REASONS]

    def process(self, batch: DocumentBatch) -> DocumentBatch:
        if batch._metadata.get(RAW):
            return batch
        path = decision_path(Path(self.decisions_dir), batch.dataset_name)
        decisions = pq.read_table(path).to_pylist()
        records = records_from_frame(ensure_keep_columns(batch.to_pandas()))
        if len(records) != len(decisions):
            raise _changed(batch._metadata.get("source"), len(records), len(decisions))
        for rec, dec in zip(records, decisions, strict=True):
            apply_decision(rec, dec)
        return DocumentBatch(dataset_name=batch.dataset_name, data=ensure_keep_columns(frame_from_records(records)),
                             _metadata=batch._metadata, _stage_perf=batch._stage_perf)


def apply_decision(rec: dict[str, Any], dec: dict[str, Any]) -> None:
    for key in CLUSTER_FIELDS:
        if key in dec:  # null too: every record carries the mode's fields (datasets reads shards as one table)
            rec[key] = dec[key]
    if dec.get("reason"):
        rec["duplicate_of"] = dec["duplicate_of"]
        reject(rec, dec["reason"])  # the writer counts drop reasons


@dataclass
class DedupShardReader(ShardReader):
    """Reads nothing of a shard that ``DedupShardWriter`` will copy line by line (JSONL in and out, no bad line when
    indexed); reads any other shard as ShardReader does."""

    index_dir: str = ""
    output_suffix: str = ".jsonl"
    name: str = "dedup_shard_reader"

    def process(self, task: FileGroupTask) -> DocumentBatch:
        (path,) = task.data
        shard = task.reader_config["shard"]
        if self.output_suffix not in RAW_OUTPUT_SUFFIXES or record_suffix(path) not in JSONL_SUFFIXES:
            return super().process(task)
        counters = read_index_stats(index_path(Path(self.index_dir), shard)).get("counters", {})
        if counters.get("bad_records", 0) or counters.get("records_with_cluster_fields", 0) or \
                mentions(path, WRITER_FIELDS):
            return super().process(task)
        identity = dict(task.reader_config.get("identity") or {})
        identity["content"] = content_digest(path)
        batch = DocumentBatch(dataset_name=shard, data=pd.DataFrame(),
                              _metadata={"source": path, "input_identity": identity, RAW: True})
        batch_stats(batch).add("bytes_in", Path(path).stat().st_size)
        return batch


@dataclass
class DedupShardWriter(ShardWriter):
    """``ShardWriter``, plus the line-by-line copy of the shards ``DedupShardReader`` did not read. ``index_dir`` and
    ``decisions_dir`` are the dedup work folders."""

    index_dir: str = ""
    decisions_dir: str = ""
    name: str = "dedup_shard_writer"

    def process(self, batch: DocumentBatch) -> None:
        if not batch._metadata.get(RAW):
            return super().process(batch)
        shard, st = batch.dataset_name, batch_stats(batch)
        decisions = pq.read_table(decision_path(Path(self.decisions_dir), shard)).to_pydict()
        languages = pq.read_table(index_path(Path(self.index_dir), shard), columns=["language"]).column(0)
        languages = languages.to_pylist()
        expected = len(languages)
        name = f"{shard}{self.suffix}"
        outputs = {"OUT": name}
        source = batch._metadata["source"]
        encoded = encoded_cluster_fields(decisions)
        with _open_output(Path(self.out_dir) / name, self.suffix) as kept, \
                _open_output(Path(self.dropped_dir) / name if self.dropped_dir else None, self.suffix) as dropped, \
                _open_input(source) as lines:
            row = 0
            for line in lines:
                if not line.strip():
                    continue
                if row >= expected:
                    raise _changed(source, row + 1, expected)
                lang = languages[row]
                if lang is not None:
                    st.add_to("language_in", lang)
                reason = decisions["reason"][row]
                if reason:
                    st.add("records_dropped")
                    st.add_to("drop_reasons", reason)
                    if dropped is not None:
                        removed = {"duplicate_of": decisions["duplicate_of"][row], KEEP: False, DROP_REASONS: [reason]}
                        dropped.write(with_encoded(line, b", ".join(filter(None, (encoded[row], _encode(removed))))))
                else:
                    out = with_encoded(line, encoded[row])
                    kept.write(out)
                    st.add("records_out")
                    st.add("bytes_out", len(out))
                    if lang is not None:
                        st.add_to("language_out", lang)
                row += 1
            if row != expected:
                raise _changed(source, row, expected)
        st.add("records_in", expected)
        if self.dropped_dir:
            outputs["--dropped"] = name
        atomic_write_json(shard_marker(self.out_dir, shard),
                          {"shard": shard, "source": source, "input": batch._metadata.get("input_identity"),
                           "outputs": outputs, **st.to_dict()})
        return None


def mentions(path: str, needles: tuple[bytes, ...], chunk: int = 1 << 22) -> bool:
    """Whether the (decompressed) file contains any of ``needles`` (read in chunks that overlap by a needle)."""
    overlap = max(map(len, needles)) - 1
    tail = b""
    with _open_input(path) as f:
        while data := f.read(chunk):
            window = tail + data
            if any(n in window for n in needles):
                return True
            tail = window[-overlap:]
    return False


def with_fields(line: bytes, fields: dict[str, Any]) -> bytes:
    """A JSON object line (as read; its record has none of these fields) with ``fields`` added at its end."""
    return with_encoded(line, _encode(fields))


def with_encoded(line: bytes, added: bytes) -> bytes:
    """``with_fields`` for fields already encoded as ``"key": value, ...`` (empty: none)."""
    body = line.strip()
    if not added:
        return body + b"\n"
    head = body[:-1].rstrip()  # the object without its closing brace
    return head + (b"" if head == b"{" else b", ") + added + b"}\n"


def _encode(fields: dict[str, Any]) -> bytes:
    return ", ".join(f"{json.dumps(k)}: {_json(v)}" for k, v in fields.items()).encode("utf-8")


def encoded_cluster_fields(decisions: dict[str, list]) -> list[bytes]:
    """Per row of a shard's decisions, its cluster fields as ``with_encoded`` takes them (null too), built a column
    at a time: the values are hex digests, counts and nulls, which need no JSON escaping (a quarter of this pass's
    time went to json.dumps of each value)."""
    columns = []
    for key in (k for k in CLUSTER_FIELDS if k in decisions):
        if key.endswith("_count"):
            columns.append([f'"{key}": {"null" if v is None else int(v)}' for v in decisions[key]])
        else:  # SHA-256 hex digests (decisions.hex_digests)
            columns.append([f'"{key}": ' + ("null" if v is None else f'"{v}"') for v in decisions[key]])
    if not columns:
        return [b""] * len(decisions["reason"])
    return [", ".join(parts).encode() for parts in zip(*columns, strict=True)]


def _json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (an id escaped in the input): written escaped, as dumps_record does
        return json.dumps(value)
    return text


class _open_output:  # noqa: N801 - a context manager used like open()
    """An atomic binary output (gzip for .jsonl.gz, mtime 0 as write_records does), or nothing for ``None``."""

    def __init__(self, path: Path | None, suffix: str):
        self.path, self.suffix = path, suffix

    def __enter__(self) -> IO[bytes] | None:
        if self.path is None:
            return None
        self._atomic = atomic_open(self.path, "wb", encoding=None)
        raw = self._atomic.__enter__()
        self._gzip = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if self.suffix == ".jsonl.gz" else None
        return self._gzip or raw

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        if self.path is None:
            return
        if self._gzip is not None:
            self._gzip.close()
        self._atomic.__exit__(*exc)


def _open_input(path: str) -> IO[bytes]:
    return gzip.open(path, "rb") if record_suffix(path) == ".jsonl.gz" else open(path, "rb")  # noqa: SIM115
