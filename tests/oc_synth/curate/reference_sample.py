"""Where the reference-agreement sample's files come from: sources already on the machine and pinned by what we
install (the Python standard library and our installed packages, node's bundled npm, /usr/include, the JDK's
src.zip). Nothing of them is committed: the fixture (reference_decisions.jsonl.gz) names each file by source and
path and keys it by the SHA-256 of its bytes, and the test reads the files again here and skips, with a count, any
whose bytes differ or that is missing.

Shared by tests/oc_synth/curate/test_reference_agreement.py and scripts/build_reference_fixture.py.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import sysconfig
import zipfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

JDK_SRC_ZIP_GLOB = "/usr/lib/jvm/*/lib/src.zip"  # the first that exists (a Debian JDK may link to a missing one)


@cache
def source_roots() -> dict[str, Path | None]:
    """Source id -> its folder (or zip), None where this machine lacks it."""
    paths = sysconfig.get_paths()
    npm = shutil.which("npm")
    npm_root = Path(os.path.realpath(npm)).parents[1] if npm else None  # .../node_modules/npm/bin/npm-cli.js
    zips = sorted(z for z in glob.glob(JDK_SRC_ZIP_GLOB) if os.path.isfile(z))
    roots = {
        "stdlib": Path(paths["stdlib"]),
        "purelib": Path(paths["purelib"]),
        "include": Path("/usr/include"),
        "npm": npm_root,
        "jdk": Path(zips[0]) if zips else None,
    }
    return {k: (v if v is not None and v.exists() else None) for k, v in roots.items()}


@cache
def _zip(path: Path) -> zipfile.ZipFile:
    return zipfile.ZipFile(path)


def read_source_file(source: str, path: str) -> bytes | None:
    """The bytes of ``path`` in ``source``, or None when the source or the file is missing."""
    root = source_roots().get(source)
    if root is None:
        return None
    try:
        if root.suffix == ".zip":
            return _zip(root).read(path)
        return (root / path).read_bytes()
    except (OSError, KeyError):
        return None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def list_source_files(source: str) -> Iterator[tuple[str, int]]:
    """(path, size) of every regular file of a source (the standard library without its site-packages)."""
    root = source_roots().get(source)
    if root is None:
        return
    if root.suffix == ".zip":
        for info in _zip(root).infolist():
            if not info.is_dir():
                yield info.filename, info.file_size
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not (source == "stdlib" and d == "site-packages")
                             and d != "__pycache__")
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            if os.path.isfile(full) and not os.path.islink(full):
                yield os.path.relpath(full, root), os.path.getsize(full)
