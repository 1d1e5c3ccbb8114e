"""Record files: JSONL (optionally gzipped) and Parquet, read with errors that name the file and line.

Every stage of the project reads and writes directories of such shards. Reading never raises on a bad record:
it yields a ``RecordError`` (file, line, reason) that the caller counts and reports, so one malformed line never
costs the rest of a shard.
"""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oc_common.errors import InputError
from oc_common.log import get_logger

# A plain ``.json`` file is one JSON document (stats, configs), not records: it is not read as JSONL.
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)
RECORD_SUFFIXES = JSONL_SUFFIXES + PARQUET_SUFFIXES
log = get_logger(__name__)


@dataclass(frozen=True)
class RecordError:
    file: str
    line: int  # 1-based line (JSONL) or row (Parquet)
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


def record_suffix(path: str | Path) -> str | None:
    name = str(path).lower()
    for s in RECORD_SUFFIXES:
        if name.endswith(s):
            return s
    return None


def strip_record_suffix(name: str) -> str:
    s = record_suffix(name)
    return name[: -len(s)] if s else name


def list_record_files(path: str | Path) -> list[Path]:
    """The record files under ``path`` (a file or a directory, searched recursively), sorted for determinism.

    Only regular files are listed (a FIFO or a device named ``x.jsonl`` would hang or flood a reader). Hidden files
    and folders (``.name``, ``_name``: our run metadata in ``.oc/``, temp files) are skipped, and so is a folder that
    is an output of ours made from ``path`` (docs/outputs.md): reading it would read our own output back as input.
    """
    from oc_common.outputs import derived_from

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: not readable (permission denied)")
    if not path.is_dir():
        if not path.is_file():
            raise InputError(f"{path}: not a regular file or directory")
        if record_suffix(path) is None:
            raise InputError(f"{path}: not a record file (expected one of {', '.join(RECORD_SUFFIXES)})")
        return [path]
    files = []

    def unlistable(e: OSError) -> None:
        if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOMEM):
            raise e  # the machine, not the input: never mistake it for an empty folder
        log.warning("%s: skipped, cannot be listed (%s)", e.filename, e.strerror)

    for root, dirs, names in os.walk(path, onerror=unlistable):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        for d in list(dirs):
            if derived_from(Path(root) / d, path):
                log.warning("%s: skipped, an output of ours made from %s (pass it as its own input to read it)",
                            Path(root) / d, path)
                dirs.remove(d)
        for n in sorted(names):
            if not n.startswith((".", "_")) and record_suffix(n) is not None and os.path.isfile(os.path.join(root, n)):
                files.append(Path(root) / n)
    if not files:
        raise InputError(f"{path}: no record files ({', '.join(RECORD_SUFFIXES)}) found")
    return files


def iter_file_records(path: str | Path) -> Iterator[tuple[int, dict[str, Any] | RecordError]]:
    """Yield ``(line_no, record_or_error)`` for one file. Empty lines are skipped silently."""
    path = Path(path)
    suffix = record_suffix(path)
    if suffix in PARQUET_SUFFIXES:
        yield from _iter_parquet(path)
        return
    opener = gzip.open if suffix == ".jsonl.gz" else open
    try:
        f = opener(path, "rb")
    except OSError as e:
        yield 0, RecordError(str(path), 0, f"cannot open: {e.strerror or e}")
        return
    with f:
        line_no = 0
        try:
            for raw in f:
                line_no += 1
                if not raw.strip():
                    continue
                yield line_no, _parse_json_line(raw, str(path), line_no)
        except (OSError, EOFError) as e:  # truncated gzip, I/O error mid-file
            yield line_no + 1, RecordError(str(path), line_no + 1, f"read error: {e}")


