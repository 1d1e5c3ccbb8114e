"""torch_dist checkpoints read and written directly, in one process: no process group, no Megatron-Core, one pass.

Megatron-Core's ``torch_dist`` format is PyTorch's distributed-checkpoint (DCP) layout as ``FileSystemWriter`` writes
it, plus two small files of Megatron's:

* ``.metadata``: a pickled ``torch.distributed.checkpoint.metadata.Metadata``: per key, the global shape and dtype and
  the chunks (offsets, sizes) the tensor was saved in; per chunk, the file, byte offset and length of its record;
* ``__R_T.distcp``: the records back to back; a tensor chunk is a ``torch.save`` zip of that one tensor
  (``torch_record``), an object (a ``ShardedObject`` such as ``_extra_state``) the ``torch.save`` bytes of ``[data]``;
* ``common.pt`` (``torch.save`` of the non-sharded state: ``train_state``) and ``metadata.json`` (the backend names).

Conversion needs none of DCP's collective planning: it knows which chunks it wants, and every record's place is in
``.metadata``. So :class:`ChunkStream` goes through each file once, front to back, hashing every byte on the way
(``checksums.json``, see ``oc_megatron.training.checksums``: verification costs no extra pass), and hands over each
wanted chunk's rows as they go by (two files at a time: hashing is sequential within a file); :class:`CheckpointWriter`
appends records to two files, ``__0_0.distcp`` and ``__0_1.distcp`` (what a rank's two DCP writer threads write),
each written and hashed by a thread of its own, their data taken straight from source files (or memory), then writes
the metadata, the common state and ``checksums.json``. The result is an ordinary torch_dist checkpoint (tests check
its metadata against Megatron-Core's own save and load it there and with ``torch.distributed.checkpoint``).

Tensor data is never copied into Python buffers: files are memory-mapped a window at a time (:func:`mapped`), hashed
there and written from there, so the only copy is the one into the output file, as with ``cp``; the windows are
unmapped as soon as they are used, so the resident set stays at a few windows whatever the model's size.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import hashlib
import importlib
import io
import json
import mmap
import os
import pathlib
import pickle
import queue
import threading
import uuid
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from oc_common.errors import ConversionError
from oc_common.log import get_logger
from oc_megatron.convert import torch_record as tr

log = get_logger(__name__)

METADATA_FILE = ".metadata"
COMMON_FILE = "common.pt"
CONFIG_FILE = "metadata.json"
# Megatron-Core's CheckpointingConfig for this format, as its save writes it (dist_checkpointing/core.py).
BACKEND_CONFIG = {"sharded_backend": "torch_dist", "sharded_backend_version": 1, "common_backend": "torch",
                  "common_backend_version": 1}

_WINDOW = 32 << 20  # files are mapped, hashed and copied this much at a time
_IN_FLIGHT = 4  # windows mapped ahead of the consumer, per file being read
_THREADS = 2  # files read (and hashed) at the same time; from-hf writes its records into this many files
_MAX_HEAD = 64 << 10  # a record's pickle and small members, before its tensor data
_MAX_TAIL = 16 << 20  # after the data: a few small members and the zip directory


# --------------------------------------------------------------------------------------------------------------------
# Metadata


@dataclass(frozen=True)
class Chunk:
    """One saved piece of a global tensor and where its record is."""

    key: str
    offsets: tuple[int, ...]  # in the global tensor
    sizes: tuple[int, ...]
    dtype: torch.dtype
    file: str
    begin: int  # byte offset of the record in ``file``
    length: int

    @property
    def numel(self) -> int:
        n = 1
        for s in self.sizes:
            n *= s
        return n


class _Pickled:
    """A stand-in for one of DCP's metadata classes: the attributes of the pickled state, nothing else."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (instance dict, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"unexpected state for {type(self).__name__}")
        self.__dict__.update(state)


class _Metadata(_Pickled):
    planner_data = storage_data = storage_meta = version = None


class _TensorStorageMetadata(_Pickled):
    pass


class _ChunkStorageMetadata(_Pickled):
    pass


class _BytesStorageMetadata(_Pickled):
    pass


