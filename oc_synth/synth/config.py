"""What one ``oc-synth generate`` run is asked to do (validated by ``run.config_from_spec`` before any model loads)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oc_synth.sandbox.config import SandboxConfig
from oc_synth.synth.recipes.recipe import Recipe

COMMAND = "oc-synth generate"


@dataclass
class GenerateConfig:
    recipe: Recipe
    seeds: str
    out: Path
    backend: str
    model: str
    backend_options: dict[str, Any] = field(default_factory=dict)
    sampling: dict[str, Any] = field(default_factory=dict)  # command-line overrides of the recipe's sampling
    n: int | None = None
    seed: int = 0
    batch_size: int = 64
    limit: int | None = None
    verify: bool = True
    verify_workers: int = SandboxConfig.model_fields["workers"].default
    verify_timeout: float = SandboxConfig.model_fields["timeout_s"].default
    dedup: bool = True
    decontaminate: bool = True
    mbpp: Path | None = None
    rank: int | None = None
    world_size: int = 1
    max_failed_batches: int = 3
    finalize_only: bool = False  # data-parallel parent: the ranks generated, only finalize
    output_format: str = "jsonl"  # of the kept records: jsonl, jsonl.gz or parquet
    overwrite: bool = False
    quiet: bool = False

    def fingerprint_options(self) -> dict[str, Any]:
        """What decides the content of the generation log: a rerun must match it to resume into OUT."""
        return {"recipe": self.recipe.name, "recipe_sha": self.recipe.sha, "seeds": str(self.seeds),
                "backend": self.backend, "model": self.model, "sampling": self.sampling, "n": self.n,
                "seed": self.seed, "verify": self.verify and self.recipe.spec.verify,
                "verify_timeout": self.verify_timeout, "output_format": self.output_format}
