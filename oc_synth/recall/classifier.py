"""The fastText page classifier: trained with the ``fasttext`` package, scored through NeMo Curator's fastText filter.

A classifier directory (written by ``train``) holds::

    model.bin         the fastText model (model.ftz when quantized)
    tokenizer.json    the BPE tokenizer its text was pre-tokenized with
    classifier.json   labels, resolved hyper-parameters, training-set sizes, the held-out evaluation, the model
                      file's name and SHA-256; written last, so its presence marks a finished training
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemo_curator.stages.text.filters.doc_filter import DocumentFilter
from nemo_curator.stages.text.filters.fasttext import FastTextQualityFilter

from oc_common.errors import InputError, OcError
from oc_common.fileio import atomic_write_json
from oc_common.log import get_logger
from oc_synth.recall.config import NEGATIVE_LABEL, POSITIVE_LABEL, FastTextConfig
from oc_synth.recall.fasttext_file import check_fasttext_file
from oc_synth.recall.tokenize import BpePretokenizer

MODEL_FILE = "model.bin"
QUANTIZED_MODEL_FILE = "model.ftz"  # fastText's name for quantized models
TOKENIZER_FILE = "tokenizer.json"
META_FILE = "classifier.json"

log = get_logger(__name__)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_fasttext(path: str | Path, expected_sha256: str | None = None):  # noqa: ANN201 - fasttext has no types
    """Load a fastText classifier, refusing corrupt files with a clear error (see ``fasttext_file``); our own models
    are also checked against the SHA-256 recorded when they were trained."""
    import fasttext

    path = Path(path)
    info = check_fasttext_file(path)
    if expected_sha256 and sha256_file(path) != expected_sha256:
        raise InputError(f"{path}: does not match the SHA-256 recorded in {META_FILE} (corrupt or replaced); "
                         "retrain it or delete the classifier directory")
    if not info.labels:
        raise InputError(f"{path}: a fastText model without labels (unsupervised word vectors?) cannot classify")
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # fasttext-wheel prints a deprecation notice on every load
            return fasttext.load_model(str(path))
    except (ValueError, MemoryError) as e:
        raise InputError(f"{path}: fastText cannot load it ({e})") from None


def label_probability(model, line: str, label: str) -> float:  # noqa: ANN001
    """P(label | line) from a fastText classifier of any number of labels, clipped to [0, 1].

    k=-1 asks for every label: 1 - P(top label) (NeMo Curator's quality filter) is only right for two labels.
    The binding's own ``f.predict`` is called because the wrappers are broken under NumPy 2: ``predict(str)`` raises
    (``np.array(copy=False)``) and ``predict(list, k>1)`` of fasttext-wheel 0.9.2 repeats the top probability for
    every label. fastText smooths probabilities by 1e-5, hence the clip.
    """
    for p, lab in model.f.predict(line, -1, 0.0, "replace"):
        if lab == label:
            return min(1.0, max(0.0, float(p)))
    return 0.0


@dataclass(frozen=True)
class ClassifierFiles:
    """Where a classifier's parts are, resolved from a classifier directory or a bare model file."""

    model: Path
    tokenizer: Path | None
    label: str
    sha256: str | None = None
    max_chars: int = 100_000

    @classmethod
    def resolve(cls, model: str | Path, tokenizer: str | Path | None = None, label: str | None = None,
                max_chars: int | None = None) -> ClassifierFiles:
        model = Path(model)
        if model.is_dir():
            meta_path = model / META_FILE
            if not meta_path.is_file():
                raise InputError(f"{model}: not a classifier directory (no {META_FILE}; was training finished?)")
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise InputError(f"{meta_path}: unreadable ({e})") from None
            return cls(model / meta.get("model_file", MODEL_FILE),
                       Path(tokenizer) if tokenizer else model / TOKENIZER_FILE,
                       label or meta.get("positive_label", POSITIVE_LABEL), meta.get("model_sha256"),
                       max_chars or meta.get("max_chars", 100_000))
        return cls(model, Path(tokenizer) if tokenizer else None, label or POSITIVE_LABEL,
                   max_chars=max_chars or 100_000)

    def check(self) -> None:
        """Fail before a pipeline starts: load the model and tokenizer once and check that the label exists."""
        model = load_fasttext(self.model, self.sha256)
        if self.label not in model.get_labels():
            raise InputError(f"{self.model}: has no label {self.label!r} (its labels: "
                             f"{', '.join(model.get_labels()[:10])})")
        if self.tokenizer is not None:
            BpePretokenizer.load(self.tokenizer)


class FastTextPageClassifier(FastTextQualityFilter):
    """NeMo Curator's fastText filter, made a classifier: the score is P(label) of BPE-pre-tokenized text.

    Differences from ``FastTextQualityFilter``, and why: text is pre-tokenized with the tokenizer the model was
    trained on; the score is the probability of ``label`` among all labels (right for multi-class models such as a
    language classifier); ``keep_document`` is a threshold, not Pareto sampling (the parent keeps pages at random);
    and the constructor does not reseed NumPy's global generator.
    """

    def __init__(self, files: ClassifierFiles, threshold: float = 0.5):
        DocumentFilter.__init__(self)
        self._model_path = str(files.model)
        self._label = files.label
        self._files = files
        self._threshold = threshold
        self._model = None
        self._pretokenize = None
        self._name = "fasttext_page_classifier"

    def model_check_or_download(self) -> None:
        if not os.path.exists(self._model_path):
            raise InputError(f"{self._model_path}: fastText model not found")

    def load_model(self) -> None:
        self._model = load_fasttext(self._files.model, self._files.sha256)

    def load_tokenizer(self) -> None:
        if self._files.tokenizer is not None:
            self._pretokenize = BpePretokenizer.load(self._files.tokenizer, self._files.max_chars)

    def to_line(self, text: str) -> str:
        if self._pretokenize is not None:
            return self._pretokenize(text)
        # fastText reads one line: every whitespace run (a newline ends the line) becomes one space
        return " ".join(text[: self._files.max_chars].split()).replace("__label__", " ")

    def score_document(self, text: str) -> float:
        if not isinstance(text, str):  # a record an earlier stage rejected (no text): no score
            return math.nan
        if self._model is None:  # the in-process path may score without setup()
            self.load_model()
            self.load_tokenizer()
        return label_probability(self._model, self.to_line(text), self._label)

    def keep_document(self, score: float) -> bool:
        return score >= self._threshold


# ---------------------------------------------------------------- training


def warn_if_unreliable_fasttext() -> None:
    """fasttext 0.9.3 (the sdist NeMo Curator's text_cpu extra pins) trained non-deterministically here: the same
    file and seed gave different models from the third call on in one process, and NaN where 0.9.2 converged.
    fasttext-wheel 0.9.2 (prebuilt, the same ``fasttext`` module) was deterministic; see docs/recall.md."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("fasttext")
    except PackageNotFoundError:
        return
    if v.startswith("0.9.3"):
        log.warning("fasttext %s trains non-deterministically (and may diverge); install fasttext-wheel==0.9.2", v)


def train_fasttext(lines: list[str], cfg: FastTextConfig, workdir: Path):  # noqa: ANN201
    """Train on ``__label__x tokens...`` lines with fully resolved settings (``FastTextConfig.resolved``), then
    quantize if asked. The training file lives in ``workdir`` only while training."""
    import fasttext

    warn_if_unreliable_fasttext()
    train_file = workdir / "train.txt"
    train_file.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    try:
        model = fasttext.train_supervised(
            input=str(train_file), dim=cfg.dim, lr=cfg.lr, wordNgrams=cfg.word_ngrams, minCount=cfg.min_count,
            epoch=cfg.epoch, bucket=cfg.bucket, loss=cfg.loss, thread=cfg.thread, seed=cfg.seed, verbose=0)
        if cfg.quantize:
            # pruning (cutoff) needs a retraining pass to recover; without it product quantization alone is enough
            model.quantize(input=str(train_file), cutoff=cfg.quantize_cutoff, retrain=cfg.quantize_cutoff > 0,
                           epoch=cfg.epoch, lr=cfg.lr, thread=cfg.thread, verbose=0, qnorm=False)
    except RuntimeError as e:  # "Encountered NaN." when the learning rate is too high for the data
        raise OcError(f"fastText training failed ({e}); with NaN, lower fasttext.lr (now {cfg.lr})") from None
    finally:
        train_file.unlink(missing_ok=True)
    return model


def model_file_name(quantized: bool) -> str:
    return QUANTIZED_MODEL_FILE if quantized else MODEL_FILE


def save_classifier(out: Path, model, pretokenize: BpePretokenizer, meta: dict[str, Any],  # noqa: ANN001
                    quantized: bool = False) -> dict[str, Any]:
    """Write the model and tokenizer, then classifier.json (last: the done-marker)."""
    out.mkdir(parents=True, exist_ok=True)
    name = model_file_name(quantized)
    tmp = out / f".{name}.tmp"
    model.save_model(str(tmp))
    os.replace(tmp, out / name)
    pretokenize.save(out / TOKENIZER_FILE)
    meta = {"positive_label": POSITIVE_LABEL, "negative_label": NEGATIVE_LABEL, "max_chars": pretokenize.max_chars,
            **meta, "model_file": name, "model_bytes": (out / name).stat().st_size,
            "model_sha256": sha256_file(out / name)}
    atomic_write_json(out / META_FILE, meta)
    return meta
