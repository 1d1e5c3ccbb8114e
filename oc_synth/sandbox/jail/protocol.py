"""Framing between the host and a zygote: 4-byte big-endian length, then UTF-8 JSON. Stdlib only (both sides)."""

import json
import os
import struct

MAX_FRAME = 256 * 2**20  # a program's sources or a reply; far above anything sane, far below a memory problem

# What pyexec writes on the report fd (one line each), read back by the host to classify the run.
PHASE_CODE = "code"  # the code part started
PHASE_TESTS = "tests"  # the code part finished; the tests started
PHASE_DONE = "done"  # the tests finished normally; followed by " <asserts executed>"


def write_frame(fd: int, obj) -> None:
    data = json.dumps(obj, ensure_ascii=False).encode("utf-8")
    buf = struct.pack(">I", len(data)) + data
    view = memoryview(buf)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int):
    """The next message, or None at end of stream (the other side closed or died)."""
    head = _read_exact(fd, 4)
    if head is None:
        return None
    (size,) = struct.unpack(">I", head)
    if size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes exceeds the {MAX_FRAME} byte limit")
    body = _read_exact(fd, size)
    if body is None:
        return None
    return json.loads(body.decode("utf-8"))