class _StorageMeta(_Pickled):
    checkpoint_id = save_id = load_id = None


class _StorageInfo(_Pickled):
    transform_descriptors = None  # left out of the pickle when unset


class _TensorProperties(_Pickled):
    def __setstate__(self, state: Any) -> None:  # DCP pickles it as a tuple
        self.dtype, self.layout, self.requires_grad, self.memory_format, self.pin_memory = state


class _MetadataIndex(_Pickled):
    """Equal and hashed on (fqn, offset), as DCP's ``MetadataIndex`` (its ``index`` is only a hint)."""

    offset = index = None  # left out of the pickle when unset

    def __init__(self, fqn: str, offset: Any = None, index: int | None = None) -> None:
        self.fqn, self.offset, self.index = fqn, offset, index

    def _key(self) -> tuple:
        return self.fqn, None if self.offset is None else tuple(self.offset)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _MetadataIndex) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


class _Inert(_Pickled):
    """Any other object of DCP's (the save plans Megatron-Core keeps in ``planner_data``, their enums): inert."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict) or (isinstance(state, tuple) and len(state) == 2
                                       and all(isinstance(x, dict | None) for x in state)):
            super().__setstate__(state)
        else:
            self.state = state


class _MemoryFormat(enum.Enum):  # DCP's _MEM_FORMAT_ENCODING
    TORCH_CONTIGUOUS_FORMAT = 0
    TORCH_CHANNELS_LAST = 1
    TORCH_PRESERVE_FORMAT = 2


_DCP_CLASSES = {
    ("torch.distributed.checkpoint.metadata", "Metadata"): _Metadata,
    ("torch.distributed.checkpoint.metadata", "TensorStorageMetadata"): _TensorStorageMetadata,
    ("torch.distributed.checkpoint.metadata", "ChunkStorageMetadata"): _ChunkStorageMetadata,
    ("torch.distributed.checkpoint.metadata", "BytesStorageMetadata"): _BytesStorageMetadata,
    ("torch.distributed.checkpoint.metadata", "TensorProperties"): _TensorProperties,
    ("torch.distributed.checkpoint.metadata", "MetadataIndex"): _MetadataIndex,
    ("torch.distributed.checkpoint.metadata", "StorageMeta"): _StorageMeta,
    ("torch.distributed.checkpoint.metadata", "_MEM_FORMAT_ENCODING"): _MemoryFormat,
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"): _StorageInfo,
}


class _MetadataUnpickler(pickle.Unpickler):
    """Reads ``.metadata`` admitting only DCP's classes (as inert stand-ins), torch's sizes, dtypes, devices and
    layouts, and paths: a checkpoint is input, and a pickle may name any callable. It also spares importing
    ``torch.distributed.checkpoint`` (a second of start-up)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _DCP_CLASSES:
            return _DCP_CLASSES[module, name]
        if module.startswith("torch.distributed.checkpoint."):
            return _Inert
        if module == "torch" and (name in ("Size", "device") or isinstance(getattr(torch, name, None), torch.dtype)):
            return getattr(torch, name)
        if (module, name) in {("torch.serialization", "_get_layout"), ("torch._utils", "_get_layout")}:
            return getattr(importlib.import_module(module), name)
        if module == "pathlib" and name in {"Path", "PosixPath", "PurePosixPath", "WindowsPath", "PureWindowsPath"}:
            return getattr(pathlib, name)
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"{module}.{name} is not part of checkpoint metadata")


def read_metadata(ckpt: Path, raw: bytes | None = None) -> Any:
    """The checkpoint's DCP metadata, as stand-ins with the same attributes (``state_dict_metadata``,
    ``storage_data``); ``raw``: the bytes of ``.metadata`` when already read."""
    path = ckpt / METADATA_FILE
    try:
        metadata = _MetadataUnpickler(io.BytesIO(raw if raw is not None else path.read_bytes())).load()
    except FileNotFoundError:
        raise ConversionError(f"{ckpt}: not a torch_dist checkpoint (no {METADATA_FILE})") from None
    except Exception as e:  # noqa: BLE001 - a damaged pickle surfaces as many kinds of error
        raise ConversionError(f"{path}: unreadable checkpoint metadata ({type(e).__name__}: {e})") from None
    if not isinstance(metadata, _Metadata) or not isinstance(metadata.storage_data, dict):
        raise ConversionError(f"{path}: not the metadata of a torch.distributed.checkpoint")
    return metadata


