"""Scoring a corpus with a fastText classifier, as a resumable NeMo Curator pipeline::

    ShardReader -> RecallPageCheck -> ClassifierScore(FastTextPageClassifier) -> RecallScoreSummary -> ShardWriter

Every usable record gets the probability of the classifier's label in ``score_field`` (``code_score``); records
without text (or URL, for web pages) are dropped with a counted reason. The same command scores code files with any
fastText model a user brings (a quality or language classifier): pass ``url_field=None``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from nemo_curator.stages.text.filters.doc_filter import DocumentFilter
from nemo_curator.stages.text.filters.score_filter import Score
from nemo_curator.tasks import DocumentBatch

from oc_common.outcome import KEEP, reject
from oc_common.stats import Stats
from oc_synth.pipeline.runner import run_sharded
from oc_synth.pipeline.stages import RecordStage
from oc_synth.recall.classifier import ClassifierFiles, FastTextPageClassifier
from oc_synth.recall.config import SCORE_FIELD
from oc_synth.recall.pages import RecallPageCheck

SCORE_BINS = 10


@dataclass
class ClassifierScore(Score):
    """NeMo Curator's ``Score`` stage (its model setup, its actor spec on Ray), scoring only the records no earlier
    stage rejected: a rejected record gets no score (and may have no text column at all)."""

    name: str = "classifier_score"

    def process(self, batch: DocumentBatch) -> DocumentBatch | None:
        df = batch.to_pandas()
        if df.empty:
            return batch
        keep = df[KEEP].astype(bool) if KEEP in df.columns else pd.Series(True, index=df.index)
        for fn, text_field, score_field in zip(self.score_fn, self.text_field, self.score_field, strict=True):
            score = fn.score_document if isinstance(fn, DocumentFilter) else fn
            df[score_field] = math.nan
            if text_field in df.columns and keep.any():
                df.loc[keep, score_field] = df.loc[keep, text_field].map(score).astype(float)
        return DocumentBatch(dataset_name=batch.dataset_name, data=df, _metadata=batch._metadata,
                             _stage_perf=batch._stage_perf)


@dataclass
class RecallScoreSummary(RecordStage):
    """Counts positives and a score histogram; with ``min_score`` drops (with a reason) records scored below it."""

    name: str = "recall_score_summary"
    score_field: str = SCORE_FIELD
    threshold: float = 0.5
    min_score: float | None = None

    def output_fields(self) -> dict[str, str]:
        return {self.score_field: "float64"}  # null on a record an earlier stage rejected

    def process_record(self, record: dict[str, Any], stats: Stats) -> dict[str, Any]:
        score = record.get(self.score_field)
        if not isinstance(score, float) or math.isnan(score):
            return record
        stats.add("scored")
        stats.add("positive" if score >= self.threshold else "negative")
        low = min(int(score * SCORE_BINS), SCORE_BINS - 1) / SCORE_BINS
        stats.add_to(f"{self.score_field} histogram", f"[{low:.1f}, {low + 1 / SCORE_BINS:.1f})")
        if self.min_score is not None and score < self.min_score:
            reject(record, "below_min_score")
        return record


def scoring_stages(files: ClassifierFiles, *, text_field: str = "text", url_field: str | None = "url",
                   score_field: str = SCORE_FIELD, threshold: float = 0.5, min_score: float | None = None) -> list:
    return [
        RecallPageCheck(text_field=text_field, url_field=url_field),
        ClassifierScore(score_fn=FastTextPageClassifier(files, threshold), score_field=score_field,
                        text_field=text_field),
        RecallScoreSummary(score_field=score_field, threshold=threshold, min_score=min_score),
    ]


def run_score(inp: Path, out: Path, files: ClassifierFiles, *, text_field: str = "text",
              url_field: str | None = "url", score_field: str = SCORE_FIELD, threshold: float = 0.5,
              min_score: float | None = None, dropped: Path | None = None, executor: str = "local",
              overwrite: bool = False, quiet: bool = False, command: str = "recall score",
              output_format: str = "jsonl") -> Stats:
    files.check()  # a corrupt model or missing label fails here, before any shard starts
    options = {"model": str(files.model), "model_sha256": files.sha256, "tokenizer": str(files.tokenizer),
               "label": files.label, "text_field": text_field, "url_field": url_field, "score_field": score_field,
               "threshold": threshold, "min_score": min_score}
    return run_sharded(command=command, inp=inp, out=out, options=options, dropped=dropped, executor=executor,
                       overwrite=overwrite, quiet=quiet, keep_rate_groups=None, output_format=output_format,
                       stages=scoring_stages(files, text_field=text_field, url_field=url_field,
                                             score_field=score_field, threshold=threshold, min_score=min_score))
