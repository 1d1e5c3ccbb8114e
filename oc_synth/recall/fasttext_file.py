"""Structural check of a fastText ``.bin``/``.ftz`` file, before fastText is allowed to load it.

fastText's loader trusts every size in the file: a truncated or corrupt model loads and predicts from
uninitialised memory, or asks for gigabytes and runs for minutes before ``bad_alloc`` (both seen with
fasttext 0.9.2/0.9.3). Walking the layout here (header, arguments, dictionary, matrices; fastText's
``FastText::saveModel``) costs one read of the dictionary and a few seeks, and turns those failures into one clear
error naming the file and what is wrong.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from oc_common.errors import InputError

MAGIC = 793712314
MAX_VERSION = 12
ARGS_FORMAT = "<12id"  # dim ws epoch minCount neg wordNgrams loss model bucket minn maxn lrUpdateRate, t
DICT_HEADER = "<3i2q"  # size nwords nlabels, ntokens pruneidx_size
PQ_KSUB = 256  # centroids per sub-quantizer (fastText's ProductQuantizer)


@dataclass(frozen=True)
class FastTextFileInfo:
    dim: int
    words: int
    labels: int
    quantized: bool


class _Reader:
    def __init__(self, f: BinaryIO, path: Path, size: int):
        self.f, self.path, self.size = f, path, size

    def fail(self, what: str) -> InputError:
        return InputError(f"{self.path}: corrupt or truncated fastText model ({what} at byte {self.f.tell():,} of "
                          f"{self.size:,})")

    def unpack(self, fmt: str, what: str) -> tuple:
        n = struct.calcsize(fmt)
        data = self.f.read(n)
        if len(data) != n:
            raise self.fail(f"file ends inside the {what}")
        return struct.unpack(fmt, data)

    def skip(self, n: int, what: str) -> None:
        if n < 0 or self.f.tell() + n > self.size:
            raise self.fail(f"the {what} needs {n:,} more bytes")
        self.f.seek(n, 1)

    def skip_words(self, count: int) -> None:
        """Skip ``count`` dictionary entries: a NUL-terminated word, an int64 count, an int8 type."""
        buf, pos = b"", 0
        for _ in range(count):
            while True:
                end = buf.find(b"\0", pos)
                if end >= 0 and len(buf) >= end + 10:
                    pos = end + 10
                    break
                chunk = self.f.read(1 << 20)
                if not chunk:
                    raise self.fail("file ends inside the dictionary")
                buf, pos = buf[pos:] + chunk, 0
        self.f.seek(pos - len(buf), 1)  # give back what was read past the last entry

    def dense_matrix(self, dim: int, what: str) -> int:
        m, n = self.unpack("<2q", what)
        if n != dim or m < 0:
            raise self.fail(f"{what} is {m:,} x {n:,}, expected {dim} columns")
        self.skip(4 * m * n, what)
        return m

    def product_quantizer(self, what: str) -> None:
        dim, _nsubq, _dsub, _lastdsub = self.unpack("<4i", what)
        self.skip(4 * dim * PQ_KSUB, what)

    def quant_matrix(self, dim: int, what: str) -> int:
        (qnorm,) = self.unpack("<?", what)
        m, n, codesize = self.unpack("<2qi", what)
        if n != dim or m < 0:
            raise self.fail(f"{what} is {m:,} x {n:,}, expected {dim} columns")
        self.skip(codesize, what)
        self.product_quantizer(what)
        if qnorm:
            self.skip(m, what)
            self.product_quantizer(what)
        return m


def check_fasttext_file(path: str | Path) -> FastTextFileInfo:
    """Walk a fastText model file; raise InputError unless every part is there and the sizes add up exactly."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: fastText model not found")
    size = path.stat().st_size
    with open(path, "rb") as f:
        r = _Reader(f, path, size)
        if size < 8:
            raise InputError(f"{path}: not a fastText model ({size} bytes)")
        magic, version = r.unpack("<2i", "header")
        if magic != MAGIC:
            raise InputError(f"{path}: not a fastText model (wrong magic number)")
        if version > MAX_VERSION:
            raise InputError(f"{path}: fastText file format {version} is newer than this loader knows ({MAX_VERSION})")
        dim = r.unpack(ARGS_FORMAT, "arguments")[0]
        if not 0 < dim <= 100_000:
            raise r.fail(f"implausible dimension {dim}")
        n_entries, nwords, nlabels, _ntokens, pruneidx = r.unpack(DICT_HEADER, "dictionary header")
        if n_entries < 0 or nwords < 0 or nlabels < 0 or nwords + nlabels != n_entries:
            raise r.fail(f"dictionary sizes do not add up ({nwords:,} words + {nlabels:,} labels != {n_entries:,})")
        if n_entries * 10 > size:  # each entry takes at least 10 bytes: do not scan garbage counts
            raise r.fail(f"dictionary claims {n_entries:,} entries")
        r.skip_words(n_entries)
        r.skip(8 * max(pruneidx, 0), "pruned-index table")
        (quant_input,) = r.unpack("<?", "input matrix flag")
        (r.quant_matrix if quant_input else r.dense_matrix)(dim, "input matrix")
        (quant_output,) = r.unpack("<?", "output matrix flag")
        (r.quant_matrix if quant_output else r.dense_matrix)(dim, "output matrix")
        if f.tell() != size:
            raise r.fail(f"{size - f.tell():,} unexpected bytes after the output matrix")
    return FastTextFileInfo(dim=dim, words=nwords, labels=nlabels, quantized=bool(quant_input))
