"""A memory cgroup per worker slot: one cap on everything a slot runs.

RLIMIT_AS bounds one process; a program that forks (up to RLIMIT_NPROC) and allocates in each child is bounded only
by a cgroup. cgroup v1 (``/sys/fs/cgroup/memory``) and v2 (``/sys/fs/cgroup`` with the memory controller) are both
handled; where neither is writable the sandbox goes on without (``create_slot_cgroup`` returns None, the caller
warns). The cgroup also counts its OOM kills, so a verdict can say "killed by the memory limit".
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from oc_common.log import get_logger

log = get_logger(__name__)

V1_ROOT = Path("/sys/fs/cgroup/memory")
V2_ROOT = Path("/sys/fs/cgroup")


class SlotCgroup:
    def __init__(self, path: Path, version: int):
        self.path = path
        self.version = version

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def oom_kills(self) -> int:
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            for line in (self.path / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except OSError:
            pass
        return 0

    def remove(self) -> None:
        for _ in range(50):  # the last processes may still be exiting
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.05)
        log.warning("could not remove cgroup %s (still busy)", self.path)


def _write(path: Path, value: str, required: bool = True) -> None:
    try:
        path.write_text(value)
    except OSError:
        if required:
            raise


def _create_v1(name: str, limit_bytes: int) -> SlotCgroup:
    path = V1_ROOT / name
    path.mkdir()
    cg = SlotCgroup(path, 1)
    try:
        _write(path / "memory.limit_in_bytes", str(limit_bytes))
        _write(path / "memory.memsw.limit_in_bytes", str(limit_bytes), required=False)  # no swapping out either
    except OSError:
        cg.remove()
        raise
    return cg


def _create_v2(name: str, limit_bytes: int) -> SlotCgroup:
    if "memory" not in (V2_ROOT / "cgroup.controllers").read_text().split():
        raise OSError("the cgroup v2 memory controller is not available")
    if "memory" not in (V2_ROOT / "cgroup.subtree_control").read_text().split():
        _write(V2_ROOT / "cgroup.subtree_control", "+memory")
    path = V2_ROOT / name
    path.mkdir()
    cg = SlotCgroup(path, 2)
    try:
        _write(path / "memory.max", str(limit_bytes))
        _write(path / "memory.swap.max", "0", required=False)
    except OSError:
        cg.remove()
        raise
    return cg


def create_slot_cgroup(name: str, limit_bytes: int) -> tuple[SlotCgroup | None, str]:
    """A fresh memory cgroup called ``name`` limited to ``limit_bytes``, or (None, why not)."""
    attempts = []
    if (V1_ROOT / "memory.limit_in_bytes").exists():
        attempts.append(_create_v1)
    if (V2_ROOT / "cgroup.controllers").exists():
        attempts.append(_create_v2)
    if not attempts:
        return None, "no cgroup memory controller mounted"
    reasons = []
    for create in attempts:
        try:
            return create(name, limit_bytes), ""
        except OSError as e:
            reasons.append(f"{create.__name__[-2:]}: {e.strerror or e}")
    return None, "; ".join(reasons)


def cgroup_name(slot: int) -> str:
    return f"oc-sandbox-{os.getpid()}-{slot}"


def remove_stale_cgroups() -> int:
    """Remove the (empty) cgroups of sandbox runs whose process is gone (killed before it could clean up)."""
    removed = 0
    for root in (V1_ROOT, V2_ROOT):
        for path in root.glob("oc-sandbox-*-*") if root.is_dir() else ():
            pid = path.name.split("-")[2]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                try:
                    path.rmdir()  # fails, harmlessly, while processes remain in it
                    removed += 1
                except OSError:
                    pass
    return removed
