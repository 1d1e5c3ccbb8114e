"""Atomic output directories: a conversion writes into a hidden sibling and renames it into place when complete.

A crash, Ctrl-C or a bad input half way leaves no directory under the requested name (the hidden
``.NAME.*.partial`` sibling is removed on any Python-level failure; only a SIGKILL can leave one behind, and its name
says what it is). Loaders (transformers, vLLM, Megatron) never see a half-written model.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from oc_common.errors import ConversionError


def check_output_dir(final: Path, overwrite: bool) -> None:
    """Fail before any work if ``final`` holds something and ``overwrite`` was not given."""
    if final.exists() and not overwrite:
        if not final.is_dir():
            raise ConversionError(f"{final}: exists and is not a directory (pass --overwrite to replace it)")
        if next(final.iterdir(), None) is not None:
            raise ConversionError(f"{final}: exists and is not empty (pass --overwrite to replace it)")


@contextlib.contextmanager
def staged_output_dir(final: str | Path, overwrite: bool = False) -> Iterator[Path]:
    final = Path(final).absolute()
    check_output_dir(final, overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700; the published directory gets the usual permissions
    try:
        yield tmp
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
