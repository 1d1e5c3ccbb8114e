"""Settings of the recall loop: one typed config, loaded from YAML plus dotted overrides, validated before any work.

OpenCoder (§2) publishes the loop (3 rounds, a domain is code-related above 10% positive pages) but not the
classifier's hyper-parameters; it follows DeepSeekMath, whose fastText settings (dim 256, lr 0.1, word n-grams 3,
min count 3, 3 epochs) were made for ~500k seed pages. Those settings learn nothing from a few dozen pages (every
score lands near 0.5) and write a 2 GB model per round, so every fastText setting left unset (``auto``, the default)
is chosen from the size of the training set by ``auto_fasttext``: DeepSeekMath's at OpenCoder's scale, smaller
models with more passes below it. Every other default is ours and says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class FastTextTier:
    """fastText settings for training sets of up to ``max_pages`` pages (positives + negatives). With ``updates``, the
    epochs are ``updates / pages`` (the number of example updates held constant), between ``min_epoch`` and
    ``epoch``."""

    max_pages: float
    dim: int
    lr: float
    epoch: int
    word_ngrams: int
    min_count: int
    bucket: int
    updates: int = 0
    min_epoch: int = 1

    def epochs(self, pages: int) -> int:
        if not self.updates:
            return self.epoch
        return max(self.min_epoch, min(self.epoch, math.ceil(self.updates / max(1, pages))))


# Chosen from the training-set size when a setting is left to auto. The last tier is DeepSeekMath's (OpenCoder's
# scale: ~500k seeds and as many negatives); the others are ours, measured on the corpora of
# examples/recall/mixed_web.py (docs/recall.md, "Settings"): fewer pages need more passes and a higher learning rate
# to move fastText's scores away from 0.5, and a smaller model (the file is ~4 x dim x (bucket + words) bytes).
FASTTEXT_TIERS = (
    FastTextTier(100, dim=16, lr=1.0, epoch=50, word_ngrams=2, min_count=1, bucket=100_000),
    FastTextTier(1_000, dim=32, lr=1.0, epoch=50, word_ngrams=2, min_count=1, bucket=100_000, updates=5_000,
                 min_epoch=10),
    FastTextTier(20_000, dim=64, lr=0.5, epoch=10, word_ngrams=2, min_count=1, bucket=200_000),
    FastTextTier(200_000, dim=128, lr=0.2, epoch=5, word_ngrams=3, min_count=2, bucket=1_000_000),
    FastTextTier(float("inf"), dim=256, lr=0.1, epoch=3, word_ngrams=3, min_count=3, bucket=2_000_000),
)
AUTO_KEYS = ("dim", "lr", "epoch", "word_ngrams", "min_count", "bucket")


class FastTextConfig(StrictModel):
    """``fasttext.train_supervised`` arguments; ``null`` (the default) = chosen from the training-set size
    (``FASTTEXT_TIERS``)."""

    dim: int | None = Field(None, ge=2)
    lr: float | None = Field(None, gt=0)
    word_ngrams: int | None = Field(None, ge=1)
    min_count: int | None = Field(None, ge=1)
    epoch: int | None = Field(None, ge=1)
    bucket: int | None = Field(None, ge=0, description="hash buckets of word n-grams (0 with word_ngrams 1)")
    loss: Literal["softmax", "hs", "ns", "ova"] = "softmax"
    thread: int = Field(1, ge=1)  # one thread makes training deterministic
    seed: int = 0
    quantize: bool = Field(False, description="write a product-quantized model.ftz instead of model.bin (fastText's "
                                              "`quantize`); for large training sets, where model.bin is ~2 GB")
    quantize_cutoff: int = Field(100_000, ge=0, description="with quantize: keep the this many most important words "
                                                            "and n-gram buckets, then retrain on the training pages "
                                                            "(fastText's documented example); 0 keeps all, and product "
                                                            "quantization of millions of rows takes long")

    def resolved(self, train_pages: int) -> FastTextConfig:
        """A copy with every auto setting chosen for a training set of ``train_pages`` pages."""
        tier = auto_tier(train_pages)
        chosen = {k: getattr(tier, k) for k in AUTO_KEYS if getattr(self, k) is None}
        if "epoch" in chosen:
            chosen["epoch"] = tier.epochs(train_pages)
        return self.model_copy(update=chosen)

    def auto_keys(self) -> list[str]:
        return [k for k in AUTO_KEYS if getattr(self, k) is None]


def auto_tier(train_pages: int) -> FastTextTier:
    return next(t for t in FASTTEXT_TIERS if train_pages <= t.max_pages)


class TrainConfig(StrictModel):
    """How the training set is drawn and checked. All ours: OpenCoder and DeepSeekMath do not publish these."""

    negatives_per_positive: float = Field(1.0, gt=0, description="negatives sampled from the web corpus per positive")
    max_negatives: int | None = Field(None, ge=1)
    negatives_exclude: Literal["annotated", "domains", "none"] = Field(
        "annotated", description="pages never sampled as negatives, from the previous round: `annotated` = pages "
                                 "matching a URL pattern inside a code-related domain, `domains` = every page of a "
                                 "code-related domain (their non-code pages, e.g. user profiles, then never teach the "
                                 "classifier anything), `none`")
    drop_code_like_negatives: bool = Field(
        True, description="k-fold: drop sampled negatives whose out-of-fold score is at least the seeds' mean (likely "
                          "code: a sample of the corpus holds some), then train again")
    evaluation: Literal["auto", "kfold", "holdout"] = Field(
        "auto", description="how held-out scores are obtained: `kfold` = every page scored by a model trained "
                            "without its fold (then the model is trained on all pages), `holdout` = a split put "
                            "aside; `auto` = kfold below kfold_max_pages")
    folds: int = Field(5, ge=2, le=20)
    kfold_max_pages: int = Field(1_000, ge=0, description="auto evaluation: k-fold up to this many training pages "
                                                          "(k + 1 trainings; a split would hold too few pages)")
    holdout_fraction: float = Field(0.1, gt=0, lt=1, description="holdout evaluation: share of pages put aside")
    holdout_min_pages: int = Field(200, ge=0, description="holdout evaluation: put at least this many pages aside")
    seed: int = 0


class GateConfig(StrictModel):
    """The quality gate between training and scoring the corpus (all ours). Negatives are a sample of the corpus,
    so a share ``c`` of them is code the classifier rightly scores high: a perfect classifier has held-out ROC AUC
    about 1 - c/2 (0.9 when 20% of the corpus is code), hence a bar well below 1."""

    enforce: bool = Field(True, description="false: report a failed gate as a warning and score anyway")
    min_positives: int = Field(20, ge=1, description="fewer usable seed pages cannot train and check a classifier")
    min_auc: float = Field(0.8, ge=0, le=1, description="held-out ROC AUC of seeds against sampled negatives")
    max_negative_rate: float = Field(0.5, ge=0, le=1, description="share of held-out negatives at or above the "
                                                                   "score threshold; more would recall the corpus "
                                                                   "wholesale")


class RecallConfig(StrictModel):
    tokenizer: TokenizerConfig = TokenizerConfig()
    fasttext: FastTextConfig = FastTextConfig()
    train: TrainConfig = TrainConfig()
    gate: GateConfig = GateConfig()
    rounds: int = Field(3, ge=1)  # OpenCoder: three iterations
    score_threshold: float = Field(0.5, ge=0, le=1, description="a page is positive when code_score >= this; ours")
    threshold_mode: Literal["fixed", "target_precision"] = Field(
        "fixed", description="`target_precision`: each round uses the lowest threshold whose held-out precision "
                             "reaches target_precision instead of score_threshold")
    target_precision: float = Field(0.9, gt=0, le=1, description="for the calibrated threshold (always reported); "
                                                                  "ours")
    domain_threshold: float = Field(0.1, ge=0, le=1)  # OpenCoder: > 10% of a domain's pages
    min_domain_pages: int = Field(1, ge=1, description="smaller domains are never code-related; ours")


def load_recall_config(path: Path | None, overrides: Iterable[str] = ()) -> RecallConfig:
    return load_config(path, list(overrides), RecallConfig)
