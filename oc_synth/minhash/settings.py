"""MinHash / LSH parameters: shingles, permutations, bands x rows, seed (validated; presets live with their users)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from oc_common.config import StrictModel


class MinHashSettings(StrictModel):
    shingle: Literal["word", "char"] = "word"
    ngram: int = Field(5, ge=1, le=1000, description="shingle width, in words or characters")
    num_perm: int = Field(2048, ge=1, description="MinHash permutations (signature length)")
    bands: int = Field(16, ge=1)
    rows: int = Field(128, ge=1)
    seed: int = Field(42, ge=0, lt=2**32, description="seeds the permutations: same seed, same signatures")
    lowercase: bool = False
    jaccard_check: float | None = Field(None, gt=0.0, le=1.0, description="verify candidate pairs by exact Jaccard")

    @model_validator(mode="after")
    def _bands_cover_signature(self) -> MinHashSettings:
        if self.bands * self.rows != self.num_perm:
            raise ValueError(f"num_perm ({self.num_perm}) must equal bands x rows ({self.bands} x {self.rows} = "
                             f"{self.bands * self.rows})")
        return self

    def threshold(self) -> float:
        """Jaccard similarity at which a pair becomes a candidate with probability ~1/2 ((1/b)^(1/r))."""
        return (1.0 / self.bands) ** (1.0 / self.rows)

    def catch_probability(self, jaccard: float) -> float:
        """The LSH S-curve: probability that a pair at this Jaccard similarity shares at least one band."""
        return 1.0 - (1.0 - jaccard**self.rows) ** self.bands
