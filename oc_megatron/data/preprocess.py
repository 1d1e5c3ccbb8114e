"""Records (JSONL/Parquet files or directories) -> Megatron indexed datasets (``PREFIX.bin`` + ``PREFIX.idx``).

Each input file becomes a part (``PREFIX.parts/NNNNN.{bin,idx}`` plus a ``.done.json`` marker written last, which
records the input file's identity: size, mtime, ctime, inode and content hash), so a killed run resumes at the first
unfinished file. A finished dataset records the identities of all its inputs: a rerun after an input changed (or was
added or removed) says what changed and rebuilds, reusing the parts of unchanged files when they were kept
(``keep_parts``). Parts are tokenized by a pool of worker processes (batches of
documents, order kept) and finally merged, in input order, into ``PREFIX.bin/.idx`` (Megatron-Core's indexed
dataset format, written by ``oc_megatron.data.indexed`` without importing Megatron-Core: byte-identical files); the
merged files appear atomically (temp names, then rename), followed by ``PREFIX.stats.json``. One document = one
sequence.

What a record becomes is the encoder's business: ``TextEncoder`` (``oc-megatron preprocess``) tokenizes one text
field, ``append_eod`` ending each with the tokenizer's EOD token, which is how pretraining separates documents inside
packed sequences; ``oc_megatron.data.sft.ChatEncoder`` (``oc-megatron sft-data``) renders conversations and writes a
second, aligned stream, the loss mask (``PREFIX.loss_mask.bin/.idx``). Every stream goes through the same parts,
resume and merge.

Tokens are stored as uint16 when the vocabulary fits (< 65,500 ids, Megatron's rule), else int32.

The output contract (oc_common/outputs.py, docs/outputs.md): no output path may be, contain or lie inside the input;
an existing ``PREFIX.bin`` that no run of ours wrote is refused; a failure (a full disk) removes the temp files of
the part or merge it interrupted, and a rerun removes any a SIGKILL left.
"""

from __future__ import annotations

import contextlib
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

from oc_common.errors import EnvironmentProblem, OutputExistsError
from oc_common.fileio import atomic_write_json
from oc_common.log import get_logger
from oc_common.outputs import (
    check_separate,
    check_writable,
    file_identity,
    identity_change,
    remove_stale_temps_named,
)
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
        dtype = self.streams[0][1]  # the stored dtype already: a quarter of int64's bytes to send back
        for enc in self._tok.encode_batch(items, add_special_tokens=False):
            ids = enc.ids if self.eod is None else enc.ids + [self.eod]
            out.append((np.asarray(ids, dtype=dtype),))
        return out


# ---- worker side ---------------------------------------------------------------------------------------------------
_ENCODER: Encoder | None = None


def _init_worker(encoder: Encoder, in_pool: bool = True, parent: int | None = None) -> None:
    global _ENCODER
    if in_pool:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one process per core; no nested Rust thread pools
    if parent is not None:
        _die_with(parent)
    _ENCODER = encoder


def _die_with(parent: int) -> None:
    """A worker never outlives the process that started it, however that one ends: a SIGKILL or SIGTERM skips the
    pool's shutdown, and a worker in the middle of a batch would go on tokenizing it (seconds; minutes for a batch
    of huge documents) before noticing. On Linux the kernel kills it with its parent (``PR_SET_PDEATHSIG``);
    elsewhere a thread watches the parent."""
    import signal

    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, int(signal.SIGKILL), 0, 0, 0) != 0:  # 1 = PR_SET_PDEATHSIG
            raise OSError(ctypes.get_errno(), "prctl")
    except (OSError, AttributeError):
        import threading

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)


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
    """The stats of a completed earlier run with the same settings and the very same inputs, else None (saying what
    changed)."""
    stats_file = Path(f"{out_prefix}.stats.json")
    outputs = [Path(f"{out_prefix}{suffix}{ext}") for suffix, _ in streams for ext in (".bin", ".idx")]
    if not (stats_file.is_file() and all(p.is_file() for p in outputs)):
        return None
    prev = json.loads(stats_file.read_text())
    if prev.get("manifest") != manifest:
        log.info("%s: built with other settings; rebuilding", out_prefix)
        return None
    changes = input_changes(prev.get("inputs"), files)
    if changes:
        log.warning("%s: the inputs changed since it was built (%s%s); updating it", out_prefix,
                    "; ".join(changes[:5]), f"; {len(changes) - 5} more" if len(changes) > 5 else "")
        return None
    fields = {k: v for k, v in prev.items() if k in PreprocessStats.__dataclass_fields__}
    return PreprocessStats(**{**fields, "files_skipped_done": len(files), "tokens_per_second": 0.0})


