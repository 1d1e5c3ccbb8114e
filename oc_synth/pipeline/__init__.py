"""Sharded, resumable NeMo Curator pipelines (see runner.py)."""

import nemo_curator.pipeline  # noqa: F401  (its import resets loguru; configure logging after it)

from oc_common.log import configure_loguru

configure_loguru()