def is_tensor_entry(entry: Any) -> bool:
    return isinstance(entry, _TensorStorageMetadata)


def check_backend(ckpt: Path, raw: bytes) -> None:
    """``metadata.json`` must name the torch_dist backend (the older zarr format is not read here)."""
    try:
        config = json.loads(raw)
    except ValueError as e:
        raise ConversionError(f"{ckpt / CONFIG_FILE}: invalid JSON ({e})") from None
    backend = config.get("sharded_backend") if isinstance(config, dict) else None
    if backend != "torch_dist":
        raise ConversionError(f"{ckpt}: a {backend!r} checkpoint; only torch_dist checkpoints convert (re-save it "
                              "with Megatron-Core's torch_dist format)")


def global_shape(metadata: Any, key: str) -> tuple[int, ...] | None:
    """The global shape of tensor ``key`` (None if the checkpoint has no such tensor)."""
    entry = metadata.state_dict_metadata.get(key)
    return tuple(entry.size) if is_tensor_entry(entry) else None


def tensor_chunks(ckpt: Path, metadata: Any, key: str) -> list[Chunk]:
    """The saved chunks of tensor ``key``, checked to tile its global shape exactly (no gap, no overlap)."""
    entry = metadata.state_dict_metadata[key]
    shape = tuple(entry.size)
    chunks = []
    for index, c in enumerate(entry.chunks):
        info = metadata.storage_data.get(_MetadataIndex(key, c.offsets, index))
        if info is None:
            raise ConversionError(f"{ckpt / METADATA_FILE}: chunk {index} of {key} has no storage record")
        if getattr(info, "transform_descriptors", None):
            raise ConversionError(f"{ckpt}: {key} was saved with storage transforms {info.transform_descriptors} "
                                  "(e.g. compression), which conversion does not read")
        chunks.append(Chunk(key, tuple(c.offsets), tuple(c.sizes), entry.properties.dtype, info.relative_path,
                            info.offset, info.length))
    _check_tiling(ckpt, key, shape, chunks)
    return chunks


def _check_tiling(ckpt: Path, key: str, shape: tuple[int, ...], chunks: list[Chunk]) -> None:
    volume = 1
    for s in shape:
        volume *= s
    if sum(c.numel for c in chunks) != volume or any(
            len(c.offsets) != len(shape) or any(o < 0 or o + s > d for o, s, d in zip(c.offsets, c.sizes, shape,
                                                                                     strict=True))
            for c in chunks):
        raise ConversionError(f"{ckpt}: the saved chunks of {key} do not tile its global shape {list(shape)}")
    # With the volume right, an overlap is the only way to leave a gap. Pairs are compared in the order of the
    # first axis, stopping where the next chunk starts past this one's end there.
    ordered = sorted(chunks, key=lambda c: c.offsets)
    for i, a in enumerate(ordered):
        for b in ordered[i + 1:]:
            if b.offsets[0] >= a.offsets[0] + a.sizes[0]:
                break
            if all(bo < ao + asz and ao < bo + bsz
                   for ao, asz, bo, bsz in zip(a.offsets, a.sizes, b.offsets, b.sizes, strict=True)):
                raise ConversionError(f"{ckpt}: saved chunks of {key} overlap at {list(a.offsets)} and "
                                      f"{list(b.offsets)}")


# --------------------------------------------------------------------------------------------------------------------
# Checksums, computed while reading or writing


