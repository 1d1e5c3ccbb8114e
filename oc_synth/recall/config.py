"""Settings of the recall loop: one typed config, loaded from YAML plus dotted overrides, validated before any work.

OpenCoder (§2) publishes the loop (3 rounds, a domain is code-related above 10% positive pages) but not the
classifier's hyper-parameters; the fastText defaults below are DeepSeekMath's (dim 256, lr 0.1, word n-grams 3,
min count 3, 3 epochs), which OpenCoder says it follows. Every other default is ours and says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import Field

from oc_common.config import StrictModel, load_config

POSITIVE_LABEL = "__label__code"
NEGATIVE_LABEL = "__label__other"
SCORE_FIELD = "code_score"


class TokenizerConfig(StrictModel):
    """The BPE tokenizer that pre-tokenizes text for fastText (trained on the round-1 training pages unless given)."""

    vocab_size: int = Field(32_000, ge=300, description="ours")
    min_frequency: int = Field(2, ge=1, description="ours")
    max_chars: int = Field(100_000, ge=100, description="characters of a page the tokenizer and classifier see; ours")


class FastTextConfig(StrictModel):
    """``fasttext.train_supervised`` arguments."""

    dim: int = Field(256, ge=2)  # DeepSeekMath
    lr: float = Field(0.1, gt=0)  # DeepSeekMath
    word_ngrams: int = Field(3, ge=1)  # DeepSeekMath
    min_count: int = Field(3, ge=1)  # DeepSeekMath
    epoch: int = Field(3, ge=1)  # DeepSeekMath
    bucket: int = Field(2_000_000, ge=0)  # fastText's default; the model file is ~4 * dim * (bucket + vocab) bytes
    loss: Literal["softmax", "hs", "ns", "ova"] = "softmax"
    thread: int = Field(1, ge=1)  # one thread makes training deterministic
    seed: int = 0


class TrainConfig(StrictModel):
    """How the training set is drawn. All ours: OpenCoder and DeepSeekMath do not publish these."""

    negatives_per_positive: float = Field(1.0, gt=0, description="negatives sampled from the web corpus per positive")
    max_negatives: int | None = Field(None, ge=1)
    holdout_fraction: float = Field(0.1, ge=0, lt=1, description="share of pages held out for precision/recall")
    negatives_exclude: Literal["annotated", "domains", "none"] = Field(
        "annotated", description="pages never sampled as negatives, from the previous round: `annotated` = pages "
                                 "matching a URL pattern inside a code-related domain, `domains` = every page of a "
                                 "code-related domain (their non-code pages, e.g. user profiles, then never teach the "
                                 "classifier anything), `none`")
    seed: int = 0


class RecallConfig(StrictModel):
    tokenizer: TokenizerConfig = TokenizerConfig()
    fasttext: FastTextConfig = FastTextConfig()
    train: TrainConfig = TrainConfig()
    rounds: int = Field(3, ge=1)  # OpenCoder: three iterations
    score_threshold: float = Field(0.5, ge=0, le=1, description="a page is positive when code_score >= this; ours")
    domain_threshold: float = Field(0.1, ge=0, le=1)  # OpenCoder: > 10% of a domain's pages
    min_domain_pages: int = Field(1, ge=1, description="smaller domains are never code-related; ours")


def load_recall_config(path: Path | None, overrides: Iterable[str] = ()) -> RecallConfig:
    return load_config(path, list(overrides), RecallConfig)
