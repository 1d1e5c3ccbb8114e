"""Atomic output directories: a conversion writes into a hidden sibling and renames it into place when complete.

A crash, Ctrl-C or a bad input half way leaves no directory under the requested name (the hidden
``.NAME.*.partial`` sibling is removed on any Python-level failure; only a SIGKILL can leave one behind, and its name
says what it is). Loaders (transformers, vLLM, Megatron) never see a half-written model.

The output contract (oc_common/outputs.py, docs/outputs.md): the output may not be, contain or lie inside the input;
the finished directory lists what the conversion wrote in ``.oc/manifest.json``; ``--overwrite`` replaces only a
directory a conversion of ours wrote and that holds nothing else.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from oc_common.errors import ConversionError
from oc_common.outputs import check_separate, check_writable, foreign_files, read_manifest, write_manifest


def check_output_dir(final: Path, overwrite: bool, inputs: Mapping[str, str | Path | None] | None = None,
                     label: str = "output") -> None:
    """Fail before any work if ``final`` overlaps an input, cannot be written, or holds something that
    ``overwrite`` may not replace."""
    check_separate(inputs or {}, {label: final})
    check_writable(label, final, directory=True)
    if not final.is_dir() or next(final.iterdir(), None) is None:
        return
    manifest = read_manifest(final)
    if manifest is None:
        raise ConversionError(f"{final}: exists, is not empty, and no conversion of ours wrote it; choose another "
                              f"{label} (--overwrite only replaces what a conversion of ours wrote)")
    if not overwrite:
        raise ConversionError(f"{final}: exists and is not empty (written by `{manifest.get('command')}`); pass "
                              "--overwrite to replace it")
    theirs = foreign_files(final, manifest.get("writes", []))
    if theirs:
        raise ConversionError(f"{final}: holds files the conversion did not write (e.g. {theirs[0]}); move them away "
                              f"or choose another {label}")


@contextlib.contextmanager
def staged_output_dir(final: str | Path, overwrite: bool = False, inputs: Mapping[str, str | Path | None] | None = None,
                      command: str = "convert") -> Iterator[Path]:
    final = Path(final).absolute()
    check_output_dir(final, overwrite, inputs)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700; the published directory gets the usual permissions
    try:
        yield tmp
        writes = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if not p.is_dir())
        write_manifest(tmp, command, {}, label="output", inputs=inputs or {}, writes=writes)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists() or final.is_symlink():
        old = final.with_name(f".{final.name}.{os.getpid()}.replaced")
        final.rename(old)
        tmp.rename(final)
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()
    else:
        tmp.rename(final)
