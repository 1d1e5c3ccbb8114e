"""One tensor as ``torch.save`` stores it (a zip: the pickle, a few small members, the raw storage), parsed in place
and written around data that never passes through ``torch.save``.

torch_dist checkpoints hold one such record per saved chunk. Conversion reads and writes them itself so that tensor
data can stay where it is: parsing needs only the record's first bytes (the pickle and the small members come before
the storage; :func:`locate_tensor`) and its last ones (the zip directory; :func:`check_record`), and the data is a view
of the bytes read; writing produces the bytes before and after the data (:func:`record_frame`) and the data is copied
straight from its source. The format is PyTorch's (``torch/serialization.py``, ``caffe2/serialize/
inline_container.cc``): members ``archive/data.pkl`` (protocol 2: ``_rebuild_tensor_v2`` of a persistent storage
``("storage", <dtype>Storage, "0", "cpu", numel)``), ``archive/byteorder``, ``archive/data/0`` (64-byte aligned),
``archive/version``; stored, zip64 end records. CRC-32 fields are zero, as ``torch.save`` writes them with
``compute_crc32`` off (``torch.load`` does not check them; ``checksums.json`` guards the files). Tests load what is
written with ``torch.load`` and compare the pickle with ``torch.save``'s.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from dataclasses import dataclass
from typing import Any

import torch

from oc_common.errors import ConversionError

ARCHIVE = "archive"
ALIGNMENT = 64  # torch.save's storage alignment
VERSION = b"3\n"  # the record format version torch.save writes


# --------------------------------------------------------------------------------------------------------------------
# Reading


class _SparseFile(io.RawIOBase):
    """A read-only file of ``length`` bytes of which only the first (``head``) and last (``tail``) are at hand: enough
    for ``zipfile`` to read a record's directory without the tensor data in between (and without copying it)."""

    def __init__(self, head: memoryview, tail: memoryview, length: int) -> None:
        self._head, self._tail, self._length = head, tail, length
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, b) -> int:  # noqa: ANN001 - a writable buffer
        n = max(0, min(len(b), self._length - self._pos))
        tail_start = self._length - len(self._tail)
        if self._pos >= tail_start:
            b[:n] = self._tail[self._pos - tail_start:self._pos - tail_start + n]
        elif self._pos + n <= len(self._head):
            b[:n] = self._head[self._pos:self._pos + n]
        elif n:
            raise zipfile.BadZipFile("the zip directory points into the tensor data")
        self._pos += n
        return n


class _StorageRef:
    def __init__(self, dtype: torch.dtype, key: str, numel: int) -> None:
        self.dtype, self.key, self.numel = dtype, key, numel


@dataclass(frozen=True)
class TensorRecord:
    """Where a ``torch.save`` record of one tensor keeps its data, and how the tensor views it."""

    dtype: torch.dtype
    size: tuple[int, ...]
    stride: tuple[int, ...]
    storage_offset: int
    storage_key: str
    numel: int  # elements of the storage
    data_start: int  # byte offset of the storage's data in the record

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize

    @property
    def row_major(self) -> bool:
        """The storage is exactly the tensor, row after row (what DCP saves): it can be streamed row by row."""
        expected, step = [], 1
        for s in reversed(self.size):
            expected.append(step)
            step *= s
        return self.storage_offset == 0 and step == self.numel and all(
            st == e for st, e, s in zip(self.stride, reversed(expected), self.size, strict=True) if s > 1)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,  # noqa: ANN001
                       metadata=None) -> tuple:  # noqa: ANN001 - the pickled call's arguments
    return storage, storage_offset, tuple(size), tuple(stride)


class _StorageType:
    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


# torch's legacy storage class names, as pickles name them, and their dtypes (FloatStorage: float32, ...)
_STORAGE_TYPES: dict[torch.dtype, str] = dict(torch.storage._dtype_to_storage_type_map())
_STORAGE_DTYPES = {name: dtype for dtype, name in _STORAGE_TYPES.items()}