class RecordedChecksums:
    """The checkpoint's ``checksums.json`` (when absent, nothing is verified, after a warning).

    Sizes are checked when it is opened (a truncated or missing file costs nothing to find); contents as files are
    read, by :meth:`check`.
    """

    def __init__(self, ckpt: Path, what: str = "checkpoint") -> None:
        from oc_megatron.training import checksums

        self.ckpt, self.what = ckpt, what
        self.files = checksums.read_recorded(ckpt, what)
        self._checked: set[str] = set()
        if self.files is not None:
            problems = checksums.size_problems(ckpt, sorted(self.files), self.files)
            if problems:
                raise checksums.corrupt(ckpt, problems, what)

    def covers(self, name: str) -> bool:
        return self.files is not None and name in self.files

    def check(self, name: str, digest: str | None) -> None:
        from oc_megatron.training import checksums

        if not self.covers(name) or digest is None:
            return
        self._checked.add(name)
        if digest != self.files[name][checksums.ALGORITHM]:
            raise checksums.corrupt(self.ckpt, [checksums.mismatch(self.ckpt / name)], self.what)

    def unchecked(self) -> list[str]:
        return sorted(set(self.files or ()) - self._checked)

    def done(self) -> None:
        if self.files is not None:
            log.info("%s %s: %d files verified while reading (sha256)", self.what, self.ckpt, len(self._checked))


def read_small_file(ckpt: Path, name: str, recorded: RecordedChecksums) -> bytes:
    """A small file of the checkpoint, whole, verified against its checksum."""
    path = ckpt / name
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConversionError(f"{ckpt}: not a complete torch_dist checkpoint (no {name})") from None
    recorded.check(name, hashlib.sha256(raw).hexdigest())
    return raw


# --------------------------------------------------------------------------------------------------------------------
# Memory-mapped windows

_PAGE = mmap.ALLOCATIONGRANULARITY


