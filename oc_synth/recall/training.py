"""Training a round's classifier: positives from the seeds, negatives sampled from the web corpus, a held-out split.

- Positives: every usable seed page (text required, URL optional), de-duplicated by URL (or by text without one).
- Negatives: a uniform sample of the corpus's usable pages, ``negatives_per_positive`` per positive, never a seed
  URL and never what the previous round found to be code (``negatives_exclude``: by default the pages matching a URL
  pattern inside a code-related domain). The sample is a bottom-k by a salted hash of the URL: the same pages
  whatever the shard order, in one streaming pass.
- Held-out: a hash of each page's key puts ``holdout_fraction`` of both classes aside for precision/recall.
"""

from __future__ import annotations

import heapq
import random
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oc_common.errors import OcError
from oc_common.log import get_logger
from oc_common.records import RecordError, iter_file_records, list_record_files
from oc_common.stats import Stats
from oc_synth.recall.classifier import (
    binary_metrics,
    label_probability,
    save_classifier,
    train_fasttext,
    write_training_file,
)
from oc_synth.recall.config import NEGATIVE_LABEL, POSITIVE_LABEL, RecallConfig
from oc_synth.recall.pages import page_problem, stable_key
from oc_synth.recall.tokenize import BpePretokenizer
from oc_synth.recall.urls import NegativeExclusion

log = get_logger(__name__)

SAMPLE_SALT = 1  # salts of stable_key: the negative sample and the held-out split must not correlate
HOLDOUT_SALT = 2
HOLDOUT_BUCKETS = 10_000


@dataclass
class Page:
    key: str  # URL, or the text itself for a seed without one
    text: str


@dataclass
class TrainingSet:
    positives: list[Page] = field(default_factory=list)
    negatives: list[Page] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)


def iter_pages(paths: Iterable[Path], stats: Stats, prefix: str, require_url: bool,
               max_chars: int) -> Iterable[Page]:
    """Usable pages of record files, each key once; bad lines, unusable pages and duplicates are counted."""
    seen: set[int] = set()
    for path in paths:
        for f in list_record_files(path):
            for _, rec in iter_file_records(f):
                if isinstance(rec, RecordError):
                    stats.add_to(f"{prefix}_dropped", "bad_record")
                    continue
                stats.add(f"{prefix}_read")
                problem = page_problem(rec, url_field="url" if require_url else None)
                if problem:
                    stats.add_to(f"{prefix}_dropped", problem)
                    continue
                url = rec.get("url")
                key = url.strip() if isinstance(url, str) and url.strip() else rec["text"]
                h = stable_key(key)
                if h in seen:
                    stats.add_to(f"{prefix}_dropped", "duplicate")
                    continue
                seen.add(h)
                yield Page(key, rec["text"][:max_chars])


def collect_training_set(seeds: Sequence[Path], corpus: Path, cfg: RecallConfig,
                         exclude: NegativeExclusion = NegativeExclusion()) -> TrainingSet:
    ts = TrainingSet()
    max_chars = cfg.tokenizer.max_chars
    ts.positives = list(iter_pages(seeds, ts.stats, "positives", False, max_chars))
    if not ts.positives:
        raise OcError(f"{', '.join(map(str, seeds))}: no usable positive pages (each needs a non-empty `text`); "
                        f"dropped: {dict(ts.stats.groups.get('positives_dropped', {})) or 'none read'}")
    want = round(cfg.train.negatives_per_positive * len(ts.positives))
    if cfg.train.max_negatives:
        want = min(want, cfg.train.max_negatives)
    seed_keys = {p.key for p in ts.positives}
    heap: list[tuple[int, str, str]] = []  # (-rank, key, text): the `want` smallest ranks seen so far
    for page in iter_pages([corpus], ts.stats, "corpus", True, max_chars):
        if page.key in seed_keys:
            ts.stats.add_to("corpus_not_negative", "seed_url")
            continue
        reason = exclude.reason(page.key)
        if reason:
            ts.stats.add_to("corpus_not_negative", reason)
            continue
        rank = stable_key(page.key, SAMPLE_SALT + cfg.train.seed)
        if len(heap) < want:
            heapq.heappush(heap, (-rank, page.key, page.text))
        elif -heap[0][0] > rank:
            heapq.heapreplace(heap, (-rank, page.key, page.text))
    ts.negatives = [Page(k, t) for _, k, t in sorted(heap, reverse=True)]
    if not ts.negatives:
        raise OcError(f"{corpus}: no usable negative pages (pages need `url` and `text`, and must not all be "
                        "seeds or excluded as code)")
    if len(ts.negatives) < want:
        log.warning("only %d negative pages available for %d positives", len(ts.negatives), len(ts.positives))
    ts.stats.add("positives", len(ts.positives))
    ts.stats.add("negatives", len(ts.negatives))
    return ts