class _TensorUnpickler(pickle.Unpickler):
    """Admits exactly what ``torch.save`` of one plain tensor pickles; anything else is not a tensor record."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a saved tensor")

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        return _StorageRef(pid[1].dtype, str(pid[2]), int(pid[4]))


_LOCAL = struct.Struct("<4sHHHHHIIIHH")  # a zip local file header (30 bytes)


def _local_member(view: memoryview, offset: int) -> tuple[str, int]:
    """(name, data start) of the zip member whose local header is at ``offset``."""
    sig, *_, name_len, extra_len = _LOCAL.unpack_from(view, offset)
    if sig != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"no zip member at byte {offset}")
    name = bytes(view[offset + 30:offset + 30 + name_len]).decode("utf-8")
    return name, offset + 30 + name_len + extra_len


def locate_tensor(head: memoryview) -> TensorRecord:
    """From a record's first bytes (64 KiB is plenty: the pickle and the small members come before the storage):
    what the tensor is and where its data starts. :func:`check_record` confirms it against the zip directory."""
    name, start = _local_member(head, 0)
    if not name.endswith("/data.pkl"):
        raise zipfile.BadZipFile(f"first member is {name!r}, not the pickle")
    prefix = name[:-len("data.pkl")]
    stream = io.BytesIO(head[start:])  # a copy of at most the head; the pickle ends at its STOP
    storage, offset, size, stride = _TensorUnpickler(stream).load()
    if not isinstance(storage, _StorageRef):
        raise pickle.UnpicklingError("not a tensor")
    wanted = f"{prefix}data/{storage.key}"
    raw = bytes(head)
    pos = start + stream.tell()
    while (pos := raw.find(b"PK\x03\x04", pos)) >= 0:  # the members after the pickle, up to the storage's
        member, data_start = _local_member(head, pos)
        if member == wanted:
            return TensorRecord(storage.dtype, size, stride, offset, storage.key, storage.numel, data_start)
        pos += 4
    raise zipfile.BadZipFile(f"no {wanted} member near the start")


def check_record(head: memoryview, tail: memoryview, length: int, rec: TensorRecord) -> None:
    """The record's zip directory (in ``tail``, its last bytes) must agree with :func:`locate_tensor`, and the data
    must be little-endian."""
    with zipfile.ZipFile(_SparseFile(head, tail, length)) as z:
        infos = {i.filename.split("/", 1)[-1]: i for i in z.infolist()}
    data = infos[f"data/{rec.storage_key}"]
    if (data.compress_type != zipfile.ZIP_STORED or data.file_size != rec.nbytes
            or _local_member(head, data.header_offset)[1] != rec.data_start):
        raise zipfile.BadZipFile("the zip directory disagrees with the member headers")
    if "byteorder" in infos:
        info = infos["byteorder"]
        _, start = _local_member(head, info.header_offset)
        order = bytes(head[start:start + info.file_size]).decode()
        if order != "little":
            raise zipfile.BadZipFile(f"saved on a {order}-endian machine")


RECORD_ERRORS = (KeyError, ValueError, EOFError, IndexError, zipfile.BadZipFile, pickle.UnpicklingError, struct.error)


def tensor_from_record(buf: bytearray | memoryview, where: str) -> torch.Tensor:
    """The tensor a whole record holds, as a view of ``buf`` (no copy). ``where`` names it in errors."""
    view = memoryview(buf)
    try:
        rec = locate_tensor(view)
        if rec.data_start + rec.nbytes > len(view):
            raise zipfile.BadZipFile("tensor data runs past the record")
        check_record(view, view, len(view), rec)
    except RECORD_ERRORS as e:
        raise ConversionError(f"{where}: not a saved tensor ({type(e).__name__}: {e})") from None
    if rec.numel == 0:
        flat = torch.empty(0, dtype=rec.dtype)
    else:
        flat = torch.frombuffer(view, dtype=rec.dtype, count=rec.numel, offset=rec.data_start)
    try:
        return flat.as_strided(rec.size, rec.stride, rec.storage_offset)
    except RuntimeError as e:
        raise ConversionError(f"{where}: inconsistent tensor record ({e})") from None


# --------------------------------------------------------------------------------------------------------------------
# Writing

_STORAGE = object()  # the persistent storage's place in the pickle


class _Tensor:
    """Reduces to what ``torch.save`` pickles for a contiguous tensor of ``size``."""

    def __init__(self, size: tuple[int, ...]) -> None:
        self.size = tuple(size)

    def __reduce__(self) -> tuple:
        stride, step = [], 1
        for s in reversed(self.size):
            stride.append(step)
            step *= s
        return (torch._utils._rebuild_tensor_v2,
                (_STORAGE, 0, self.size, tuple(reversed(stride)), False, collections.OrderedDict()))


class _Pickler(pickle.Pickler):
    def __init__(self, f: io.BytesIO, dtype: torch.dtype, numel: int) -> None:
        super().__init__(f, protocol=2)  # torch.save's
        self._pid = ("storage", getattr(torch, _STORAGE_TYPES[dtype]), "0", "cpu", numel)

    def persistent_id(self, obj: Any) -> Any:
        if obj is _STORAGE:
            return self._pid
        return None


def tensor_pickle(dtype: torch.dtype, size: tuple[int, ...]) -> bytes:
    """The ``data.pkl`` of a contiguous tensor, as ``torch.save`` writes it."""
    numel = 1
    for s in size:
        numel *= s
    buf = io.BytesIO()
    _Pickler(buf, dtype, numel).dump(_Tensor(size))
    return buf.getvalue()


_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")  # a zip central directory header (46 bytes)
_ZIP64_END = struct.Struct("<4sQHHIIQQQQ")
_ZIP64_LOCATOR = struct.Struct("<4sIQI")
_END = struct.Struct("<4sHHHHIIH")
_MAX32 = 0xFFFFFFFF
_PAD_ID = 0x4246  # "FB": the extra field torch.save pads with to align the storage


def record_frame(dtype: torch.dtype, size: tuple[int, ...], zip64: bool = False) -> tuple[bytes, bytes]:
    """The bytes before and after the data of a record of a contiguous tensor (``zip64``: force the zip64 fields,
    which sizes or offsets past 4 GiB need; for tests)."""
    numel = 1
    for s in size:
        numel *= s
    nbytes = numel * dtype.itemsize
    members = [("data.pkl", tensor_pickle(dtype, size)), ("byteorder", b"little"), ("data/0", None),
               ("version", VERSION)]
    head, tail = bytearray(), bytearray()
    central = []
    offset = 0
    out = head  # the members before the storage's data and its header; after it, the rest
    for member, content in members:
        name = f"{ARCHIVE}/{member}".encode()
        length = nbytes if content is None else len(content)
        big = zip64 or length >= _MAX32 or offset >= _MAX32
        extra = struct.pack("<HHQQ", 1, 16, length, length) if big else b""
        if content is None:  # the storage: pad (torch's way) so that the data starts aligned
            unpadded = offset + 30 + len(name) + len(extra)
            pad = -(unpadded + 4) % ALIGNMENT
            extra += struct.pack("<HH", _PAD_ID, pad) + b"Z" * pad
        out += _LOCAL.pack(b"PK\x03\x04", 45 if big else 20, 0, 0, 0, 0, 0, _MAX32 if big else length,
                           _MAX32 if big else length, len(name), len(extra)) + name + extra
        central.append((name, length, offset))
        offset += 30 + len(name) + len(extra) + length
        if content is None:
            out = tail
        else:
            out += content
    directory = bytearray()
    for name, length, local_offset in central:
        big = zip64 or length >= _MAX32 or local_offset >= _MAX32
        extra = struct.pack("<HHQQQ", 1, 24, length, length, local_offset) if big else b""
        directory += _CENTRAL.pack(b"PK\x01\x02", 45 if big else 20, 45 if big else 20, 0, 0, 0, 0, 0,
                                   _MAX32 if big else length, _MAX32 if big else length, len(name), len(extra), 0, 0,
                                   0, 0, _MAX32 if big else local_offset) + name + extra
    cd_offset, cd_size = offset, len(directory)
    end64_offset = cd_offset + cd_size
    tail += directory
    tail += _ZIP64_END.pack(b"PK\x06\x06", 44, 45, 45, 0, 0, len(central), len(central), cd_size, cd_offset)
    tail += _ZIP64_LOCATOR.pack(b"PK\x06\x07", 0, end64_offset, 1)
    tail += _END.pack(b"PK\x05\x06", 0, 0, len(central), len(central), min(cd_size, _MAX32),
                      _MAX32 if zip64 or cd_offset >= _MAX32 else cd_offset, 0)
    return bytes(head), bytes(tail)
