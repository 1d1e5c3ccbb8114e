"""Framing between the host and a zygote: 4-byte big-endian length, then UTF-8 JSON. Stdlib only (both sides)."""

import json
import os
import struct

MAX_FRAME = 256 * 2**20  # a program's sources or a reply; far above anything sane, far below a memory problem

# What the harness of every language writes on the report fd (one line each), read back by the host to classify the
# run. The end-of-tests marker carries a nonce drawn by the host for this run and handed to the harness on stdin (or,
# for Python, in the request): a program cannot forge it by writing a fixed string to a well-known fd.
PHASE_CODE = "code"  # Python: the code part started
PHASE_TESTS = "tests"  # Python: the code part finished; the tests started
PHASE_DONE = "done"  # the tests ran to their end: "done <nonce> [<asserts executed>]"
ASSERT_FAILED = "assert_failed"  # an assertion failed (even if the tests then caught it): "assert_failed <where>"
TEST_FAILED = "test_failed"  # a test framework recorded a failure or error (unittest, a thread): "test_failed <what>"
EXIT_EARLY = "exit_early"  # Python: SystemExit(0) before the tests' end: "exit_early <file:line>"


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
