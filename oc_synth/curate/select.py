"""Selection stages after filtering: language downsampling (RefineCode's last step) and the algorithmic corpus.

- ``sample``: OpenCoder downsampled over-represented languages (Java 409 GB -> 200 GB, HTML 213 GB -> 64 GB: paper
  §2.1.1, v1 text; docs/opencoder.md §1). Each record is kept with its language's probability, decided by a stable
  hash of its id and a seed, so a rerun (or another worker) makes the same decision for the same record.
- ``select-algorithmic``: the annealing corpus's "algorithmic" part (docs/opencoder.md §3): curated files that match
  keywords such as "leetcode", "def solution", "class Solution".
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from oc_common.config import StrictModel, load_config
from oc_common.outcome import reject
from oc_common.stats import Stats
from oc_synth.pipeline.runner import run_sharded
from oc_synth.pipeline.stages import RecordStage


def stable_unit_interval(key: str, seed: int) -> float:
    """A deterministic number in [0, 1) for ``key``: same key and seed, same number, on any machine."""
    digest = hashlib.blake2b(f"{seed}\0{key}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


# ------------------------------------------------------------------------------------------------------ sampling
class SampleConfig(StrictModel):
    # The paper's sizes (§2.1.1, v1 text; docs/opencoder.md §1): Java 409 GB -> 200 GB, HTML 213 GB -> 64 GB, as
    # keep fractions by size. Other languages are kept whole.
    keep_fraction: dict[str, float] = Field(default_factory=lambda: {"Java": 200 / 409, "HTML": 64 / 213})
    seed: int = 0
    language_field: str = "language"
    id_field: str = "id"

    @field_validator("keep_fraction")
    @classmethod
    def _fractions_in_range(cls, v: dict[str, float]) -> dict[str, float]:
        for lang, frac in v.items():
            if not 0.0 <= frac <= 1.0:
                raise ValueError(f"{lang}: keep fraction must be within [0, 1], got {frac}")
        return v


@dataclass
class LanguageDownsample(RecordStage):
    config: SampleConfig = field(default_factory=SampleConfig)
    name: str = "language_downsample"

    def process_record(self, record: dict[str, Any], stats: Stats) -> dict[str, Any]:
        cfg = self.config
        frac = cfg.keep_fraction.get(str(record.get(cfg.language_field)))
        if frac is not None and stable_unit_interval(str(record.get(cfg.id_field)), cfg.seed) >= frac:
            reject(record, f"downsampled:{record.get(cfg.language_field)}")
        return record


def run_sample(inp: Path, out: Path, *, config: Path | None = None, overrides: list[str] = (),
               dropped: Path | None = None, executor: str = "local", overwrite: bool = False,
               quiet: bool = False, output_format: str = "jsonl") -> Stats:
    cfg = load_config(config, overrides, SampleConfig)
    return run_sharded(command="curate sample", inp=inp, out=out, stages=[LanguageDownsample(config=cfg)],
                       options=cfg.model_dump(), dropped=dropped, executor=executor, overwrite=overwrite,
                       quiet=quiet, output_format=output_format)


# -------------------------------------------------------------------------------------------- algorithmic corpus
class AlgorithmicConfig(StrictModel):
    # docs/opencoder.md §3 names "leetcode", "def solution", "class Solution"; the rest of the list is ours.
    keywords: list[str] = Field(default_factory=lambda: [
        "leetcode", "def solution", "class Solution", "codeforces", "atcoder", "hackerrank", "codechef",
        "competitive programming", "time complexity", "dynamic programming"])
    case_sensitive: bool = False
    text_field: str = "text"


@dataclass
class AlgorithmicKeywordSelect(RecordStage):
    config: AlgorithmicConfig = field(default_factory=AlgorithmicConfig)
    name: str = "algorithmic_keyword_select"

    def setup_worker(self) -> None:
        self._cfg = self.config
        flags = 0 if self._cfg.case_sensitive else re.IGNORECASE
        # one alternation: a single pass over the text finds the first keyword, whatever the list's length
        self._pattern = re.compile("|".join(re.escape(k) for k in self._cfg.keywords), flags)
        self._canonical = {(k if self._cfg.case_sensitive else k.lower()): k for k in self._cfg.keywords}

    def output_fields(self) -> dict[str, str]:
        return {"algorithmic_keyword": "string"}

    def process_record(self, record: dict[str, Any], stats: Stats) -> dict[str, Any]:
        text = record.get(self._cfg.text_field)
        m = self._pattern.search(text) if isinstance(text, str) else None
        if m is None:
            reject(record, "no_algorithmic_keyword")
            return record
        hit = m.group(0) if self._cfg.case_sensitive else m.group(0).lower()
        keyword = self._canonical.get(hit, hit)
        record["algorithmic_keyword"] = keyword
        stats.add_to("matched_keyword", keyword)
        return record


def run_select_algorithmic(inp: Path, out: Path, *, config: Path | None = None, overrides: list[str] = (),
                           executor: str = "local", overwrite: bool = False, quiet: bool = False,
                           output_format: str = "jsonl") -> Stats:
    cfg = load_config(config, overrides, AlgorithmicConfig)
    if not cfg.keywords:
        from oc_common.errors import ConfigError

        raise ConfigError("keywords: the list is empty; nothing could be selected")
    return run_sharded(command="curate select-algorithmic", inp=inp, out=out,
                       stages=[AlgorithmicKeywordSelect(config=cfg)], options=cfg.model_dump(),
                       executor=executor, overwrite=overwrite, quiet=quiet, output_format=output_format)