def input_changes(recorded: Any, files: list[Path]) -> list[str]:
    """What differs between the inputs a finished dataset was built from and ``files`` now, in words."""
    if not isinstance(recorded, list) or not all(isinstance(r, dict) for r in recorded):
        return ["built by an earlier version, without input identities"]
    before = {r.get("path"): r.get("identity") for r in recorded}
    now = [str(f) for f in files]
    out = [f"{p}: gone" for p in before if p not in now]
    for p in now:
        if p not in before:
            out.append(f"{p}: new")
        else:
            change = identity_change(before[p], p).change
            if change is not None:
                out.append(f"{p}: {change}")
    if not out and list(before) != now:
        out.append("input order changed")
    return out


def check_output_prefix(input_path: str | Path, out_prefix: Path, streams) -> None:
    """The output contract for a prefix: every output path separate from the input, writable, and not someone
    else's dataset."""
    outputs = [Path(f"{out_prefix}{suffix}{ext}") for suffix, _ in streams for ext in (".bin", ".idx")]
    stats_file, parts_dir = Path(f"{out_prefix}.stats.json"), Path(f"{out_prefix}.parts")
    for p in (*outputs, stats_file, parts_dir):
        check_separate({"IN": input_path}, {"OUT_PREFIX": p})
    check_writable("OUT_PREFIX", stats_file, directory=False)
    theirs = [p for p in outputs if p.exists()]
    if theirs and not stats_file.exists() and not parts_dir.exists():
        raise OutputExistsError(f"OUT_PREFIX {out_prefix}: {theirs[0]} exists and no run of ours wrote it (there is "
                                f"no {stats_file.name}); choose another OUT_PREFIX or remove it yourself")


def _remove_temps(prefix: Path, streams) -> None:
    for suffix, _ in streams:
        for ext in (".bin.tmp", ".idx.tmp"):
            Path(f"{prefix}{suffix}{ext}").unlink(missing_ok=True)


