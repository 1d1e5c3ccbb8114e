"""Pass 1: one small index file per input shard, the only place the text is read for grouping.

``WORK/index/<shard>.parquet`` holds one row per record (in the order ``ShardReader`` yields them):

=============  ==========================================================================================
``row``        position in the shard; with the shard's number it makes the record's ``doc`` number
``id``         the record's ``id`` as text (null when missing)
``stars``      float, NaN when missing or unusable (see keep_rule)
``commit_time``  epoch seconds, NaN when missing or unusable
``sha256``     32-byte SHA-256 of the UTF-8 text (null when the record has no text)
``language``   the record's ``language`` as text (null when missing): the removal pass counts keep rates per
               language without parsing the records again
``shingled``   the text has at least one shingle (fuzzy runs only)
=============  ==========================================================================================

CPU fuzzy runs also write ``WORK/index/<shard>.bands.npy`` first (the LSH band keys, sorted; ``bands.py``): 8 bytes x
bands per record instead of an 8 KB signature, grouped by key range in pass 2.

The file is written atomically and is the shard's done-marker: a rerun indexes only the shards without one.
Its Parquet metadata carries the shard's counters (with ``bad_records``, the lines the reader skipped: a shard
without any has one index row per non-blank line, which lets the removal pass copy lines without parsing them).
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from nemo_curator.pipeline import Pipeline
from nemo_curator.stages.base import ProcessingStage
from nemo_curator.tasks import DocumentBatch, FileGroupTask
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from oc_common.fileio import atomic_write_bytes
from oc_common.log import console
from oc_common.stats import Stats
from oc_synth.curate.dedup.bands import band_path, write_bands
from oc_synth.curate.dedup.keep_rule import commit_epoch, id_text, stars_value
from oc_synth.curate.dedup.settings import DedupSettings
from oc_synth.minhash.lsh import group_equal
from oc_synth.minhash.shingles import has_shingles
from oc_synth.minhash.signatures import band_keys_parallel
from oc_synth.pipeline.executors import make_executor
from oc_synth.pipeline.runner import Shard
from oc_synth.pipeline.stages import LazySetup, ShardReader, batch_stats, records_from_frame

TEXT = "text"
# Fields the removal pass adds (removal.py): a shard whose records hold any is not copied line by line.
CLUSTER_FIELDS = ("dup_cluster", "dup_count", "minhash_cluster", "minhash_count", "duplicate_of")
STATS_KEY = b"oc_dedup_stats"
ROW_BITS = 32  # doc = shard_number << 32 | row: 4 billion records per shard, 2 billion shards


def index_path(index_dir: Path, shard: str) -> Path:
    return Path(index_dir) / f"{shard}.parquet"


def index_table(records: Sequence[dict[str, Any]], settings: DedupSettings, compute_bands: bool,
                pool: Executor | None = None) -> tuple[pa.Table, Stats, tuple[np.ndarray, np.ndarray] | None]:
    """The index rows of one shard's records (see the module docstring), and with ``compute_bands`` the band keys of
    the records with shingles with their rows (what ``bands.write_bands`` stores)."""
    st = Stats()
    n = len(records)
    ids, stars, times, digests, texts, has_text = [], np.full(n, np.nan), np.full(n, np.nan), [], [], np.zeros(n, bool)
    languages = [None if rec.get("language") is None else str(rec.get("language")) for rec in records]
    if holding := sum(any(name in rec for name in CLUSTER_FIELDS) for rec in records):
        st.add("records_with_cluster_fields", holding)  # the removal pass then parses this shard (removal.py)
    for i, rec in enumerate(records):
        ident = id_text(rec.get("id"))
        if ident is None:
            st.add("missing_id")
        ids.append(ident)
        stars[i] = _usable(rec.get("stars"), stars_value, "stars", st)
        times[i] = _usable(rec.get("commit_time"), commit_epoch, "commit_time", st)
        text = rec.get(TEXT)
        if isinstance(text, str):
            has_text[i] = True
            digests.append(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest())
            texts.append(text)
            st.add("chars", len(text))
        else:
            st.add("no_text")
            digests.append(None)
    st.add("records", n)
    columns: dict[str, Any] = {
        "row": pa.array(np.arange(n, dtype=np.int64)),
        "id": pa.array(ids, type=pa.string()),
        "stars": pa.array(stars),
        "commit_time": pa.array(times),
        "sha256": pa.array(digests, type=pa.binary(32)),
        "language": pa.array(languages, type=pa.string()),
    }
    bands = None
    if settings.fuzzy:
        mh = settings.minhash
        shingled = np.zeros(n, bool)
        text_rows = np.nonzero(has_text)[0]
        if compute_bands:
            keys, has = (band_keys_parallel(texts, mh, pool, settings.workers) if len(text_rows)
                         else (np.zeros((0, mh.bands), np.uint64), np.zeros(0, bool)))
            shingled[text_rows] = has
            bands = keys[has], text_rows[has]
        else:
            shingled[text_rows] = [has_shingles(t, mh) for t in texts]
        st.add("no_shingles", int(has_text.sum() - shingled.sum()))
        columns["shingled"] = pa.array(shingled)
    return pa.table(columns), st, bands


def _usable(raw: Any, parse, field_name: str, st: Stats) -> float:  # noqa: ANN001
    """The parsed value, or NaN counted as ``missing_<field>`` / ``unusable_<field>``."""
    if raw is None:
        st.add(f"missing_{field_name}")
        return np.nan
    value = parse(raw)
    if value is None:
        st.add(f"unusable_{field_name}")
        return np.nan
    return value


def write_index(path: Path, table: pa.Table, shard: str, shard_number: int, st: Stats) -> None:
    meta = {STATS_KEY: json.dumps({"shard": shard, "shard_number": shard_number, **st.to_dict()}).encode()}
    buf = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(meta), buf)
    atomic_write_bytes(path, buf.getvalue())


def read_index_stats(path: Path) -> dict[str, Any]:
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[STATS_KEY])


@dataclass
class DedupIndexStage(LazySetup, ProcessingStage[DocumentBatch, FileGroupTask]):
    """Indexes one shard (``batch.dataset_name``) and writes ``index_dir/<shard>.parquet``.

    ``compute_bands``: the CPU engine's band keys (the GPU engine computes signatures in NeMo Curator instead).
    ``settings`` is the DedupSettings as a dict (stages travel to Ray workers; plain data pickles everywhere).
    With ``workers > 1`` the band keys of a shard are computed by a process pool of that size.
    """

    index_dir: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    numbers: dict[str, int] = field(default_factory=dict)  # shard name -> shard number
    compute_bands: bool = True
    name: str = "dedup_index"

    def inputs(self) -> tuple[list[str], list[str]]:
        return ["data"], []

    def outputs(self) -> tuple[list[str], list[str]]:
        return ["data"], []

    def setup_worker(self) -> None:
        self._settings = DedupSettings.model_validate(self.settings)
        self._pool = None
        if self._settings.workers > 1 and self.compute_bands:
            # spawn: forking a process that already runs Arrow/rensa thread pools can deadlock
            self._pool = ProcessPoolExecutor(self._settings.workers, mp_context=multiprocessing.get_context("spawn"))

    def teardown(self) -> None:
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown()
            self._pool = None

    def process(self, batch: DocumentBatch) -> FileGroupTask:
        self.ensure_setup()
        table, st, bands = index_table(records_from_frame(batch.to_pandas()), self._settings, self.compute_bands,
                                       self._pool)
        if bad := batch_stats(batch).counters.get("bad_records", 0):
            st.add("bad_records", bad)
        if bands is not None:  # before the index file, which marks the shard done
            st.add("band_entries", write_bands(band_path(Path(self.index_dir), batch.dataset_name), *bands))
        path = index_path(Path(self.index_dir), batch.dataset_name)
        write_index(path, table, batch.dataset_name, self.numbers[batch.dataset_name], st)
        # a small task (the index path), so an executor that collects results never holds the text
        return FileGroupTask(dataset_name=batch.dataset_name, data=[str(path)], _metadata={})


def shard_numbers(shards: Sequence[Shard]) -> dict[str, int]:
    """Shard name -> its number (position in the sorted input listing), the high half of a record's doc number."""
    return {s.name: i for i, s in enumerate(shards)}


