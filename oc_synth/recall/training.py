"""Training a round's classifier: positives from the seeds, negatives sampled from the web corpus, held-out scores
from k-fold cross-validation (small sets) or a split put aside (large sets), then the quality gate.

- Positives: every usable seed page (text required, URL optional), de-duplicated by URL (or by text without one).
- Negatives: labelled negative pages if given (``--negatives``, e.g. from ``recall label``), then a uniform sample of
  the corpus's usable pages up to ``negatives_per_positive`` per positive, never a seed URL and never what the
  previous round found to be code (``negatives_exclude``: by default the pages matching a URL pattern inside a
  code-related domain). The sample is a bottom-k by a salted hash of the URL: the same pages whatever the shard
  order, in one streaming pass.
- Held-out: k folds dealt by a hash of each page's key within each class (small sets), or a hash puts
  ``holdout_fraction`` (at least ``holdout_min_pages``) of both classes aside. The BPE tokenizer (round 1) is trained
  on every training page, held-out folds included: it learns no labels, only merges.
- Code-like negatives (k-fold): sampled negatives whose out-of-fold score reaches the seeds' mean are dropped as
  likely code and the folds and model trained again, unless the first pass already fails the gate's AUC.
- Settings: fastText settings left to auto come from the number of training pages (``config.FASTTEXT_TIERS``), before
  any negative is dropped; the fold models use the same ones.
- The quality gate (``evaluation``) decides whether the model is saved.
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

from oc_common.errors import OcError, OutputExistsError
from oc_common.fileio import atomic_write_json
from oc_common.log import get_logger
from oc_common.outputs import OutputDir, claim_outputs, is_our_output
from oc_common.records import RecordError, iter_file_records, list_record_files
from oc_common.stats import Stats
from oc_synth.recall.classifier import (
    META_FILE,
    MODEL_FILE,
    QUANTIZED_MODEL_FILE,
    TOKENIZER_FILE,
    label_probability,
    save_classifier,
    train_fasttext,
)
from oc_synth.recall.config import NEGATIVE_LABEL, POSITIVE_LABEL, RecallConfig
from oc_synth.recall.evaluation import evaluate, roc_auc
from oc_synth.recall.pages import page_problem, stable_key
from oc_synth.recall.tokenize import BpePretokenizer
from oc_synth.recall.urls import NegativeExclusion

log = get_logger(__name__)

SAMPLE_SALT = 1  # salts of stable_key: the negative sample and the held-out split must not correlate
HOLDOUT_SALT = 2
HOLDOUT_BUCKETS = 10_000
EVALUATION_FILE = "evaluation.json"  # what a classifier that failed the gate was measured at


@dataclass
class Page:
    key: str  # URL, or the text itself for a seed without one
    text: str


@dataclass
class TrainingSet:
    positives: list[Page] = field(default_factory=list)
    negatives: list[Page] = field(default_factory=list)  # given (labelled) ones first, then the corpus sample
    given_negatives: int = 0
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
                         exclude: NegativeExclusion = NegativeExclusion(),
                         negatives: Sequence[Path] = ()) -> TrainingSet:
    ts = TrainingSet()
    max_chars = cfg.tokenizer.max_chars
    ts.positives = list(iter_pages(seeds, ts.stats, "positives", False, max_chars))
    if not ts.positives:
        raise OcError(f"{', '.join(map(str, seeds))}: no usable positive pages (each needs a non-empty `text`); "
                        f"dropped: {dict(ts.stats.groups.get('positives_dropped', {})) or 'none read'}")
    seed_keys = {p.key for p in ts.positives}
    given = []
    for p in iter_pages(negatives, ts.stats, "given_negatives", False, max_chars):
        if p.key in seed_keys:
            ts.stats.add_to("given_negatives_dropped", "also_a_seed")
        else:
            given.append(p)
    want = round(cfg.train.negatives_per_positive * len(ts.positives))
    if cfg.train.max_negatives:
        want = min(want, cfg.train.max_negatives)
    given = given[:want]
    given_keys = {p.key for p in given}
    want -= len(given)
    heap: list[tuple[int, str, str]] = []  # (-rank, key, text): the `want` smallest ranks seen so far
    for page in iter_pages([corpus] if want > 0 else [], ts.stats, "corpus", True, max_chars):
        if page.key in seed_keys:
            ts.stats.add_to("corpus_not_negative", "seed_url")
            continue
        if page.key in given_keys:
            ts.stats.add_to("corpus_not_negative", "given_negative")
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
    ts.negatives = given + [Page(k, t) for _, k, t in sorted(heap, reverse=True)]
    if not ts.negatives:
        raise OcError(f"{corpus}: no usable negative pages (pages need `url` and `text`, and must not all be "
                        "seeds or excluded as code)")
    if len(ts.negatives) < want + len(given):
        log.warning("only %d negative pages available for %d positives", len(ts.negatives), len(ts.positives))
    ts.stats.add("positives", len(ts.positives))
    ts.stats.add("negatives", len(ts.negatives))
    ts.stats.add("negatives_given", len(given))
    ts.given_negatives = len(given)
    return ts


class GateError(OcError):
    """The classifier is not good enough to score the corpus with (or there is too little to train it on)."""


GATE_ADVICE = ("add seed pages (label candidates with `oc-synth recall label`), give labelled negative pages "
               "(--negatives), or change settings (fasttext.*, train.negatives_exclude; gate.* to relax the checks)")


def is_heldout(page: Page, fraction: float, seed: int) -> bool:
    return stable_key(page.key, HOLDOUT_SALT + seed) % HOLDOUT_BUCKETS < fraction * HOLDOUT_BUCKETS


def stratified_folds(labels: Sequence[str], pages: Sequence[Page], k: int, seed: int) -> list[int]:
    """Fold of each page: within each class, pages ordered by a salted hash of their key are dealt round-robin,
    so every fold holds the same share of both classes whatever the input order."""
    folds = [0] * len(pages)
    for label in set(labels):
        idx = sorted((i for i, lab in enumerate(labels) if lab == label),
                     key=lambda i: stable_key(pages[i].key, HOLDOUT_SALT + seed))
        for j, i in enumerate(idx):
            folds[i] = j % k
    return folds


def split_scores(scores: dict[int, float], labels: Sequence[str]) -> tuple[list[float], list[float]]:
    """Held-out scores of the positives and of the negatives."""
    return ([s for i, s in scores.items() if labels[i] == POSITIVE_LABEL],
            [s for i, s in scores.items() if labels[i] == NEGATIVE_LABEL])


def code_like_negatives(scores: dict[int, float], labels: Sequence[str], first_sampled: int) -> list[int]:
    """Sampled negatives that look like the seeds: out-of-fold score at least the seeds' mean out-of-fold score (the
    class threshold of confident learning, Northcutt et al. 2021). A sample of the corpus holds code pages; trained
    on as negatives they teach the classifier that code unlike the seeds is not code. Pages before index
    ``first_sampled`` (seeds, given negatives) are never dropped."""
    pos = [s for i, s in scores.items() if labels[i] == POSITIVE_LABEL]
    if not pos:
        return []
    bar = sum(pos) / len(pos)
    return sorted(i for i, s in scores.items()
                  if labels[i] == NEGATIVE_LABEL and i >= first_sampled and s >= bar)


def evaluation_method(cfg: RecallConfig, pages: int) -> str:
    if cfg.train.evaluation == "auto":
        return "kfold" if pages <= cfg.train.kfold_max_pages else "holdout"
    return cfg.train.evaluation


def claim_classifier_output(out: Path, options: dict[str, Any], *, inputs: dict[str, Path | None],
                            overwrite: bool) -> None:
    """The output contract (oc_common/outputs.py) for ``recall train``'s classifier directory: refused when it is,
    contains or lies inside an input, or holds files no run of ours wrote; ``--overwrite`` removes only the files a
    training of ours wrote there. Training is one step: a directory with a finished classifier is trained again only
    with ``--overwrite``; one that a killed run, or a classifier the quality gate refused, left is trained into."""
    if not overwrite and is_our_output(out) and (out / META_FILE).is_file():
        raise OutputExistsError(f"--out {out}: holds a classifier trained earlier ({META_FILE}); pass --overwrite to "
                                "train it again, or choose another --out")
    writes = [MODEL_FILE, QUANTIZED_MODEL_FILE, TOKENIZER_FILE, META_FILE, EVALUATION_FILE]
    claim_outputs("recall train", options, inputs=inputs, dirs=[OutputDir(out, "--out", writes)], overwrite=overwrite)


def train_classifier(seeds: Sequence[Path], corpus: Path, out: Path, cfg: RecallConfig,
                     tokenizer: BpePretokenizer | None = None, exclude: NegativeExclusion = NegativeExclusion(),
                     tokenizer_out: Path | None = None, negatives: Sequence[Path] = ()) -> tuple[dict[str, Any], Stats]:
    """Collect the pages, (train a tokenizer,) train fastText, evaluate it on held-out pages, check the quality gate
    and save to ``out``.

    Held-out scores come from k-fold cross-validation (then the saved model is trained on every page) or from a
    split put aside (``train.evaluation``). fastText settings left to auto are chosen from the number of training
    pages. A failed gate raises ``GateError`` (one line: what failed and what to do) after writing
    ``out/evaluation.json``, and saves no model, unless ``gate.enforce`` is false. Returns the classifier's metadata
    (classifier.json) and the training stats. With ``tokenizer=None`` a BPE tokenizer is trained on the training
    pages and also saved to ``tokenizer_out`` (if given).
    """
    t0 = time.perf_counter()
    ts = collect_training_set(seeds, corpus, cfg, exclude, negatives)
    st = ts.stats
    if len(ts.positives) < cfg.gate.min_positives:
        raise GateError(f"{len(ts.positives)} usable seed pages are too few to train and check a classifier (gate."
                        f"min_positives {cfg.gate.min_positives}): label more pages as code (`oc-synth recall "
                        "label`) and add them to the seeds")
    labels = [POSITIVE_LABEL] * len(ts.positives) + [NEGATIVE_LABEL] * len(ts.negatives)
    pages = ts.positives + ts.negatives
    method = evaluation_method(cfg, len(pages))
    seed = cfg.train.seed
    if method == "kfold":
        folds = stratified_folds(labels, pages, cfg.train.folds, seed)
        train_idx = list(range(len(pages)))
        method_name = f"{cfg.train.folds}-fold"
    else:
        fraction = min(0.5, max(cfg.train.holdout_fraction, cfg.train.holdout_min_pages / len(pages)))
        held = [is_heldout(p, fraction, seed) for p in pages]
        train_idx = [i for i in range(len(pages)) if not held[i]]
        for label in (POSITIVE_LABEL, NEGATIVE_LABEL):
            if not any(labels[i] == label and held[i] for i in range(len(pages))) or \
                    not any(labels[i] == label and not held[i] for i in range(len(pages))):
                raise GateError(f"the held-out split ({fraction:.0%} of the pages) leaves "
                                f"no {label.removeprefix('__label__')} page on one side; use -s "
                                "train.evaluation=kfold or change the fraction")
        method_name = f"holdout {fraction:.0%}"
    # fastText learns in file order: a fixed pseudo-random order, not positives-then-negatives
    random.Random(seed).shuffle(train_idx)

    t_tok = time.perf_counter()
    if tokenizer is None:
        tokenizer = BpePretokenizer.train((pages[i].text for i in train_idx), cfg.tokenizer.vocab_size,
                                          cfg.tokenizer.min_frequency, cfg.tokenizer.max_chars)
        if tokenizer_out is not None:
            tokenizer.save(tokenizer_out)
        st.add("tokenizer_trained")
    tokens = [tokenizer(p.text) for p in pages]
    lines = [f"{lab} {tok}" for lab, tok in zip(labels, tokens, strict=True)]
    st.add("seconds_tokenizer", round(time.perf_counter() - t_tok, 3))

    settings = cfg.fasttext.resolved(len(train_idx))
    out.mkdir(parents=True, exist_ok=True)
    t_ft = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=out, prefix=".train-") as tmp:
        def fit(final: bool = True) -> tuple[Any, dict[int, float]]:
            """The model trained on ``train_idx`` (if ``final``), and held-out scores (out-of-fold, or of the split
            put aside)."""
            scores: dict[int, float] = {}
            if method == "kfold":
                for f in range(cfg.train.folds):
                    fold_model = train_fasttext([lines[i] for i in train_idx if folds[i] != f], settings, Path(tmp))
                    scores.update({i: label_probability(fold_model, tokens[i], POSITIVE_LABEL)
                                   for i in train_idx if folds[i] == f})
            model = train_fasttext([lines[i] for i in train_idx], settings, Path(tmp)) if final else None
            if method == "holdout":
                scores = {i: label_probability(model, tokens[i], POSITIVE_LABEL) for i in range(len(pages))
                          if held[i]}
            return model, scores

        clean = method == "kfold" and cfg.train.drop_code_like_negatives
        model, scores = fit(final=not clean)
        first_auc = roc_auc(*split_scores(scores, labels)) if clean else None
        # a classifier that cannot tell the seeds from the corpus has no code-like negatives to find: the gate stops it
        dropped = code_like_negatives(scores, labels, len(ts.positives) + ts.given_negatives) \
            if clean and first_auc is not None and first_auc >= cfg.gate.min_auc else []
        if dropped:
            st.add("negatives_dropped_code_like", len(dropped))
            gone = set(dropped)
            train_idx = [i for i in train_idx if i not in gone]
            folds = stratified_folds([labels[i] if i not in gone else "dropped" for i in range(len(pages))], pages,
                                     cfg.train.folds, seed)
            model, scores = fit()
        elif model is None:
            model = train_fasttext([lines[i] for i in train_idx], settings, Path(tmp))
    st.add("seconds_fasttext", round(time.perf_counter() - t_ft, 3))

    ev = evaluate(*split_scores(scores, labels), method=method_name, threshold=cfg.score_threshold,
                  target_precision=cfg.target_precision, use_calibrated=cfg.threshold_mode == "target_precision",
                  gate=cfg.gate, auc_before_dropping=first_auc if dropped else None)
    st.add("heldout_positives", ev.positives)
    st.add("heldout_negatives", ev.negatives)
    st.add("seconds", round(time.perf_counter() - t0, 3))
    meta = {
        "train_positives": sum(labels[i] == POSITIVE_LABEL for i in train_idx),
        "train_negatives": sum(labels[i] == NEGATIVE_LABEL for i in train_idx),
        "negatives_dropped_code_like": [pages[i].key for i in dropped],
        "threshold": ev.threshold,
        "evaluation": ev.to_dict(),
        "fasttext": settings.model_dump(),
        "fasttext_auto": cfg.fasttext.auto_keys(),
        "train": cfg.train.model_dump(),
        "gate": cfg.gate.model_dump(),
        "negatives_excluded": exclude.describe(),
        "stats": st.to_dict(),
    }
    if not ev.passed:
        problems = "; ".join(ev.problems)
        if cfg.gate.enforce:
            atomic_write_json(out / EVALUATION_FILE, meta)
            raise GateError(f"classifier rejected by the quality gate: {problems}. To fix: {GATE_ADVICE} "
                            f"(figures: {out / EVALUATION_FILE})")
        log.warning("quality gate failed (gate.enforce=false, going on): %s", problems)
    (out / EVALUATION_FILE).unlink(missing_ok=True)
    meta = save_classifier(out, model, tokenizer, meta, quantized=settings.quantize)
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
