"""One logging setup for both CLIs: rich console output, levels from ``--log-level`` or ``OC_LOG_LEVEL``."""

from __future__ import annotations

import logging
import os

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
    # NeMo Curator logs through loguru at INFO per batch; keep it to warnings unless asked.
    try:
        import sys

        from loguru import logger as loguru_logger

        loguru_logger.remove()
        loguru_logger.add(sys.stderr, level="DEBUG" if level == "DEBUG" else "WARNING")
    except ImportError:  # pragma: no cover - loguru comes with nemo-curator
        pass


def get_logger(name: str) -> logging.Logger:
    """Loggers live under the ``oc`` namespace: ``get_logger(__name__)`` -> ``oc.oc_synth.curate.ingest``."""
    return logging.getLogger(f"oc.{name}")