def shard_tasks(shards: Sequence[Shard]) -> list[FileGroupTask]:
    return [FileGroupTask(dataset_name=s.name, data=list(s.files), reader_config={"shard": s.name, **s.config})
            for s in shards]


def run_index(shards: Sequence[Shard], index_dir: Path, settings: DedupSettings, *, compute_bands: bool,
              executor: str = "local", quiet: bool = False) -> int:
    """Index every shard without an index file; returns how many records were indexed now (0 when resuming past
    this pass)."""
    pending = [s for s in shards if not index_path(index_dir, s.name).exists()]
    if not pending:
        return 0
    stage = DedupIndexStage(index_dir=str(index_dir), settings=settings.model_dump(mode="json"),
                            numbers=shard_numbers(shards), compute_bands=compute_bands)
    pipe = Pipeline(name="dedup_index", stages=[ShardReader(), stage])
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=quiet or executor != "local", transient=True) as progress:
        bar = progress.add_task("dedup: indexing shards", total=len(pending))
        pipe.run(make_executor(executor, on_task_done=lambda _t: progress.advance(bar)),
                 initial_tasks=shard_tasks(pending))
    return sum(read_index_stats(index_path(index_dir, s.name))["counters"].get("records", 0) for s in pending)



@dataclass
class IndexData:
    """What the decide pass holds for every record, concatenated in shard order (position ``i`` is one record
    everywhere): 39 bytes a record (shard number 4, SHA-256 32, has_text and shingled 1 each, ``starts`` per shard).
    The rest of the index rows stays in the index files and is read for the records that need it (``values_at``:
    cluster members and survivors)."""

    shard_names: list[str]
    shard: np.ndarray  # shard number per record (int32)
    starts: np.ndarray  # position of each shard's first record, and the total (len(shard_names) + 1)
    sha256: np.ndarray  # S32; meaningful where has_text
    has_text: np.ndarray
    shingled: np.ndarray | None  # fuzzy runs
    paths: list[Path]  # index file per shard
    sources: list[Path]  # input file per shard
    stats: Stats

    def __len__(self) -> int:
        return len(self.shard)

    def rows_at(self, positions: np.ndarray | slice) -> np.ndarray:
        """The records' rows within their shards (a record's index row is its row)."""
        if isinstance(positions, slice):
            positions = np.arange(len(self))[positions]
        positions = np.asarray(positions, np.int64)
        return positions - self.starts[self.shard[positions]]

    @property
    def docs(self) -> np.ndarray:
        return self.docs_at(slice(None))

    def docs_at(self, positions: np.ndarray | slice) -> np.ndarray:
        """``shard << 32 | row`` of the records at ``positions`` (made on demand: 8 bytes per record otherwise)."""
        return (self.shard[positions].astype(np.int64) << np.int64(ROW_BITS)) | self.rows_at(positions)

    def values_at(self, column: str, positions: np.ndarray) -> np.ndarray:
        """One index column's values for the records at ``positions``, read from the index files of the shards they
        are in: ``id`` (str or None, an object array), ``stars`` and ``commit_time`` (float, NaN when missing).
        Per-record columns stay on disk (one Python string per record would be the largest part of this pass's
        memory); only the records that need them (cluster members, survivors) read theirs."""
        positions = np.asarray(positions, np.int64)
        out = np.full(len(positions), None if column == "id" else np.nan, dtype=object if column == "id" else float)
        if not len(positions):
            return out
        order = np.argsort(positions, kind="stable")
        sorted_pos = positions[order]
        bounds = np.searchsorted(self.shard[sorted_pos], np.arange(len(self.shard_names) + 1))
        for s in np.nonzero(np.diff(bounds))[0]:
            lo, hi = bounds[s], bounds[s + 1]
            values = pq.read_table(self.paths[s], columns=[column]).column(0).take(
                pa.array(sorted_pos[lo:hi] - self.starts[s]))
            out[order[lo:hi]] = values.to_pylist() if column == "id" else values.to_numpy(zero_copy_only=False)
        return out

    def ids_at(self, positions: np.ndarray) -> np.ndarray:
        return self.values_at("id", positions)

    def exact_labels(self) -> np.ndarray:
        """Cluster label per record for identical content (SHA-256); -1 for records without text."""
        labels = np.full(len(self), -1, np.int64)
        pos = np.nonzero(self.has_text)[0]
        labels[pos] = pos[group_equal(self.sha256[pos])]
        return labels

    def shard_starts(self) -> list[int]:
        """Position of each shard's first record (what turns a band file's rows into positions)."""
        return self.starts[:-1].tolist()

    def band_files(self) -> list[Path]:
        return [band_path(p.parent, name) for p, name in zip(self.paths, self.shard_names, strict=True)]


