"""Real files of this machine as code-file records, for the benchmarks that compare us with other tools.

Sources (whichever exist here): the Python standard library and site-packages, ``/usr/include``, node's bundled npm,
and the JDK's ``src.zip``. Each file is classified as ``curate ingest`` does (OpenCoder's language table: language,
doc type, excluded types, binary and non-UTF-8 files dropped), so the records are what the filter sees in a real run:
``id``, ``text``, ``path``, ``language``, ``doc_type``, ``ext``, ``size_bytes``.

The sample is deterministic for a seed: files are visited in the order of a seeded hash of their path, and each
language gets at most its share of the sample (``LANGUAGE_SHARES``; languages not listed share ``other``), so one
large source (site-packages' Python) does not crowd out the rest.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import sysconfig
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from oc_synth.curate.ingest import classify_file
from oc_synth.curate.languages import language_table

# Shares of the sample per language (ours, roughly the mix of a code corpus; the rest goes to every other language).
LANGUAGE_SHARES = {"Python": 0.28, "C": 0.12, "C++": 0.08, "Java": 0.14, "JavaScript": 0.12, "HTML": 0.03,
                   "Markdown": 0.04, "JSON": 0.03, "other": 0.16}
OTHER_SPLIT = 5  # no single language takes more than a fifth of the ``other`` share
JDK_SRC_ZIPS = "/usr/lib/jvm/*/lib/src.zip"


def source_roots() -> dict[str, Path]:
    paths = sysconfig.get_paths()
    npm = shutil.which("npm")
    roots = {"stdlib": Path(paths["stdlib"]), "purelib": Path(paths["purelib"]), "include": Path("/usr/include"),
             "npm": Path(os.path.realpath(npm)).parents[1] if npm else None}
    zips = sorted(z for z in glob.glob(JDK_SRC_ZIPS) if os.path.isfile(z))
    roots["jdk"] = Path(zips[0]) if zips else None
    return {k: v for k, v in roots.items() if v is not None and v.exists()}


def _listing(source: str, root: Path, max_bytes: int) -> Iterator[tuple[str, str]]:
    """(source, relative path) of every regular file up to ``max_bytes``."""
    if root.suffix == ".zip":
        for info in zipfile.ZipFile(root).infolist():
            if not info.is_dir() and 0 < info.file_size <= max_bytes:
                yield source, info.filename
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__"
                             and not (source == "stdlib" and d == "site-packages"))
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            if not os.path.islink(full) and os.path.isfile(full) and 0 < os.path.getsize(full) <= max_bytes:
                yield source, os.path.relpath(full, root)


def _read(root: Path, path: str, zips: dict[Path, zipfile.ZipFile]) -> bytes | None:
    try:
        if root.suffix == ".zip":
            if root not in zips:
                zips[root] = zipfile.ZipFile(root)
            return zips[root].read(path)
        return (root / path).read_bytes()
    except (OSError, KeyError):
        return None


def code_records(max_files: int = 2000, max_file_kb: int = 256, seed: int = 0) -> list[dict]:
    """A deterministic sample of this machine's files as ingest records (see the module docstring)."""
    roots = source_roots()
    table = language_table("opencoder")
    candidates = [c for source, root in roots.items() for c in _listing(source, root, max_file_kb * 1024)]
    candidates.sort(key=lambda c: hashlib.sha256(f"{seed}\0{c[0]}\0{c[1]}".encode()).digest())
    caps = {lang: max(1, int(share * max_files)) for lang, share in LANGUAGE_SHARES.items()}
    taken: Counter = Counter()
    records, zips = [], {}
    for source, path in candidates:
        if len(records) >= max_files:
            break
        lang = table.detect(path, head=None)
        if lang is None or lang.excluded:
            continue
        group = lang.name if lang.name in caps else "other"
        if taken[group] >= caps[group] or (group == "other" and taken[lang.name] >= caps["other"] // OTHER_SPLIT):
            continue
        data = _read(roots[source], path, zips)
        if data is None:
            continue
        cf = classify_file(path, data, table)
        if cf.reason is not None:
            continue
        taken[group] += 1
        if group == "other":
            taken[lang.name] += 1
        records.append({"id": f"{source}/{path}", "text": cf.text, "path": path, "language": cf.language,
                        "doc_type": cf.doc_type, "ext": cf.ext, "size_bytes": len(data)})
    return records


def describe(records: list[dict]) -> str:
    """``2,000 files, 29.1 MB: 560 Python, 240 C, ...`` (the top languages)."""
    size = sum(r["size_bytes"] for r in records) / 1e6
    langs = Counter(r["language"] for r in records).most_common()
    top = ", ".join(f"{n} {lang}" for lang, n in langs[:8]) + (f", {len(langs) - 8} more languages"
                                                               if len(langs) > 8 else "")
    return f"{len(records):,} files, {size:.1f} MB ({top})"
