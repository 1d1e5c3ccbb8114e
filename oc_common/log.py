"""One logging setup for both CLIs: rich console output, levels from ``--log-level`` or ``OC_LOG_LEVEL``."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from rich.console import Console
from rich.logging import RichHandler

console = Console(stderr=True)
_configured = False


def setup_logging(level: str | None = None) -> None:
    global _configured
    level = (level or os.environ.get("OC_LOG_LEVEL") or "INFO").upper()
    root = logging.getLogger("oc")
    root.setLevel(level)
    if not _configured:
        handler = RichHandler(console=console, show_path=False, rich_tracebacks=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s", datefmt="%H:%M:%S"))
        root.addHandler(handler)
        root.propagate = False
        _configured = True
    configure_loguru()


def configure_loguru() -> None:
    """NeMo Curator logs through loguru at INFO for every batch; keep it to warnings unless we run at DEBUG.

    Importing NeMo Curator (through cosmos-xenna) resets loguru's sinks, so this runs again after that import.
    """
    try:
        import sys

        from loguru import logger as loguru_logger
    except ImportError:  # pragma: no cover - loguru comes with nemo-curator
        return
    loguru_logger.remove()
    debug = logging.getLogger("oc").level == logging.DEBUG
    loguru_logger.add(sys.stderr, level="DEBUG" if debug else "WARNING", filter=_drop_curator_noise)


def _drop_curator_noise(record) -> bool:  # noqa: ANN001 - loguru's record dict
    # An empty shard (all lines malformed, or an empty file) is normal for us; Curator warns at WARNING for it.
    return not record["message"].endswith("has no items")


def get_logger(name: str) -> logging.Logger:
    """Loggers live under the ``oc`` namespace: ``get_logger(__name__)`` -> ``oc.oc_synth.curate.ingest``."""
    return logging.getLogger(f"oc.{name}")


@contextlib.contextmanager
def quiet_logger(*names: str, level: int = logging.WARNING) -> Iterator[None]:
    """Raise the loggers ``names`` (full names, e.g. ``huggingface_hub``) to ``level`` for a block, then restore."""
    loggers = [logging.getLogger(name) for name in names]
    old = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, level_before in zip(loggers, old, strict=True):
            logger.setLevel(level_before)
