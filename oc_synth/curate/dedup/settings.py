"""What a dedup run is asked to do: mode, engine and the MinHash/LSH parameters, validated before any work starts.

Presets:

- ``opencoder`` (default): RefineCode's setting. Word 5-gram shingles, 2,048 permutations, LSH with 16 bands x 128
  rows; the band collision threshold is near Jaccard 0.98, so only near-identical files are merged.
- ``nemo``: NeMo Curator's ``FuzzyDeduplicationWorkflow`` defaults. Character 24-grams, 20 bands x 13 rows
  (260 permutations), seed 42; the threshold is near Jaccard 0.79.

Any field can be set on top of a preset; ``num_perm`` must equal ``bands * rows`` (every permutation lands in exactly
one band, as in NeMo Curator's ``num_hashes = num_bands * minhashes_per_band``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from oc_common.config import StrictModel, validate_config
from oc_common.errors import ConfigError
from oc_synth.minhash.settings import MinHashSettings

MODES = ("exact", "fuzzy", "both")
ENGINES = ("auto", "gpu", "cpu")
SHINGLES = ("word", "char")


PRESETS: dict[str, dict[str, Any]] = {
    "opencoder": {"shingle": "word", "ngram": 5, "num_perm": 2048, "bands": 16, "rows": 128, "seed": 42},
    "nemo": {"shingle": "char", "ngram": 24, "num_perm": 260, "bands": 20, "rows": 13, "seed": 42},
}


class DedupSettings(StrictModel):
    mode: Literal["exact", "fuzzy", "both"] = "both"
    engine: Literal["auto", "gpu", "cpu"] = "auto"
    minhash: MinHashSettings = MinHashSettings()
    workers: int = Field(1, ge=1, le=512, description="signature processes per shard (local executor)")

    @property
    def exact(self) -> bool:
        return self.mode in ("exact", "both")

    @property
    def fuzzy(self) -> bool:
        return self.mode in ("fuzzy", "both")


def build_settings(*, mode: str = "both", engine: str = "auto", preset: str = "opencoder", workers: int = 1,
                   **minhash_overrides: Any) -> DedupSettings:
    """Preset values, then every override that is not None; errors name the offending option."""
    if preset not in PRESETS:
        raise ConfigError(f"--preset: unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    minhash = dict(PRESETS[preset])
    minhash.update({k: v for k, v in minhash_overrides.items() if v is not None})
    # A preset's num_perm follows bands x rows when only those were changed (16 x 64 -> 1024 permutations).
    if "num_perm" not in {k for k, v in minhash_overrides.items() if v is not None}:
        minhash["num_perm"] = minhash["bands"] * minhash["rows"]
    return validate_config({"mode": mode, "engine": engine, "minhash": minhash, "workers": workers}, DedupSettings,
                           source="dedup options")
