"""Records (JSONL/Parquet files or directories) -> Megatron indexed datasets (``PREFIX.bin`` + ``PREFIX.idx``).

Each input file becomes a part (``PREFIX.parts/NNNNN.{bin,idx}`` plus a ``.done.json`` marker written last), so a
killed run resumes at the first unfinished file. Parts are tokenized by a pool of worker processes (batches of
documents, order kept) and finally merged, in input order, into ``PREFIX.bin/.idx`` through Megatron-Core's
``IndexedDatasetBuilder``; the merged files appear atomically (temp names, then rename), followed by
``PREFIX.stats.json``. One document = one sequence.

What a record becomes is the encoder's business: ``TextEncoder`` (``oc-megatron preprocess``) tokenizes one text
field, ``append_eod`` ending each with the tokenizer's EOD token, which is how pretraining separates documents inside
packed sequences; ``oc_megatron.data.sft.ChatEncoder`` (``oc-megatron sft-data``) renders conversations and writes a
second, aligned stream, the loss mask (``PREFIX.loss_mask.bin/.idx``). Every stream goes through the same parts,
resume and merge.

Tokens are stored as uint16 when the vocabulary fits (< 65,500 ids, Megatron's rule), else int32.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

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
    loss_tokens: int = 0  # SFT: tokens the loss is computed on (assistant turns); 0 for plain text
    seconds: float = 0.0
    tokens_per_second: float = 0.0
    errors: list[str] = field(default_factory=list)  # first few, "file:line: reason"


_COUNTS = ("documents", "empty_documents", "bad_records", "tokens", "loss_tokens")
LOSS_MASK_SUFFIX = ".loss_mask"  # the SFT loss-mask stream: PREFIX.loss_mask.bin/.idx next to PREFIX.bin/.idx


def token_dtype(vocab_size: int) -> type[np.number]:
    return np.uint16 if vocab_size < 65500 else np.int32


class EmptyDocument(ValueError):
    """The record is fine but has nothing to tokenize (counted, not an error)."""


class Encoder(Protocol):
    """Turns records into aligned arrays, one per stream. Pickled to worker processes (keep it light)."""

    streams: tuple[tuple[str, Any], ...]  # (file suffix after PREFIX, numpy dtype); the first holds the tokens

    def manifest(self) -> dict[str, Any]:
        """Everything that changes the output: a finished part is reused only under the same manifest."""

    def extract(self, record: dict[str, Any]) -> Any:
        """The item to encode (parent process). ValueError: a bad record (the message says why); EmptyDocument."""

    def encode_batch(self, items: list[Any]) -> list[tuple[np.ndarray, ...]]:
        """One array per stream for each item (worker process)."""


class TextEncoder:
    """``record[text_key]`` -> token ids (+ EOD)."""

    def __init__(self, tokenizer: str | Path, *, text_key: str = "text", append_eod: bool = False) -> None:
        from oc_megatron.data.tokenizer import load_tokenizer_info

        info = load_tokenizer_info(tokenizer)
        self.tokenizer = str(tokenizer)
        self.text_key = text_key
        self.eod = info.eod_id if append_eod else None
        self.streams = (("", token_dtype(info.vocab_size)),)
        self._tok = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_tok": None}

    def manifest(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer, "append_eod": self.eod is not None, "text_key": self.text_key,
                "dtype": np.dtype(self.streams[0][1]).name}

    def extract(self, record: dict[str, Any]) -> str:
        text = record.get(self.text_key)
        if not isinstance(text, str):
            raise ValueError(f"field {self.text_key!r} missing or not a string")
        if not text:
            raise EmptyDocument()
        return text

    def encode_batch(self, items: list[str]) -> list[tuple[np.ndarray, ...]]:
        if self._tok is None:
            from oc_megatron.data.tokenizer import load_tokenizer

            self._tok = load_tokenizer(self.tokenizer)
        out = []
        for enc in self._tok.encode_batch(items, add_special_tokens=False):
            ids = enc.ids if self.eod is None else enc.ids + [self.eod]
            out.append((np.asarray(ids, dtype=np.int64),))
        return out


# ---- worker side ---------------------------------------------------------------------------------------------------
_ENCODER: Encoder | None = None


def _init_worker(encoder: Encoder, in_pool: bool = True) -> None:
    global _ENCODER
    if in_pool:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one process per core; no nested Rust thread pools
    _ENCODER = encoder


def _encode_batch(items: list[Any]) -> list[tuple[np.ndarray, ...]]:
    return _ENCODER.encode_batch(items)


# ---- driver --------------------------------------------------------------------------------------------------------
def _batches(path: Path, encoder: Encoder, batch_size: int, stats: PreprocessStats) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for line_no, rec in iter_file_records(path):
        if isinstance(rec, RecordError):
            stats.bad_records += 1
            if len(stats.errors) < 20:
                stats.errors.append(str(rec))
            continue
        try:
            item = encoder.extract(rec)
        except EmptyDocument:
            stats.empty_documents += 1
            continue
        except ValueError as e:
            stats.bad_records += 1
            if len(stats.errors) < 20:
                stats.errors.append(f"{path}:{line_no}: {e}")
            continue
        batch.append(item)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _finished_stats(out_prefix: Path, manifest: dict, files: list[Path], streams) -> PreprocessStats | None:
    """The stats of a completed earlier run with the same inputs and settings, else None."""
    stats_file = Path(f"{out_prefix}.stats.json")
    outputs = [Path(f"{out_prefix}{suffix}{ext}") for suffix, _ in streams for ext in (".bin", ".idx")]
    if not (stats_file.is_file() and all(p.is_file() for p in outputs)):
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
    encoder = TextEncoder(tokenizer, text_key=text_key, append_eod=append_eod)
    return build_indexed_dataset(input_path, out_prefix, encoder, workers=workers, batch_size=batch_size,
                                 keep_parts=keep_parts, progress=progress)


def build_indexed_dataset(
    input_path: str | Path,
    out_prefix: str | Path,
    encoder: Encoder,
    *,
    workers: int = 1,
    batch_size: int = 64,
    keep_parts: bool = False,
    progress: bool = True,
) -> PreprocessStats:
    """Encode every record under ``input_path`` into ``out_prefix{suffix}``.bin/.idx per stream; resumable."""
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    out_prefix = Path(out_prefix)
    files = list_record_files(input_path)
    manifest = encoder.manifest()
    streams = encoder.streams
    finished = _finished_stats(out_prefix, manifest, files, streams)
    if finished is not None:
        log.info("%s.bin/.idx already built from these inputs; nothing to do", out_prefix)
        return finished
    parts_dir = Path(f"{out_prefix}.parts")
    parts_dir.mkdir(parents=True, exist_ok=True)
    stats = PreprocessStats(files=len(files))
    t0 = time.perf_counter()
    tokens_this_run = 0

    pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(encoder,)) \
        if workers > 1 else None
    if pool is None:  # in-process: the tokenizer's own Rust threads may use the cores
        _init_worker(encoder, in_pool=False)
    try:
        for i, f in enumerate(files):
            part = _part_prefix(parts_dir, i)
            done = Path(f"{part}.done.json")
            if done.is_file():
                prev = json.loads(done.read_text())
                if prev.get("source") == str(f) and prev.get("manifest") == manifest:
                    stats.files_skipped_done += 1
                    for k in _COUNTS:
                        setattr(stats, k, getattr(stats, k) + prev.get(k, 0))
                    continue
            file_stats = PreprocessStats()
            builders = [IndexedDatasetBuilder(f"{part}{suffix}.bin.tmp", dtype=dtype) for suffix, dtype in streams]
            batches = _batches(f, encoder, batch_size, file_stats)
            results = pool.imap(_encode_batch, batches, chunksize=1) if pool else map(_encode_batch, batches)
            for docs in results:
                for arrays in docs:
                    for builder, array in zip(builders, arrays, strict=True):
                        builder.add_document(array, [len(array)])
                    file_stats.documents += 1
                    file_stats.tokens += len(arrays[0])
                    if len(arrays) > 1 and streams[1][0] == LOSS_MASK_SUFFIX:
                        file_stats.loss_tokens += int(arrays[1].sum())
            for builder, (suffix, _) in zip(builders, streams, strict=True):
                builder.finalize(f"{part}{suffix}.idx.tmp")
                os.replace(f"{part}{suffix}.bin.tmp", f"{part}{suffix}.bin")
                os.replace(f"{part}{suffix}.idx.tmp", f"{part}{suffix}.idx")
            atomic_write_json(done, {"source": str(f), "manifest": manifest,
                                     **{k: getattr(file_stats, k) for k in _COUNTS}})
            for k in _COUNTS:
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
    for suffix, dtype in streams:
        merged = IndexedDatasetBuilder(f"{out_prefix}{suffix}.bin.tmp", dtype=dtype)
        for i in range(len(files)):
            merged.add_index(f"{_part_prefix(parts_dir, i)}{suffix}")
        merged.finalize(f"{out_prefix}{suffix}.idx.tmp")
        os.replace(f"{out_prefix}{suffix}.bin.tmp", f"{out_prefix}{suffix}.bin")
        os.replace(f"{out_prefix}{suffix}.idx.tmp", f"{out_prefix}{suffix}.idx")
    stats.seconds = time.perf_counter() - t0
    stats.tokens_per_second = tokens_this_run / max(stats.seconds, 1e-9)
    atomic_write_json(f"{out_prefix}.stats.json", {**asdict(stats), "manifest": manifest,
                                                   "inputs": [str(f) for f in files]})
    if not keep_parts:
        shutil.rmtree(parts_dir, ignore_errors=True)
    return stats