class Window:
    """Bytes ``[offset, offset + length)`` of a file, memory-mapped read-only (pages populated at once), as
    ``view``; unmapped when the last reference to it goes."""

    def __init__(self, fd: int, offset: int, length: int) -> None:
        start = offset - offset % _PAGE
        self._map = mmap.mmap(fd, length + offset - start, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0),
                              prot=mmap.PROT_READ, offset=start) if length else None
        self.view = memoryview(self._map)[offset - start:] if self._map is not None else memoryview(b"")
        self.offset, self.length = offset, length

    def tensor(self, dtype: torch.dtype, begin: int = 0, count: int = -1) -> torch.Tensor:
        """Elements of ``dtype`` from byte ``begin`` of the window, as a tensor viewing the mapping (read-only:
        never written to)."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given buffer is not writable")
            return torch.frombuffer(self.view, dtype=dtype, count=count, offset=begin)

    def close(self) -> None:
        """Unmap now (only when no tensor made by :meth:`tensor` is alive any more)."""
        self.view.release()
        if self._map is not None:
            self._map.close()


def mapped(fd: int, offset: int, length: int, window: int = _WINDOW) -> Iterator[Window]:
    """``[offset, offset + length)`` of a file as consecutive windows of at most ``window`` bytes."""
    end = offset + length
    while offset < end:
        n = min(window, end - offset)
        yield Window(fd, offset, n)
        offset += n


# --------------------------------------------------------------------------------------------------------------------
# Reading: every file once, hashed, with the wanted chunks' rows handed over on the way


def rows_view(sizes: tuple[int, ...]) -> tuple[int, int]:
    """How a chunk is handed over: as rows of its last dimension (``(prod(sizes[:-1]), sizes[-1])``)."""
    if not sizes:
        return 1, 1
    rows = 1
    for s in sizes[:-1]:
        rows *= s
    return rows, sizes[-1]


@dataclass
class Rows:
    """Rows ``[first, first + len(tensor))`` of a chunk seen as :func:`rows_view`, and where they are: bytes
    ``[offset, offset + tensor.nbytes)`` of file descriptor ``fd`` (the tensor views them)."""

    chunk: Chunk
    first: int
    tensor: torch.Tensor
    fd: int
    offset: int


class ChunkStream:
    """Goes through the files of a checkpoint once each, front to back, in background threads (``_THREADS`` files at
    a time: SHA-256 is sequential within a file, so files are what hashing is spread over): maps them a window at a
    time, hashes every byte, and yields the wanted chunks' data as :class:`Rows` as it goes by (in file order within
    a file; files interleave).

    A ``Rows`` is valid until the next one is asked for (its window is unmapped then): use it before moving on.
    With checksums, every file ``checksums.json`` lists is gone through (files holding no wanted chunk too) and a file
    whose digest differs raises ``CheckpointError`` naming it when its end is reached; without, only the files holding
    wanted chunks are read, and only their records.
    """

    def __init__(self, ckpt: Path, chunks: list[Chunk], recorded: RecordedChecksums) -> None:
        self.ckpt = ckpt
        self.recorded = recorded
        by_file: dict[str, list[Chunk]] = {}
        for c in chunks:
            by_file.setdefault(c.file, []).append(c)
        names = set(by_file) | set(recorded.unchecked())
        self.plan = [(name, sorted(by_file.get(name, []), key=lambda c: c.begin)) for name in sorted(names)]
        for name, file_chunks in self.plan:
            if file_chunks and not (ckpt / name).is_file():
                raise ConversionError(f"{ckpt}: {name} is missing (the metadata lists records in it)")
        self._queue: queue.Queue = queue.Queue()
        self._files: queue.Queue = queue.Queue()
        for item in self.plan:
            self._files.put(item)
        self._threads = max(1, min(_THREADS, len(self.plan)))
        self._slots = threading.Semaphore(_IN_FLIGHT * self._threads)
        self._stop = threading.Event()

    # -- producer (background thread) --
    def _put_rows(self, rows: Rows, window: Window | None) -> None:
        while not self._slots.acquire(timeout=0.1):
            if self._stop.is_set():
                raise _Abandon()
        self._queue.put(("rows", rows, window))

    def _read_file(self, name: str, chunks: list[Chunk]) -> None:
        path = self.ckpt / name
        digest = hashlib.sha256() if self.recorded.covers(name) else None
        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            pos = 0

            def hashed(offset: int, length: int) -> Iterator[Window]:
                """Bytes ``[offset, offset + length)`` (which must follow what was hashed so far), hashed."""
                nonlocal pos
                if offset != pos and digest is not None:
                    raise AssertionError("hashing out of order")
                if offset + length > size:
                    raise ConversionError(f"{path}: truncated (ends at byte {size}, the metadata places records up "
                                          f"to byte {offset + length})")
                for w in mapped(fd, offset, length):
                    if self._stop.is_set():
                        raise _Abandon()
                    if digest is not None:
                        digest.update(w.view)
                    pos = w.offset + w.length
                    yield w

            def skip_to(offset: int) -> None:
                nonlocal pos
                if digest is None:
                    pos = offset
                    return
                for w in hashed(pos, offset - pos):
                    w.close()

            for c in chunks:
                if c.begin < pos:
                    raise ConversionError(f"{path}: the record of {c.key} at {list(c.offsets)} overlaps another")
                skip_to(c.begin)
                self._read_record(path, fd, c, hashed)
            skip_to(size)
        finally:
            os.close(fd)
        self._queue.put(("file", name, digest.hexdigest() if digest is not None else None))

    def _read_record(self, path: Path, fd: int, c: Chunk, hashed) -> None:  # noqa: ANN001 - the file's reader
        where = f"{path} (record of {c.key} at {list(c.offsets)})"
        head = Window(fd, c.begin, min(_MAX_HEAD, c.length))  # parsed before it is hashed (hashing follows)
        try:
            try:
                rec = tr.locate_tensor(head.view)
                data_end = rec.data_start + rec.nbytes
                if data_end > c.length or c.length - data_end > _MAX_TAIL:
                    raise zipfile.BadZipFile("the tensor data does not fit the record")
            except tr.RECORD_ERRORS as e:
                self._bad(path, f"{where}: not a saved tensor ({type(e).__name__}: {e})")
            if rec.size != c.sizes or rec.dtype != c.dtype:
                self._bad(path, f"{where}: holds {list(rec.size)} {rec.dtype}, the metadata says {list(c.sizes)} "
                                f"{c.dtype}")
            start = min(rec.data_start, len(head.view))
            for w in hashed(c.begin, start):
                w.close()
            if not rec.row_major:  # a strided view of its storage (DCP writes none): copied whole
                whole = bytearray(c.length)
                whole[:start] = head.view[:start]
                for w in hashed(c.begin + start, c.length - start):
                    whole[w.offset - c.begin:w.offset - c.begin + w.length] = w.view
                    w.close()
                try:
                    tensor = tr.tensor_from_record(whole, where).contiguous()
                except ConversionError as e:
                    self._bad(path, str(e))
                rows, cols = rows_view(c.sizes)
                self._put_rows(Rows(c, 0, tensor.reshape(rows, cols), -1, -1), None)
                return
            rows, cols = rows_view(c.sizes)
            row_bytes = max(1, cols * rec.dtype.itemsize)
            window = max(row_bytes, _WINDOW - _WINDOW % row_bytes)
            row = 0
            for w in _windows(hashed, c.begin + rec.data_start, rec.nbytes, window):
                n = w.length // row_bytes
                self._put_rows(Rows(c, row, w.tensor(rec.dtype).reshape(n, cols), fd, w.offset), w)
                row += n
            tail = b"".join(bytes(w.view) for w in hashed(c.begin + data_end, c.length - data_end))
            try:
                tr.check_record(head.view, memoryview(tail), c.length, rec)
            except tr.RECORD_ERRORS as e:
                self._bad(path, f"{where}: not a saved tensor ({type(e).__name__}: {e})")
        finally:
            head.close()

    def _bad(self, path: Path, message: str) -> None:
        self._queue.put(("bad", path.name, message))
        raise _Abandon()

    def _produce(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    name, chunks = self._files.get_nowait()
                except queue.Empty:
                    break
                self._read_file(name, chunks)
            self._queue.put(("end", None, None))
        except _Abandon:
            pass
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
            self._queue.put(("error", e, None))

    # -- consumer --
    def __iter__(self) -> Iterator[Rows]:
        threads = [threading.Thread(target=self._produce, name=f"checkpoint-reader-{k}", daemon=True)
                   for k in range(self._threads)]
        for thread in threads:
            thread.start()
        running = len(threads)
        try:
            while running:
                kind, item, window = self._queue.get()
                if kind == "end":
                    running -= 1
                elif kind == "error":
                    raise item
                elif kind == "file":
                    self.recorded.check(item, window)
                elif kind == "bad":
                    self._blame_checksum(item)
                    raise ConversionError(window)
                else:
                    try:
                        yield item
                    finally:
                        del item
                        window = None  # unmapped with its last view
                        self._slots.release()
        finally:
            self._stop.set()
            for thread in threads:
                thread.join()
        self.recorded.done()

    def _blame_checksum(self, name: str) -> None:
        """A record that does not parse: if the file's checksum says it changed, that is the error to report."""
        from oc_megatron.training.checksums import file_sha256

        if self.recorded.covers(name):
            self.recorded.check(name, file_sha256(self.ckpt / name))


