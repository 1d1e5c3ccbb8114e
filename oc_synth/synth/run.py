"""Entry point behind ``oc-synth generate``: a plain dict of run settings -> config, backend, verifier -> a run.

The settings are a JSON-able dict so that data-parallel workers (``parallel.py``) rebuild exactly the run their
parent was asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oc_synth.backends import make_backend
from oc_synth.synth.config import GenerateConfig
from oc_synth.synth.generator import Generator, RunResult
from oc_synth.synth.recipes import load_recipe
from oc_synth.synth.verification import Verifier, sandbox_verifier


def config_from_spec(spec: dict[str, Any]) -> GenerateConfig:
    s = dict(spec)
    recipe = load_recipe(s.pop("recipe"), s.pop("recipe_overrides", []))
    s["out"] = Path(s["out"])
    if s.get("mbpp"):
        s["mbpp"] = Path(s["mbpp"])
    return GenerateConfig(recipe=recipe, **s)


def run_generate(spec: dict[str, Any], verifier: Verifier | None = None) -> RunResult:
    cfg = config_from_spec(spec)
    if verifier is None and cfg.verify and cfg.recipe.spec.verify:
        verifier = sandbox_verifier()
    return Generator(cfg, lambda: make_backend(cfg.backend, cfg.model, **cfg.backend_options), verifier).run()
