"""Checkpoint integrity: a SHA-256 per file, recorded at save time and verified before a checkpoint is used.

``CKPT/iter_N/checksums.json`` = ``{"algorithm": "sha256", "files": {name: {"size": bytes, "sha256": hex}}}``, written
into the checkpoint before it is published (``CheckpointSaver``), so a published checkpoint always carries its
checksums. Each rank hashes the shard files it wrote itself (``__<rank>_<n>.distcp``, still in its page cache), rank 0
also the shared files (``.metadata``, ``common.pt``, ``metadata.json``), and rank 0 writes the union.

``verify_checkpoint`` checks sizes first (a truncated file costs nothing to find), then hashes every listed file with
a thread pool (``hashlib`` releases the GIL, so threads scale with cores and disks); in a multi-rank job each rank
hashes a disjoint share of the files and the verdict is shared, so a checkpoint is read once by the whole job. A
mismatch raises ``CheckpointError`` naming the file. A checkpoint without ``checksums.json`` (written by another tool
or an older version) is loaded with a warning.

Why training does not hash while loading: Megatron-Core's torch_dist load reads byte ranges of the shard files (each
rank the pieces of its layout), never whole files in order, so a whole-file digest cannot ride along; the verification
pass reads each file once, sequentially, and leaves it in the page cache for the load that follows. Conversion reads
the files itself, front to back, and checks them with the helpers below as it goes
(``oc_megatron.convert.torch_dist``): no extra pass.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from oc_common.errors import CheckpointError
from oc_common.fileio import atomic_write_text
from oc_common.log import get_logger

log = get_logger(__name__)

CHECKSUMS_FILE = "checksums.json"
ALGORITHM = "sha256"
_CHUNK = 8 << 20
_RANK_FILE = re.compile(r"__(\d+)_\d+\.distcp$")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(_CHUNK)
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def _threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def hash_files(paths: Iterable[Path]) -> dict[str, dict[str, Any]]:
    """{file name: {size, sha256}} of ``paths`` (hashed in parallel threads)."""
    paths = list(paths)
    with ThreadPoolExecutor(_threads()) as pool:
        digests = list(pool.map(file_sha256, paths))
    return {p.name: {"size": p.stat().st_size, ALGORITHM: d} for p, d in zip(paths, digests, strict=True)}


def _files(ckpt: Path) -> list[Path]:
    return sorted(p for p in ckpt.iterdir() if p.is_file() and p.name != CHECKSUMS_FILE)


def owned_files(ckpt: Path, rank: int, world_size: int) -> list[Path]:
    """The files of a just-written checkpoint that ``rank`` hashes: the shards it wrote; rank 0 also the rest."""
    out = []
    for p in _files(ckpt):
        m = _RANK_FILE.search(p.name)
        owner = int(m.group(1)) if m and int(m.group(1)) < world_size else 0
        if owner == rank:
            out.append(p)
    return out


def _gather(obj: Any) -> list[Any]:
    import torch

    if not (torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1):
        return [obj]
    out: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(out, obj)
    return out


def _rank_world() -> tuple[int, int]:
    import torch

    if torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def write_checksums(ckpt: str | Path) -> None:
    """Record the checksums of a checkpoint directory whose files are all written. Collective when a process group
    exists (every rank hashes its own shards); rank 0 writes ``checksums.json``."""
    ckpt = Path(ckpt)
    rank, world = _rank_world()
    files: dict[str, dict[str, Any]] = {}
    for part in _gather(hash_files(owned_files(ckpt, rank, world))):
        files.update(part)
    if rank == 0:
        atomic_write_text(ckpt / CHECKSUMS_FILE, manifest_text(files))


def manifest_text(files: dict[str, dict[str, Any]]) -> str:
    """The text of ``checksums.json`` for ``{file name: {size, sha256}}``."""
    return json.dumps({"algorithm": ALGORITHM, "files": files}, indent=1, sort_keys=True) + "\n"


def read_recorded(ckpt: Path, what: str = "checkpoint") -> dict[str, dict[str, Any]] | None:
    """The recorded ``{file name: {size, sha256}}`` of a checkpoint; None (after a warning) when it has none."""
    manifest = ckpt / CHECKSUMS_FILE
    if not manifest.is_file():
        log.warning("%s %s has no %s (written by another tool or an older oc-megatron): loading it unverified",
                    what, ckpt, CHECKSUMS_FILE)
        return None
    try:
        return json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{manifest}: unreadable ({e}); the checkpoint cannot be verified") from None


def size_problems(ckpt: Path, names: list[str], recorded: dict[str, dict[str, Any]]) -> list[str]:
    """Missing files and files whose size differs from the recorded one, in words."""
    problems = []
    for name in names:
        path = ckpt / name
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif path.stat().st_size != recorded[name]["size"]:
            problems.append(f"{path}: {path.stat().st_size} bytes, {recorded[name]['size']} when saved")
    return problems


def mismatch(path: Path) -> str:
    return f"{path}: content changed since it was saved ({ALGORITHM} mismatch)"


def corrupt(ckpt: Path, problems: list[str], what: str = "checkpoint") -> CheckpointError:
    """The error for a checkpoint with ``problems`` (the first named, the rest counted)."""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return CheckpointError(f"{what} {ckpt} is corrupt: {problems[0]}{more}; use another checkpoint "
                           f"(e.g. an earlier iter_N) or restore this one")


def _problems(ckpt: Path, names: list[str], recorded: dict[str, dict[str, Any]]) -> list[str]:
    problems = size_problems(ckpt, names, recorded)
    to_hash = [ckpt / name for name in names
               if (ckpt / name).is_file() and (ckpt / name).stat().st_size == recorded[name]["size"]]
    for path, got in zip(to_hash, hash_files(to_hash).values(), strict=True):
        if got[ALGORITHM] != recorded[path.name][ALGORITHM]:
            problems.append(mismatch(path))
    return problems


def verify_checkpoint(ckpt: str | Path, what: str = "checkpoint") -> bool:
    """Check every file of ``ckpt`` against its ``checksums.json``; raise ``CheckpointError`` naming a corrupt,
    truncated or missing file. Returns False (after a warning) when the checkpoint records no checksums. Collective
    when a process group exists: each rank verifies a share of the files."""
    ckpt = Path(ckpt)
    recorded = read_recorded(ckpt, what)
    if recorded is None:
        return False
    rank, world = _rank_world()
    names = sorted(recorded)
    problems: list[str] = []
    for part in _gather(_problems(ckpt, names[rank::world], recorded)):
        problems.extend(part)
    if problems:
        raise corrupt(ckpt, problems, what)
    log.info("%s %s: %d files verified (%s)", what, ckpt, len(names), ALGORITHM)
    return True
