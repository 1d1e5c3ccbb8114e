"""Seeds: where synthesis starts. JSONL/Parquet files or directories, or Hugging Face datasets.

``--seeds`` accepts
- a JSONL/Parquet file or a directory of them (one output shard per file, names mirror the input);
- ``hf:NAME[:SPLIT]`` (``datasets.load_dataset``; offline boxes need it in the local cache) or a folder written by
  ``Dataset.save_to_disk``: one shard.

Every seed gets a stable id: its ``id`` field (recipe's ``seeds.id_field``) or, without one, a hash of its content.
Bad seeds (malformed lines, missing or blank required fields, duplicate ids, a package pydoc cannot import) are
never fatal: they come out as ``BadSeed`` with a reason, and the pipeline records them like any other drop.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import pydoc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from oc_common.errors import InputError
from oc_common.records import RecordError, iter_file_records, list_record_files, record_suffix, strip_record_suffix
from oc_synth.synth.recipes.recipe import SeedSpec


@dataclass
class Seed:
    id: str
    record: dict[str, Any]
    where: str  # file:line, for messages
    line: int = 0  # row in its shard: the input order, which dedup keeps (the first of duplicates wins)
    variables: dict[str, Any] = field(default_factory=dict)  # the recipe's variables drawn for this seed


@dataclass
class BadSeed:
    id: str
    reason: str  # stable key: seed:malformed, seed:empty, seed:duplicate_id, seed:bad_id, seed:pydoc
    detail: str
    record: dict[str, Any] | None
    where: str


@dataclass
class SeedShard:
    name: str
    source: str
    rows: Callable[[], Iterator[tuple[int, dict[str, Any] | RecordError]]]
    size_hint: int | None  # rows, when cheap to know (progress bar total)


def plan_seed_shards(spec: str | Path) -> list[SeedShard]:
    text = str(spec)
    if text.startswith("hf:"):
        return [_hf_shard(text[3:])]
    path = Path(text)
    if path.is_dir() and (path / "dataset_info.json").is_file() and not any(
            record_suffix(p) for p in path.iterdir()):
        return [_hf_shard(str(path), from_disk=True)]
    files = list_record_files(path)
    base = path if path.is_dir() else path.parent
    return [SeedShard(strip_record_suffix(str(f.relative_to(base))), str(f),
                      (lambda f=f: iter_file_records(f)), _count_rows(f)) for f in files]


def _count_rows(path: Path) -> int | None:
    suffix = record_suffix(path)
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        if suffix in (".jsonl", ".ndjson"):
            with open(path, "rb") as f:
                return sum(1 for line in f if line.strip())
    except Exception:  # noqa: BLE001 - only a progress hint; reading reports the real error
        return None
    return None


def _hf_shard(name: str, from_disk: bool = False) -> SeedShard:
    import datasets

    if from_disk:
        ds = datasets.load_from_disk(name)
        label = Path(name).name
    else:
        ref, _, split = name.partition(":")
        try:
            ds = datasets.load_dataset(ref, split=split or "train")
        except Exception as e:  # noqa: BLE001 - datasets raises many types for "not found / offline"
            raise InputError(f"hf:{name}: cannot load the dataset ({type(e).__name__}: {e}); offline machines need "
                             "it in the local Hugging Face cache or saved with save_to_disk") from None
        label = f"{ref.replace('/', '__')}-{split or 'train'}"
    if isinstance(ds, datasets.DatasetDict):
        raise InputError(f"{name}: a DatasetDict; name the split (hf:NAME:SPLIT)")

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        for i, row in enumerate(ds, 1):
            yield i, dict(row)

    return SeedShard(f"hf-{label}", f"hf:{name}", rows, len(ds))


def content_id(record: dict[str, Any]) -> str:
    return "h" + hashlib.sha1(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:16]


def prepare_seeds(shard: SeedShard, spec: SeedSpec, seen: set[str]) -> Iterator[Seed | BadSeed]:
    """Validate, identify, truncate and enrich the seeds of one shard, in input order. ``seen`` spans shards:
    the second seed with an id already seen is a ``seed:duplicate_id``."""
    for line, item in shard.rows():
        where = f"{shard.source}:{line}"
        if isinstance(item, RecordError):
            yield BadSeed(f"{shard.name}:{line}", "seed:malformed", item.reason, None, where)
            continue
        prepared = _prepare(item, spec, seen, where, f"{shard.name}:{line}")
        if isinstance(prepared, Seed):
            prepared.line = line
        yield prepared


def _prepare(record: dict[str, Any], spec: SeedSpec, seen: set[str], where: str, fallback: str) -> Seed | BadSeed:
    raw_id = record.get(spec.id_field)
    if raw_id is None or raw_id == "":
        sid = content_id(record)
    elif isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool):
        sid = str(raw_id)
    else:
        return BadSeed(f"{fallback}", "seed:bad_id", f"field {spec.id_field!r} is a {type(raw_id).__name__}, "
                                                     "expected a string or an integer", record, where)
    if sid in seen:
        return BadSeed(f"{sid}@{fallback}", "seed:duplicate_id", f"id {sid!r} already seen", record, where)
    seen.add(sid)
    blank = [f for f in spec.require if _blank(record.get(f))]
    if blank:
        return BadSeed(sid, "seed:empty", f"missing or blank field(s): {', '.join(blank)}", record, where)
    record = dict(record)
    for name, chars in spec.truncate.items():
        if isinstance(record.get(name), str) and len(record[name]) > chars:
            record[name] = record[name][:chars]
    if spec.enrich == "pydoc":
        try:
            record["api_name"], record["api_doc"] = api_doc(str(record["package"]), record.get("symbol") or None,
                                                            spec.api_doc_chars)
        except LookupError as e:
            return BadSeed(sid, "seed:pydoc", str(e), record, where)
    return Seed(sid, record, where)


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, dict, tuple)):
        return len(value) == 0
    return False


@lru_cache(maxsize=1024)
def api_doc(package: str, symbol: str | None, max_chars: int) -> tuple[str, str]:
    """(qualified name, pydoc text) of ``package[.symbol]`` from this Python installation.

    Importing a package runs its code: seeds name packages the user installed, exactly as ``pydoc NAME`` would.
    """
    try:
        obj: Any = importlib.import_module(package)
    except Exception as e:  # noqa: BLE001 - ImportError, or anything the package raises at import
        raise LookupError(f"cannot import {package!r}: {type(e).__name__}: {e}") from None
    name = package
    for part in (symbol or "").split(".") if symbol else []:
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise LookupError(f"{name} has no attribute {part!r}") from None
        name = f"{name}.{part}"
    text = pydoc.render_doc(obj, title="%s", renderer=pydoc.plaintext).strip()
    if len(text) > max_chars:
        text = text[:max_chars].rsplit("\n", 1)[0] + "\n[...]"
    return name, text