def load_index(index_dir: Path, shards: Sequence[Shard], fuzzy: bool) -> IndexData:
    """The decide pass's per-record arrays, filled one index file at a time (peak: the arrays and one shard)."""
    paths = [index_path(index_dir, s.name) for s in shards]
    stats = Stats()
    for i, p in enumerate(paths):
        meta = read_index_stats(p)
        if meta.get("shard_number") != i or meta.get("shard") != shards[i].name:
            raise RuntimeError(f"{p}: index of shard {meta.get('shard')!r} #{meta.get('shard_number')}, expected "
                               f"{shards[i].name!r} #{i}; the input changed since indexing (rerun with --overwrite)")
        stats.merge(Stats.from_dict(meta))
    counts = [pq.read_metadata(p).num_rows for p in paths]
    starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)
    n = int(starts[-1])
    sha256, has_text = np.zeros(n, "S32"), np.zeros(n, bool)
    shingled = np.zeros(n, bool) if fuzzy else None
    for i, p in enumerate(paths):
        lo, hi = starts[i], starts[i + 1]
        t = pq.read_table(p, columns=["sha256"] + (["shingled"] if fuzzy else []))
        sha = t.column("sha256").combine_chunks()
        valid = sha.is_valid().to_numpy(zero_copy_only=False)
        has_text[lo:hi] = valid
        if valid.any():  # fixed 32-byte values; a null's slot holds arbitrary bytes, so only valid ones are copied
            values = np.frombuffer(sha.buffers()[1], dtype="S32", count=len(sha), offset=sha.offset * 32)
            sha256[lo:hi][valid] = values[valid]
        if fuzzy:
            shingled[lo:hi] = t.column("shingled").to_numpy()
    return IndexData(
        shard_names=[s.name for s in shards],
        shard=np.repeat(np.arange(len(shards), dtype=np.int32), counts),
        starts=starts,
        sha256=sha256,
        has_text=has_text,
        shingled=shingled,
        paths=paths,
        sources=[Path(s.files[0]) for s in shards],
        stats=stats,
    )