def is_heldout(page: Page, fraction: float, seed: int) -> bool:
    return stable_key(page.key, HOLDOUT_SALT + seed) % HOLDOUT_BUCKETS < fraction * HOLDOUT_BUCKETS


def train_classifier(seeds: Sequence[Path], corpus: Path, out: Path, cfg: RecallConfig,
                     tokenizer: BpePretokenizer | None = None, exclude: NegativeExclusion = NegativeExclusion(),
                     tokenizer_out: Path | None = None) -> tuple[dict[str, Any], Stats]:
    """Collect, split, (train a tokenizer,) train fastText, measure on the held-out pages, save to ``out``.

    Returns the classifier's metadata (classifier.json) and the training stats. With ``tokenizer=None`` a BPE
    tokenizer is trained on the training split and also saved to ``tokenizer_out`` (if given).
    """
    t0 = time.perf_counter()
    ts = collect_training_set(seeds, corpus, cfg, exclude)
    st = ts.stats
    frac, seed = cfg.train.holdout_fraction, cfg.train.seed
    train_ex: list[tuple[str, Page]] = []
    held: dict[str, list[Page]] = {POSITIVE_LABEL: [], NEGATIVE_LABEL: []}
    for label, pages in ((POSITIVE_LABEL, ts.positives), (NEGATIVE_LABEL, ts.negatives)):
        for p in pages:
            if is_heldout(p, frac, seed):
                held[label].append(p)
            else:
                train_ex.append((label, p))
    if not any(lab == POSITIVE_LABEL for lab, _ in train_ex):
        raise OcError(f"all {len(ts.positives)} positive pages fell into the held-out split; add seeds or lower "
                        "train.holdout_fraction")
    # fastText learns in file order: a fixed pseudo-random order, not positives-then-negatives
    random.Random(seed).shuffle(train_ex)
    t_tok = time.perf_counter()
    if tokenizer is None:
        tokenizer = BpePretokenizer.train((p.text for _, p in train_ex), cfg.tokenizer.vocab_size,
                                          cfg.tokenizer.min_frequency, cfg.tokenizer.max_chars)
        if tokenizer_out is not None:
            tokenizer.save(tokenizer_out)
        st.add("tokenizer_trained")
    st.add("seconds_tokenizer", round(time.perf_counter() - t_tok, 3))
    out.mkdir(parents=True, exist_ok=True)
    t_ft = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=out, prefix=".train-") as tmp:
        train_file = Path(tmp) / "train.txt"
        st.add("train_lines", write_training_file(train_file, [(lab, p.text) for lab, p in train_ex], tokenizer))
        model = train_fasttext(train_file, cfg.fasttext)
    st.add("seconds_fasttext", round(time.perf_counter() - t_ft, 3))

    def scores(pages: list[Page]) -> list[float]:
        return [label_probability(model, tokenizer(p.text), POSITIVE_LABEL) for p in pages]

    metrics = binary_metrics(scores(held[POSITIVE_LABEL]), scores(held[NEGATIVE_LABEL]), cfg.score_threshold)
    st.add("heldout_positives", metrics["positives"])
    st.add("heldout_negatives", metrics["negatives"])
    st.add("seconds", round(time.perf_counter() - t0, 3))
    meta = save_classifier(out, model, tokenizer, {
        "train_positives": sum(lab == POSITIVE_LABEL for lab, _ in train_ex),
        "train_negatives": sum(lab == NEGATIVE_LABEL for lab, _ in train_ex),
        "heldout": metrics,
        "fasttext": cfg.fasttext.model_dump(),
        "train": cfg.train.model_dump(),
        "negatives_excluded": exclude.describe(),
        "stats": st.to_dict(),
    })
    return meta, st


def seed_url_keys(paths: Iterable[Path]) -> set[int]:
    """``stable_key`` of every seed URL: pages that are already seeds do not join the seeds again."""
    keys = set()
    for path in paths:
        for f in list_record_files(path):
            for _, rec in iter_file_records(f):
                if isinstance(rec, dict) and isinstance(rec.get("url"), str) and rec["url"].strip():
                    keys.add(stable_key(rec["url"]))
    return keys