def _windows(hashed, offset: int, length: int, window: int) -> Iterator[Window]:  # noqa: ANN001
    """``hashed(offset, length)`` in windows of ``window`` bytes (whole rows)."""
    end = offset + length
    while offset < end:
        n = min(window, end - offset)
        yield from hashed(offset, n)
        offset += n


class _Abandon(Exception):
    """The reading thread stops (the consumer stopped, or it reported a bad record)."""


# --------------------------------------------------------------------------------------------------------------------
# Writing


@dataclass(frozen=True)
class FileSlice:
    """Bytes ``[offset, offset + length)`` of ``path``, elements of ``dtype`` (converted when the record's differs)."""

    path: Path
    offset: int
    length: int
    dtype: torch.dtype


Source = FileSlice | torch.Tensor


class CheckpointWriter:
    """Writes a torch_dist checkpoint into an empty directory from one process, record by record.

    ``add_tensor`` queues one chunk's record: the record's frame (``torch_record``) around its data, which comes from
    :class:`FileSlice` s (mapped a window at a time and written from the mapping) or tensors, in order. Records go to
    ``_THREADS`` files (``__0_0.distcp``, ``__0_1.distcp``: what a rank's DCP writer threads write), each written and
    hashed by a thread of its own, the next record to the file with the fewest bytes so far. ``close(common)`` waits
    for them and writes ``.metadata``, ``common.pt``, ``metadata.json`` and ``checksums.json``; everything is fsynced.
    Used as a context manager, leaving with an exception stops the threads (the caller removes the directory).
    """

    def __init__(self, path: Path, files: int = _THREADS) -> None:
        self.path = path
        self._tensors: dict[str, dict[str, Any]] = {}  # key -> {"size", "dtype", "chunks": [(offsets, sizes)]}
        self._objects: list[str] = []
        self._files = [_DataFile(path / f"__0_{k}.distcp") for k in range(files)]
        self._queued = [0] * files

    def __enter__(self) -> CheckpointWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        for f in self._files:
            try:
                f.stop(wait=exc_type is None)
            except Exception:  # noqa: BLE001 - leaving with another error: that one is the report
                if exc_type is None:
                    raise

    def _queue(self, index: tuple, nbytes: int, write) -> None:  # noqa: ANN001 - a callable writing the record
        k = min(range(len(self._files)), key=self._queued.__getitem__)
        self._queued[k] += nbytes
        self._files[k].submit(index, write)

    def add_tensor(self, key: str, global_shape: tuple[int, ...], offsets: tuple[int, ...],
                   sizes: tuple[int, ...], dtype: torch.dtype, sources: list[Source]) -> None:
        """One chunk of global tensor ``key``: ``sizes`` elements of ``dtype`` at ``offsets``, their data the
        concatenation of ``sources`` (row-major)."""
        entry = self._tensors.setdefault(key, {"size": tuple(global_shape), "dtype": dtype, "chunks": []})
        if entry["size"] != tuple(global_shape) or entry["dtype"] != dtype:
            raise RuntimeError(f"{key}: chunks disagree on the global shape or dtype")
        index = len(entry["chunks"])
        entry["chunks"].append((tuple(offsets), tuple(sizes)))
        expected = dtype.itemsize
        for s in sizes:
            expected *= s
        head, tail = tr.record_frame(dtype, tuple(sizes))

        def write(f: _DataFile) -> None:
            f.write(head)
            written = sum(f.write_source(s, dtype) for s in sources)
            if written != expected:
                raise RuntimeError(f"{key} at {list(offsets)}: sources hold {written} bytes, the chunk {expected}")
            f.write(tail)

        self._queue((key, tuple(offsets), index), expected, write)

    def add_object(self, key: str, data: Any) -> None:
        """A ShardedObject's record (``key`` with its ``/shard_...`` suffix), serialised as Megatron-Core does:
        ``torch.save([data])``."""
        buf = io.BytesIO()
        torch.save([data], buf)
        raw = buf.getvalue()
        self._objects.append(key)
        self._queue((key, None, None), len(raw), lambda f: f.write(raw))

    def close(self, common: dict[str, Any]) -> None:
        """Finish the data files, then write the metadata, the common state, the backend config and the checksums."""
        from torch.distributed.checkpoint.filesystem import CURRENT_DCP_VERSION, _StorageInfo
        from torch.distributed.checkpoint.metadata import (
            BytesStorageMetadata,
            ChunkStorageMetadata,
            Metadata,
            MetadataIndex,
            StorageMeta,
            TensorProperties,
            TensorStorageMetadata,
        )

        from oc_common.fileio import atomic_write_text
        from oc_megatron.training import checksums

        places: dict[tuple, tuple[str, int, int]] = {}
        files: dict[str, tuple[str, int]] = {}
        for f in self._files:
            digest, size = f.stop(wait=True)
            files[f.path.name] = (digest, size)
            places.update({index: (f.path.name, begin, length) for index, (begin, length) in f.places.items()})
        state: dict[str, Any] = {}
        storage: dict[Any, Any] = {}
        for key, entry in self._tensors.items():
            props = TensorProperties(dtype=entry["dtype"])
            state[key] = TensorStorageMetadata(props, torch.Size(entry["size"]), [
                ChunkStorageMetadata(torch.Size(o), torch.Size(s)) for o, s in entry["chunks"]])
            for index, (offsets, _) in enumerate(entry["chunks"]):
                name, begin, length = places[(key, offsets, index)]
                storage[MetadataIndex(key, torch.Size(offsets), index)] = _StorageInfo(name, begin, length)
        for key in self._objects:
            state[key] = BytesStorageMetadata()
            name, begin, length = places[(key, None, None)]
            storage[MetadataIndex(key)] = _StorageInfo(name, begin, length)
        metadata = Metadata(state_dict_metadata=state, storage_data=storage,
                            storage_meta=StorageMeta(checkpoint_id=str(self.path), save_id=str(uuid.uuid4())),
                            version=CURRENT_DCP_VERSION)
        common_buf = io.BytesIO()
        torch.save(common, common_buf)
        for name, raw in ((METADATA_FILE, pickle.dumps(metadata)), (COMMON_FILE, common_buf.getvalue()),
                          (CONFIG_FILE, json.dumps(BACKEND_CONFIG).encode())):
            with open(self.path / name, "wb") as out:
                out.write(raw)
                out.flush()
                os.fsync(out.fileno())
            files[name] = (hashlib.sha256(raw).hexdigest(), len(raw))
        atomic_write_text(self.path / checksums.CHECKSUMS_FILE, checksums.manifest_text(
            {name: {"size": size, checksums.ALGORITHM: digest} for name, (digest, size) in files.items()}))