def _abandon(builders: list, prefix: Path, streams, e: BaseException, where: Path) -> None:
    """After a failure (a full disk, Ctrl-C) while writing ``prefix``: close and delete its temp files, so nothing
    half-written is left, and name the place in an operating-system error that names none."""
    for b in builders:
        with contextlib.suppress(OSError):  # flushing a full disk fails again; the file goes anyway
            b.data_file.close()
    _remove_temps(prefix, streams)
    if isinstance(e, OSError) and e.filename is None:
        e.filename = str(where)


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
    from oc_megatron.data.indexed import IndexedWriter

    out_prefix = Path(out_prefix)
    files = list_record_files(input_path)
    manifest = encoder.manifest()
    streams = encoder.streams
    check_output_prefix(input_path, out_prefix, streams)
    parts_dir = Path(f"{out_prefix}.parts")
    _remove_temps(out_prefix, streams)  # what a SIGKILL left; never trusted, never renamed
    remove_stale_temps_named(out_prefix.parent, f"{out_prefix.name}.stats.json")
    finished = _finished_stats(out_prefix, manifest, files, streams)
    if finished is not None:
        log.info("%s.bin/.idx already built from these inputs; nothing to do", out_prefix)
        return finished
    parts_dir.mkdir(parents=True, exist_ok=True)
    for tmp in parts_dir.glob("*.tmp"):
        tmp.unlink(missing_ok=True)
    stats = PreprocessStats(files=len(files))
    identities: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    tokens_this_run = 0

    try:
        pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(encoder, True, os.getpid())) \
            if workers > 1 else None
    except OSError as e:  # pipes and processes: the open-files or process limit
        raise EnvironmentProblem(f"--workers {workers}: cannot start the tokenizer processes ({e.strerror or e}); "
                                 "raise the limit (ulimit -n / ulimit -u) or use fewer --workers") from None
    if pool is None:  # in-process: the tokenizer's own Rust threads may use the cores
        _init_worker(encoder, in_pool=False)
    finished_ok = False
    try:
        for i, f in enumerate(files):
            part = _part_prefix(parts_dir, i)
            done = Path(f"{part}.done.json")
            if done.is_file():
                prev = json.loads(done.read_text())
                check = identity_change(prev.get("input"), f)
                if prev.get("source") == str(f) and prev.get("manifest") == manifest and check.change is None:
                    stats.files_skipped_done += 1
                    for k in _COUNTS:
                        setattr(stats, k, getattr(stats, k) + prev.get(k, 0))
                    identities.append({"path": str(f), "identity": check.identity or prev["input"]})
                    continue
                if prev.get("source") == str(f) and check.change is not None:
                    log.warning("%s: changed since it was tokenized (%s); tokenizing it again", f, check.change)
            identity = file_identity(f)  # stat, then hash, then read: a later change shows at the next rerun
            file_stats = PreprocessStats()
            builders: list = []
            try:
                for suffix, dtype in streams:
                    builders.append(IndexedWriter(f"{part}{suffix}.bin.tmp", dtype=dtype))
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
            except BaseException as e:
                _abandon(builders, part, streams, e, parts_dir)
                raise
            atomic_write_json(done, {"source": str(f), "manifest": manifest, "input": identity,
                                     **{k: getattr(file_stats, k) for k in _COUNTS}})
            identities.append({"path": str(f), "identity": identity})
            for k in _COUNTS:
                setattr(stats, k, getattr(stats, k) + getattr(file_stats, k))
            stats.errors.extend(file_stats.errors[: max(0, 20 - len(stats.errors))])
            tokens_this_run += file_stats.tokens
            if progress:
                el = time.perf_counter() - t0
                log.info("[%d/%d] %s: %d docs, %d tokens (%.0f tokens/s)", i + 1, len(files), f,
                         file_stats.documents, file_stats.tokens, tokens_this_run / max(el, 1e-9))
        finished_ok = True
    finally:
        if pool is not None:
            if not finished_ok:
                pool.terminate()  # no worker may go on writing after a failure
            pool.close()
            pool.join()

    # Merge the parts in input order; readers see the old dataset or the complete new one.
    for suffix, dtype in streams:
        merged = None
        try:
            merged = IndexedWriter(f"{out_prefix}{suffix}.bin.tmp", dtype=dtype)
            for i in range(len(files)):
                merged.add_index(f"{_part_prefix(parts_dir, i)}{suffix}")
            merged.finalize(f"{out_prefix}{suffix}.idx.tmp")
            os.replace(f"{out_prefix}{suffix}.bin.tmp", f"{out_prefix}{suffix}.bin")
            os.replace(f"{out_prefix}{suffix}.idx.tmp", f"{out_prefix}{suffix}.idx")
        except BaseException as e:
            _abandon([merged] if merged is not None else [], out_prefix, streams, e, Path(f"{out_prefix}.bin"))
            raise
    stats.seconds = time.perf_counter() - t0
    stats.tokens_per_second = tokens_this_run / max(stats.seconds, 1e-9)
    atomic_write_json(f"{out_prefix}.stats.json", {**asdict(stats), "manifest": manifest, "inputs": identities})
    if not keep_parts:
        shutil.rmtree(parts_dir, ignore_errors=True)
    return stats
