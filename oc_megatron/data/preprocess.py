"""Text records (JSONL/Parquet files or directories) -> one Megatron indexed dataset (``PREFIX.bin`` + ``PREFIX.idx``).

Each input file becomes a part (``PREFIX.parts/NNNNN.{bin,idx}`` plus a ``.done.json`` marker written last), so a
killed run resumes at the first unfinished file. Parts are tokenized by a pool of worker processes (batches of
documents, order kept) and finally merged, in input order, into ``PREFIX.bin/.idx`` through Megatron-Core's
``IndexedDatasetBuilder``; the merged files appear atomically (temp names, then rename), followed by
``PREFIX.stats.json``. One document = one sequence; ``append_eod`` ends each with the tokenizer's EOD token, which is
how pretraining separates documents inside packed sequences.

Tokens are stored as uint16 when the vocabulary fits (< 65,500 ids, Megatron's rule), else int32.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from oc_common.fileio import atomic_write_json
from oc_common.log import get_logger
from oc_common.records import RecordError, iter_file_records, list_record_files

log = get_logger(__name__)


@dataclass
class PreprocessStats:
    files: int = 0
    files_skipped_done: int = 0
    documents: int = 0
    empty_documents: int = 0
    bad_records: int = 0
    tokens: int = 0
    seconds: float = 0.0
    tokens_per_second: float = 0.0
    errors: list[str] = field(default_factory=list)  # first few, "file:line: reason"


def token_dtype(vocab_size: int) -> type[np.number]:
    return np.uint16 if vocab_size < 65500 else np.int32


# ---- worker side ---------------------------------------------------------------------------------------------------
_TOKENIZER = None
_EOD: int | None = None


def _init_worker(tokenizer_path: str, eod_id: int | None, in_pool: bool = True) -> None:
    global _TOKENIZER, _EOD
    if in_pool:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one process per core; no nested Rust thread pools
    from oc_megatron.data.tokenizer import load_tokenizer

    _TOKENIZER = load_tokenizer(tokenizer_path)
    _EOD = eod_id


def _encode_batch(texts: list[str]) -> list[np.ndarray]:
    encoded = _TOKENIZER.encode_batch(texts, add_special_tokens=False)
    out = []
    for enc in encoded:
        ids = enc.ids
        if _EOD is not None:
            ids = ids + [_EOD]
        out.append(np.asarray(ids, dtype=np.int64))
    return out


# ---- driver --------------------------------------------------------------------------------------------------------
def _batches(path: Path, text_key: str, batch_size: int, stats: PreprocessStats) -> Iterator[list[str]]:
    batch: list[str] = []
    for line_no, rec in iter_file_records(path):
        if isinstance(rec, RecordError):
            stats.bad_records += 1
            if len(stats.errors) < 20:
                stats.errors.append(str(rec))
            continue
        text = rec.get(text_key)
        if not isinstance(text, str):
            stats.bad_records += 1
            if len(stats.errors) < 20:
                stats.errors.append(f"{path}:{line_no}: field {text_key!r} missing or not a string")
            continue
        if not text:
            stats.empty_documents += 1
            continue
        batch.append(text)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _finished_stats(out_prefix: Path, manifest: dict, files: list[Path]) -> PreprocessStats | None:
    """The stats of a completed earlier run with the same inputs and settings, else None."""
    stats_file = Path(f"{out_prefix}.stats.json")
    if not (stats_file.is_file() and Path(f"{out_prefix}.bin").is_file() and Path(f"{out_prefix}.idx").is_file()):
        return None
    prev = json.loads(stats_file.read_text())
    if prev.get("manifest") != manifest or prev.get("inputs") != [str(f) for f in files]:
        return None
    fields = {k: v for k, v in prev.items() if k in PreprocessStats.__dataclass_fields__}
    return PreprocessStats(**{**fields, "files_skipped_done": len(files), "tokens_per_second": 0.0})


def _part_prefix(parts_dir: Path, index: int) -> Path:
    return parts_dir / f"{index:05d}"


def preprocess(
    input_path: str | Path,
    out_prefix: str | Path,
    tokenizer: str | Path,
    *,
    workers: int = 1,
    append_eod: bool = False,
    text_key: str = "text",
    batch_size: int = 64,
    keep_parts: bool = False,
    progress: bool = True,
) -> PreprocessStats:
    """Tokenize every record's ``text_key`` into ``out_prefix``.bin/.idx; resumable per input file."""
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    from oc_megatron.data.tokenizer import load_tokenizer_info

    out_prefix = Path(out_prefix)
    files = list_record_files(input_path)
    info = load_tokenizer_info(tokenizer)
    dtype = token_dtype(info.vocab_size)
    eod = info.eod_id if append_eod else None
    manifest = {"tokenizer": str(tokenizer), "append_eod": append_eod, "text_key": text_key,
                "dtype": np.dtype(dtype).name}
    finished = _finished_stats(out_prefix, manifest, files)
    if finished is not None:
        log.info("%s.bin/.idx already built from these inputs; nothing to do", out_prefix)
        return finished
    parts_dir = Path(f"{out_prefix}.parts")
    parts_dir.mkdir(parents=True, exist_ok=True)
    stats = PreprocessStats(files=len(files))
    t0 = time.perf_counter()
    tokens_this_run = 0

    pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(str(tokenizer), eod)) \
        if workers > 1 else None
    if pool is None:  # in-process: the tokenizer's own Rust threads may use the cores
        _init_worker(str(tokenizer), eod, in_pool=False)
    try:
        for i, f in enumerate(files):
            part = _part_prefix(parts_dir, i)
            done = Path(f"{part}.done.json")
            if done.is_file():
                prev = json.loads(done.read_text())
                if prev.get("source") == str(f) and prev.get("manifest") == manifest:
                    stats.files_skipped_done += 1
                    for k in ("documents", "empty_documents", "bad_records", "tokens"):
                        setattr(stats, k, getattr(stats, k) + prev[k])
                    continue
            file_stats = PreprocessStats()
            builder = IndexedDatasetBuilder(f"{part}.bin.tmp", dtype=dtype)
            batches = _batches(f, text_key, batch_size, file_stats)
            results = pool.imap(_encode_batch, batches, chunksize=1) if pool else map(_encode_batch, batches)
            for docs in results:
                for ids in docs:
                    builder.add_document(ids, [len(ids)])
                    file_stats.documents += 1
                    file_stats.tokens += len(ids)
            builder.finalize(f"{part}.idx.tmp")
            os.replace(f"{part}.bin.tmp", f"{part}.bin")
            os.replace(f"{part}.idx.tmp", f"{part}.idx")
            atomic_write_json(done, {"source": str(f), "manifest": manifest, "documents": file_stats.documents,
                                     "empty_documents": file_stats.empty_documents,
                                     "bad_records": file_stats.bad_records, "tokens": file_stats.tokens})
            for k in ("documents", "empty_documents", "bad_records", "tokens"):
                setattr(stats, k, getattr(stats, k) + getattr(file_stats, k))
            stats.errors.extend(file_stats.errors[: max(0, 20 - len(stats.errors))])
            tokens_this_run += file_stats.tokens
            if progress:
                el = time.perf_counter() - t0
                log.info("[%d/%d] %s: %d docs, %d tokens (%.0f tokens/s)", i + 1, len(files), f,
                         file_stats.documents, file_stats.tokens, tokens_this_run / max(el, 1e-9))
    finally:
        if pool is not None:
            pool.close()
            pool.join()

    # Merge the parts in input order; readers see the old dataset or the complete new one.
    merged = IndexedDatasetBuilder(f"{out_prefix}.bin.tmp", dtype=dtype)
    for i in range(len(files)):
        merged.add_index(str(_part_prefix(parts_dir, i)))
    merged.finalize(f"{out_prefix}.idx.tmp")
    os.replace(f"{out_prefix}.bin.tmp", f"{out_prefix}.bin")
    os.replace(f"{out_prefix}.idx.tmp", f"{out_prefix}.idx")
    stats.seconds = time.perf_counter() - t0
    stats.tokens_per_second = tokens_this_run / max(stats.seconds, 1e-9)
    atomic_write_json(f"{out_prefix}.stats.json", {**asdict(stats), "manifest": manifest,
                                                   "inputs": [str(f) for f in files]})
    if not keep_parts:
        shutil.rmtree(parts_dir, ignore_errors=True)
    return stats