class _DataFile:
    """One ``.distcp`` file written by a thread of its own: records are queued as callables that write through
    :meth:`write` / :meth:`write_source` (which hash what they write); :attr:`places` says where each landed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.places: dict[tuple, tuple[int, int]] = {}
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        self._sha = hashlib.sha256()
        self._pos = 0
        self._sources: dict[Path, int] = {}
        self._tasks: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=f"checkpoint-writer-{path.name}", daemon=True)
        self._thread.start()

    def submit(self, index: tuple, write) -> None:  # noqa: ANN001 - write(self)
        if self._error is not None:
            raise self._error
        self._tasks.put((index, write))

    def _run(self) -> None:
        while (task := self._tasks.get()) is not None:
            if self._error is not None:
                continue  # drain: the first error is what is reported
            index, write = task
            try:
                begin = self._pos
                write(self)
                self.places[index] = (begin, self._pos - begin)
            except BaseException as e:  # noqa: BLE001 - raised by submit() / stop()
                self._error = e

    def write(self, data) -> None:  # noqa: ANN001 - bytes-like
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            done += os.write(self._fd, view[done:done + (1 << 30)])
        self._sha.update(view)
        self._pos += done

    def write_source(self, source: Source, dtype: torch.dtype) -> int:
        """Write one source's bytes as ``dtype``; returns how many."""
        if isinstance(source, torch.Tensor):
            data = source.detach().to(dtype).contiguous().reshape(-1)
            self.write(data.view(torch.uint8).numpy() if data.numel() else b"")
            return data.numel() * dtype.itemsize
        if source.path not in self._sources:
            self._sources[source.path] = os.open(source.path, os.O_RDONLY)
        written = 0
        step = _WINDOW - _WINDOW % max(source.dtype.itemsize, 1)
        for w in mapped(self._sources[source.path], source.offset, source.length, step):
            if source.dtype == dtype:
                self.write(w.view)
                written += w.length
            else:
                converted = w.tensor(source.dtype).to(dtype)
                self.write(converted.view(torch.uint8).numpy())
                written += converted.nbytes
                del converted
        return written

    def stop(self, wait: bool) -> tuple[str, int]:
        """Finish (``wait``: the queued records; else drop them) and close, once; returns (sha256, size), or raises
        the first error of the writing thread (every call)."""
        if not self._stopped:
            self._stopped = True
            if not wait:
                self._error = self._error or _Abandon()
            self._tasks.put(None)
            self._thread.join()
            try:
                if self._error is None:
                    os.fsync(self._fd)
            except OSError as e:
                self._error = e
            finally:
                for fd in (self._fd, *self._sources.values()):
                    with contextlib.suppress(OSError):
                        os.close(fd)
        if self._error is not None and not isinstance(self._error, _Abandon):
            raise self._error
        return self._sha.hexdigest(), self._pos
