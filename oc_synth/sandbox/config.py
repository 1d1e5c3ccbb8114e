"""Sandbox settings: one validated object, the same for the CLI, the generation pipeline and the eval harness."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, field_validator

from oc_common.config import StrictModel

# Slot uids are base + slot. The default base moves with the process id so that two verify runs on one box (CI
# jobs, several engineers) never share a uid, hence never share an RLIMIT_NPROC budget. Far above Debian's user
# ranges (and /etc/subuid's usual 100000+65536 blocks).
DEFAULT_UID_BASE = 1_500_000


def default_uid_base() -> int:
    return DEFAULT_UID_BASE + (os.getpid() % 4096) * 64


class SandboxConfig(StrictModel):
    workers: int = Field(2, ge=1, le=256, description="Worker slots (programs run in parallel); one uid each.")
    timeout_s: float = Field(10.0, gt=0, le=3600, description="Wall-clock limit of a program's run step.")
    build_timeout_s: float = Field(60.0, gt=0, le=3600,
                                   description="Wall-clock limit of a compile step (C, C++, Java, Rust).")
    memory_mb: int = Field(1024, ge=64, description="Address-space limit (RLIMIT_AS) of every program process "
                                                    "(raised to a runtime's floor: JavaScript and Java reserve "
                                                    "~1 GB of address space up front).")
    build_memory_mb: int = Field(2048, ge=64, description="Address-space limit of compiler processes.")
    slot_memory_mb: int = Field(3072, ge=128,
                                description="Memory cgroup limit of a whole worker slot (all its processes and its "
                                            "tmpfs), where cgroups are writable. Bounds fork + allocate bombs.")
    processes: int = Field(64, ge=1, description="RLIMIT_NPROC of the slot uid (processes and threads).")
    file_size_mb: int = Field(64, ge=1, description="RLIMIT_FSIZE: the largest file (and stdout/stderr) a "
                                                    "program may write.")
    tmpfs_mb: int = Field(256, ge=8, description="Size of a slot's /tmp (the work dir, a tmpfs).")
    tmpfs_inodes: int = Field(16384, ge=64, description="Files a program may create in /tmp.")
    open_files: int = Field(1024, ge=16, description="RLIMIT_NOFILE.")
    stderr_tail_chars: int = Field(2000, ge=0, description="How much of the end of stderr a result keeps.")
    isolation: Literal["auto", "namespaces", "rlimits"] = Field(
        "auto", description="namespaces: the full sandbox (needs root). rlimits: limits, a timeout and a temp dir "
                            "only, for machines where the process is not root (logged as a warning). auto: "
                            "namespaces when root, else rlimits.")
    strictness: Literal["basic", "standard", "strict"] = Field(
        "standard", description="What `passed` demands (docs/sandbox.md has the table per language). basic: the "
                                "tests ran for real, to their end, and nothing in them failed, caught or not. "
                                "standard: also no static sign of checks that cannot fail, and one sanity mutant "
                                "(every function of the code broken) must fail the tests. strict: also one mutant "
                                "per top-level definition of the code (each must be needed by the tests).")
    strict_max_mutants: int = Field(8, ge=1, le=64, description="strictness=strict: at most this many "
                                                               "per-definition mutants per sample.")
    seccomp: Literal["auto", "required", "off"] = Field(
        "auto", description="The system-call filter of every program (needs libseccomp's Python binding for "
                            "`python`: Debian's python3-seccomp). auto: used where available, a loud warning and "
                            "isolation reported as degraded where not. required: refuse to run without it.")
    python: str = Field("/usr/bin/python3", description="Interpreter that runs the zygotes and Python programs: a "
                                                       "system one, readable by the sandbox uid.")
    uid_base: int | None = Field(None, ge=1000, description="First slot uid (default: derived from the pid).")
    extra_ro_paths: list[str] = Field(default_factory=list,
                                      description="More host paths made visible read-only (e.g. a site-packages "
                                                  "directory with numpy). Not under /tmp.")
    preload: list[str] = Field(
        default_factory=lambda: ["typing", "collections", "math", "re", "itertools", "functools", "heapq",
                                 "bisect", "string", "dataclasses", "json", "random", "copy", "operator"],
        description="Python modules imported once by each Python zygote, free for every program afterwards.")

    @field_validator("extra_ro_paths")
    @classmethod
    def _not_under_tmp(cls, v: list[str]) -> list[str]:
        for p in v:
            if not os.path.isabs(p):
                raise ValueError(f"{p}: must be an absolute path")
            if p == "/tmp" or p.startswith("/tmp/"):
                raise ValueError(f"{p}: paths under /tmp are hidden by the sandbox's own /tmp")
        return v

    def slot_uid(self, slot: int) -> int:
        return (self.uid_base if self.uid_base is not None else default_uid_base()) + slot