def _parse_json_line(raw: bytes, file: str, line_no: int) -> dict[str, Any] | RecordError:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return RecordError(file, line_no, f"not UTF-8 ({e.reason} at byte {e.start})")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        return RecordError(file, line_no, f"malformed JSON: {e.msg} at column {e.colno}")
    if not isinstance(obj, dict):
        return RecordError(file, line_no, f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _iter_parquet(path: Path) -> Iterator[tuple[int, dict[str, Any] | RecordError]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for corrupt files
        yield 0, RecordError(str(path), 0, f"not a readable Parquet file: {e}")
        return
    row = 0
    try:
        for batch in pf.iter_batches(batch_size=4096):
            for rec in batch.to_pylist():
                row += 1
                yield row, rec
    except Exception as e:  # noqa: BLE001
        yield row + 1, RecordError(str(path), row + 1, f"Parquet read error: {e}")


def read_file_records(path: str | Path) -> tuple[list[dict[str, Any]], list[RecordError]]:
    records, errors = [], []
    for _, item in iter_file_records(path):
        (errors if isinstance(item, RecordError) else records).append(item)
    return records, errors


def iter_records(path: str | Path, errors: list[RecordError] | None = None) -> Iterator[dict[str, Any]]:
    """Stream the records of every file under ``path``; bad lines go to ``errors`` (if given)."""
    for f in list_record_files(path):
        for _, item in iter_file_records(f):
            if isinstance(item, RecordError):
                if errors is not None:
                    errors.append(item)
            else:
                yield item


def check_fields(record: dict[str, Any], types: dict[str, type | tuple[type, ...]],
                 required: Iterable[str] = ()) -> str | None:
    """Return a reason string if a required field is missing or a present field has the wrong type."""
    for name in required:
        if record.get(name) is None:
            return f"missing field '{name}'"
    for name, t in types.items():
        v = record.get(name)
        if v is not None and not isinstance(v, t):
            want = t.__name__ if isinstance(t, type) else "|".join(x.__name__ for x in t)
            return f"field '{name}': expected {want}, got {type(v).__name__}"
    return None


def _json_default(o: Any):
    # numpy / pandas scalars and arrays coming out of DataFrames
    if hasattr(o, "item") and callable(o.item):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "isoformat"):
        return o.isoformat()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def dumps_record(record: dict[str, Any]) -> str:
    """One JSON line. A string holding a lone surrogate (from an escaped ``"\\udce9"`` in the input, or a file name
    that is not UTF-8) cannot be written as UTF-8: such a record is written with ASCII escapes, which reads back to
    the very same strings."""
    text = json.dumps(record, ensure_ascii=False, default=_json_default)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(record, ensure_ascii=True, default=_json_default)
    return text


# Arrow types a command may declare for the fields its stages add (``write_shard``'s ``fields``).
FIELD_TYPES = ("string", "int64", "float64", "bool", "list<string>")


def _arrow_type(name: str):  # noqa: ANN202 - a pyarrow DataType
    import pyarrow as pa

    types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_(),
             "list<string>": pa.list_(pa.string())}
    if name not in types:
        raise ValueError(f"unknown field type {name!r}; one of {', '.join(FIELD_TYPES)}")
    return types[name]


def write_shard(path: str | Path, records: Iterable[dict[str, Any]], fields: Mapping[str, str] | None = None) -> int:
    """One output shard of a data directory, written so that ``datasets.load_dataset(DIR)`` reads the directory as
    one table. ``datasets`` takes the columns and types of the first shard (in name order) and casts every other
    shard to them, so a shard may not have a column the first one lacks:

    - every record carries every field of ``fields`` (name -> type, one of ``FIELD_TYPES``: the fields the command's
      stages may add), null where a stage set none, so the shards of one command have the same columns;
    - Parquet stores those fields with their declared types, so a field that is null throughout a shard keeps its
      type (JSON has no types for nulls: datasets' JSON reader cannot type a field that is null in every record of
      the first file);
    - a Parquet shard without records is not written, and an earlier one at ``path`` is removed: datasets' Parquet
      reader fails on a file without rows, and a file that holds no rows cannot say what types the columns have.
      (An empty JSONL shard is written: the JSON reader skips it.)

    Returns the count."""
    path = Path(path)
    if fields:
        records = ({**rec, **{k: None for k in fields if k not in rec}} for rec in records)
    if record_suffix(path) not in PARQUET_SUFFIXES:
        return write_records(path, records)
    rows = list(records)
    if not rows:
        path.unlink(missing_ok=True)
        return 0
    return write_records(path, rows, fields)


def write_records(path: str | Path, records: Iterable[dict[str, Any]], fields: Mapping[str, str] | None = None) -> int:
    """Atomically write records to ``path`` (JSONL, JSONL.gz or Parquet by suffix). Returns the count. Parquet
    columns take the types of ``fields`` (name -> one of ``FIELD_TYPES``) where given, else what the values say."""
    from oc_common.fileio import atomic_open

    path = Path(path)
    suffix = record_suffix(path)
    if suffix in PARQUET_SUFFIXES:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = list(records)
        # union of all records' fields, in first-seen order (from_pylist would take the first record's keys only)
        columns = list(dict.fromkeys(k for r in rows for k in r))
        types = {k: _arrow_type(t) for k, t in (fields or {}).items()}
        table = pa.table({k: pa.array([r.get(k) for r in rows], type=types.get(k)) for k in columns}) \
            if rows else pa.table({})
        buf = io.BytesIO()
        pq.write_table(table, buf)
        with atomic_open(path, "wb", encoding=None) as f:
            f.write(buf.getvalue())
        return len(rows)
    n = 0
    if suffix == ".jsonl.gz":
        with atomic_open(path, "wb", encoding=None) as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
            for rec in records:
                f.write((dumps_record(rec) + "\n").encode("utf-8"))
                n += 1
        return n
    with atomic_open(path, "w") as f:
        for rec in records:
            f.write(dumps_record(rec))
            f.write("\n")
            n += 1
    return n
